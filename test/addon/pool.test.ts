import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { BastionError } from '../../src/errors.js';
import type { PrivacyEvent } from '../../src/privacy/accountant.js';
import { calibrateTrainingNoise } from '../../src/privacy/calibration.js';
import { composedEpsilon } from '../../src/privacy/ledger.js';
import { createPool, privacyMathOn, type WorkerPool } from '../../src/training/pool.js';
import { testdataPath } from '../helpers/testdata.js';

const mnist = testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt');
let pool: WorkerPool;

before(() => {
  pool = createPool({ size: 2, torchThreads: 1 });
});
after(async () => pool.close());

test('pool workers load the addon with the configured libtorch threads', async () => {
  const version = await pool.run('version', {});
  assert.match(version.torch, /^1\.13/);
  assert.equal(version.intraOpThreads, 1);
  assert.ok(pool.isAlive());
});

test('a worker inspects a TorchScript model; two inspections run on two workers at once', async () => {
  const bytes = new Uint8Array(fs.readFileSync(mnist));
  const [a, b] = await Promise.all([pool.run('inspectModel', { bytes }), pool.run('inspectModel', { bytes })]);
  assert.deepEqual(a, b);
  assert.deepEqual(a.parameters.map((p) => p.name), ['net.0.weight', 'net.0.bias', 'net.3.weight', 'net.3.bias', 'net.7.weight', 'net.7.bias', 'net.9.weight', 'net.9.bias']);
  assert.deepEqual(a.parameters[0]!.shape, [16, 1, 8, 8]);
});

test('a file that is not TorchScript comes back as a 422-class error, and the pool stays alive', async () => {
  await assert.rejects(
    pool.run('inspectModel', { bytes: new TextEncoder().encode('definitely not a zip archive') }),
    (err: unknown) => err instanceof BastionError && err.code === 'UNPROCESSABLE_MODEL',
  );
  assert.ok(pool.isAlive());
  assert.match((await pool.run('version', {})).torch, /^1\.13/);
});

test('a closed pool refuses work with SERVICE_UNAVAILABLE', async () => {
  const small = createPool({ size: 1, torchThreads: 1 });
  await small.run('version', {});
  await small.close();
  assert.equal(small.isAlive(), false);
  await assert.rejects(small.run('version', {}), (err: unknown) => err instanceof BastionError && err.code === 'SERVICE_UNAVAILABLE');
});

test('the privacy accountants run in the pool with the figures of the calling thread, and keep their refusals', async () => {
  const math = privacyMathOn(pool);
  const events: PrivacyEvent[] = [{ kind: 'poisson-gaussian', sampleRate: 0.01, noiseMultiplier: 1.1, count: 500 }, { kind: 'gaussian', noiseMultiplier: 4, count: 1 }];
  assert.deepEqual(await math.composedEpsilon(events, 1e-5), composedEpsilon(events, 1e-5));
  const options = { accountant: 'rdp' as const, targetEpsilon: 2, extraEpsilon: 0.25, delta: 1e-5, sampleRate: 0.01, steps: 500 };
  assert.deepEqual(await math.calibrateTrainingNoise(options), calibrateTrainingNoise(options));
  await assert.rejects(math.calibrateTrainingNoise({ ...options, targetEpsilon: -1 }), (err: unknown) => err instanceof BastionError && err.code === 'VALIDATION_FAILED' && /targetEpsilon/.test(err.message));
});
