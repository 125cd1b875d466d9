// `bastion privacy epsilon|noise`: planning without a server, with the server's own accountants.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createPldAccountant, createRdpAccountant } from '../../src/privacy/accountant.js';
import { calibrateNoiseMultiplier } from '../../src/privacy/calibration.js';
import { repoRoot } from '../helpers/server.js';

const run = promisify(execFile);
const bastion = (args: string[]) => run(process.execPath, [path.join(repoRoot, 'bin', 'bastion.mjs'), ...args], { cwd: repoRoot });
const q = 256 / 60000;

test('privacy epsilon --json prints one object with the accountant’s ε', async () => {
  for (const accountant of ['rdp', 'pld'] as const) {
    const { stdout } = await bastion([
      'privacy',
      'epsilon',
      '--sample-rate',
      String(q),
      '--noise-multiplier',
      '1.1',
      '--steps',
      '2343',
      '--delta',
      '1e-5',
      '--accountant',
      accountant,
      '--json',
    ]);
    const expected = (accountant === 'rdp' ? createRdpAccountant() : createPldAccountant()).epsilon(
      [{ kind: 'poisson-gaussian', sampleRate: q, noiseMultiplier: 1.1, count: 2343 }],
      { delta: 1e-5 },
    );
    assert.deepEqual(JSON.parse(stdout), { epsilon: expected });
  }
});

test('privacy noise --json prints the σ calibrated by PLD (the default), and without --json a sentence naming the accountant', async () => {
  const { stdout } = await bastion([
    'privacy',
    'noise',
    '--sample-rate',
    String(q),
    '--steps',
    '2343',
    '--delta',
    '1e-5',
    '--target-epsilon',
    '3',
    '--json',
  ]);
  const expected = calibrateNoiseMultiplier({
    accountant: createPldAccountant(),
    targetEpsilon: 3,
    delta: 1e-5,
    sampleRate: q,
    steps: 2343,
  });
  assert.deepEqual(JSON.parse(stdout), { noiseMultiplier: expected });
  const human = await bastion([
    'privacy',
    'noise',
    '--sample-rate',
    String(q),
    '--steps',
    '2343',
    '--delta',
    '1e-5',
    '--target-epsilon',
    '3',
    '--accountant',
    'rdp',
  ]);
  const rdp = calibrateNoiseMultiplier({ accountant: createRdpAccountant(), targetEpsilon: 3, delta: 1e-5, sampleRate: q, steps: 2343 });
  assert.equal(human.stdout, `σ = ${rdp} (ε ≤ 3, δ = 0.00001, rdp)\n`);
});

test('privacy commands refuse bad numbers with a message and exit code 1', async () => {
  await assert.rejects(
    bastion(['privacy', 'epsilon', '--sample-rate', '2', '--noise-multiplier', '1', '--steps', '10', '--delta', '1e-5']),
    (e: { code: number; stderr: string }) => e.code === 1 && /sampleRate/.test(e.stderr),
  );
  await assert.rejects(
    bastion(['privacy', 'noise', '--sample-rate', '0.01', '--steps', 'ten', '--delta', '1e-5', '--target-epsilon', '1']),
    (e: { code: number; stderr: string }) => e.code === 1 && /--steps/.test(e.stderr),
  );
});
