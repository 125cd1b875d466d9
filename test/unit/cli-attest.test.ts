import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ATTEST_EXIT, attestVerify } from '../../src/cli/attest.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const quotePath = path.join(repoRoot, 'test/data/attestation/phala-dcap-qvl.v3.quote');
const now = new Date('2026-01-01T00:00:00Z');
const MRENCLAVE = '33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb';

test('attest verify: a real quote verifies with exit 0 and says what is not checked offline', async () => {
  const { exitCode, output } = await attestVerify({ quote: quotePath, mrenclave: MRENCLAVE }, now);
  assert.equal(exitCode, ATTEST_EXIT.verified);
  assert.match(output, /^quote verified at 2026-01-01T00:00:00.000Z/);
  assert.match(output, /not checked offline: TCB status, revocation \(CRLs\)/);
});

test('attest verify: a wrong MRENCLAVE, an expired time and a flipped byte exit 1 naming the failed check', async () => {
  const wrong = await attestVerify({ quote: quotePath, mrenclave: 'ab'.repeat(32) }, now);
  assert.equal(wrong.exitCode, ATTEST_EXIT.failed);
  assert.match(wrong.output, /check mrenclave failed/);
  const expired = await attestVerify({ quote: quotePath, at: '2034-01-01T00:00:00Z', json: true }, now);
  assert.equal(expired.exitCode, ATTEST_EXIT.failed);
  assert.equal(JSON.parse(expired.output).failedCheck, 'pck-chain-validity');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-attest-'));
  const flipped = fs.readFileSync(quotePath);
  flipped[100] = flipped[100]! ^ 1;
  fs.writeFileSync(path.join(dir, 'q'), flipped);
  const bad = await attestVerify({ quote: path.join(dir, 'q') }, now);
  assert.equal(bad.exitCode, ATTEST_EXIT.failed);
  assert.match(bad.output, /check quote-signature failed/);
});

test('attest verify: an unreadable file, a bad --at or a bad --isv-prod-id exit 2', async () => {
  assert.equal((await attestVerify({ quote: '/nonexistent/quote' }, now)).exitCode, ATTEST_EXIT.unchecked);
  assert.equal((await attestVerify({ quote: quotePath, at: 'yesterday' }, now)).exitCode, ATTEST_EXIT.unchecked);
  const badId = await attestVerify({ quote: quotePath, isvProdId: '0x1' }, now);
  assert.equal(badId.exitCode, ATTEST_EXIT.unchecked);
  assert.match(badId.output, /Expected integer between 0 and 65535 for --isv-prod-id but received 0x1/);
});

test('bastion attest verify runs from the command line with --json and exits 0', () => {
  const script = `import('./src/cli/main.ts').then((m) => m.runCli(process.argv.slice(1)))`;
  const args = ['--import', 'tsx', '-e', script, 'attest', 'verify', '--quote', quotePath, '--at', '2026-01-01T00:00:00Z', '--json'];
  const run = spawnSync(process.execPath, args, { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const value = JSON.parse(run.stdout);
  assert.equal(value.ok, true);
  assert.equal(value.quote.identity.mrenclave, MRENCLAVE);
});

test('attest verify --collateral: the TCB status is refused unless accepted, then printed with its advisories; a bad bundle exits 2', async () => {
  const collateral = path.join(repoRoot, 'test/data/attestation/phala-dcap-qvl.v3.collateral.json');
  const at = '2025-07-01T00:00:00Z';
  const refused = await attestVerify({ quote: quotePath, collateral, at }, now);
  assert.equal(refused.exitCode, ATTEST_EXIT.failed);
  assert.match(
    refused.output,
    /^quote NOT verified: check tcb-status failed: the platform's TCB status is ConfigurationAndSWHardeningNeeded/,
  );
  const accepted = await attestVerify(
    { quote: quotePath, collateral, at, acceptTcbStatus: ['UpToDate', 'ConfigurationAndSWHardeningNeeded'] },
    now,
  );
  assert.equal(accepted.exitCode, ATTEST_EXIT.verified, accepted.output);
  assert.match(
    accepted.output,
    /^TCB status ConfigurationAndSWHardeningNeeded \(quoting enclave UpToDate\), advisories INTEL-SA-00289, INTEL-SA-00615; not revoked$/m,
  );
  assert.doesNotMatch(accepted.output, /not checked offline/);
  const stale = await attestVerify(
    { quote: quotePath, collateral, acceptTcbStatus: ['ConfigurationAndSWHardeningNeeded'], at: '2026-01-01T00:00:00Z' },
    now,
  );
  assert.match(stale.output, /check collateral failed: the TCB info is stale/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-collateral-'));
  fs.writeFileSync(path.join(dir, 'c.json'), '{"tcb_info": 1}');
  const bad = await attestVerify({ quote: quotePath, collateral: path.join(dir, 'c.json') }, now);
  assert.equal(bad.exitCode, ATTEST_EXIT.unchecked);
  assert.match(bad.output, /not a collateral bundle/);
});
