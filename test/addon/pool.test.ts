// The worker pool with real workers: tasks run the addon off the event loop, failures come back as
// BastionErrors classed as the client's (422) or the server's, and the pool outlives them.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type BlobStore, openBlobStore, stageBlob } from '../../src/artifacts/blob-store.js';
import { keyProviderFromRootKey } from '../../src/enclave/keys.js';
import { BastionError } from '../../src/errors.js';
import type { PrivacyEvent } from '../../src/privacy/accountant.js';
import { calibrateTrainingNoise } from '../../src/privacy/calibration.js';
import { composedEpsilon } from '../../src/privacy/ledger.js';
import type { DatasetSource } from '../../src/training/load.js';
import type { PreflightInput } from '../../src/training/preflight.js';
import { createPool, privacyMathOn, type WorkerPool } from '../../src/workers/pool.js';
import { testdataPath } from '../helpers/testdata.js';
import { classifierDataset } from '../helpers/training-fixtures.js';

const mnist = testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt');
let pool: WorkerPool;
let dataDir: string;
let blobs: BlobStore;

before(() => {
  pool = createPool({ size: 2, torchThreads: 1 });
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-pool-'));
  blobs = openBlobStore(dataDir, keyProviderFromRootKey(Buffer.alloc(32), 'a test key of zeros'));
});
after(async () => {
  await pool.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** Seals `bytes` as a committed model blob, as an upload that passed its checks would be; returns its id. */
async function sealModel(bytes: Uint8Array): Promise<string> {
  const staged = await stageBlob(blobs, { artifactId: randomUUID(), kind: 'model' }, once(bytes));
  await staged.commit();
  return staged.identity.artifactId;
}

/** Seals a safetensors file as a committed dataset blob and checks it in the pool (convertDataset): the dataset as tasks read it. */
async function sealDataset(bytes: Uint8Array): Promise<DatasetSource> {
  const identity = { artifactId: randomUUID(), kind: 'dataset' as const };
  const staged = await stageBlob(blobs, identity, once(bytes));
  const file = await staged.commit();
  const converted = await pool.run('convertDataset', {
    blobs,
    target: { artifactId: identity.artifactId, kind: 'dataset-tensors' },
    source: { kind: 'safetensors', identity, file, sizeBytes: bytes.length },
  });
  assert.equal(converted.converted, null, 'a safetensors dataset is only checked');
  return { id: identity.artifactId, layout: converted.layout };
}

/** An evaluation pre-flight of `modelId` on `samples` zeros of F32 inputs shaped `perSample`, with int64 class labels. */
function evaluationPreflight(modelId: string, samples: number, perSample: number[]): PreflightInput {
  const inputs = [{ dtype: 'F32' as const, shape: [samples, ...perSample] }];
  return { kind: 'evaluation', blobs, modelId, inputs, labels: { dtype: 'I64', shape: [samples] }, loss: 'cross_entropy' };
}

test('pool workers load the addon with the configured libtorch threads', async () => {
  const version = await pool.run('version', {});
  assert.match(version.torch, /^1\.13/);
  assert.equal(version.intraOpThreads, 1);
  assert.ok(pool.isAlive());
});

test('two pre-flights of a TorchScript model read from its sealed blob run at once in a pool of two', async () => {
  const modelId = await sealModel(fs.readFileSync(mnist));
  const [a, b] = await Promise.all([4, 2].map((samples) => pool.run('preflight', evaluationPreflight(modelId, samples, [1, 28, 28]))));
  assert.deepEqual(
    [a, b],
    [
      { samples: 4, gradients: null },
      { samples: 2, gradients: null },
    ],
  );
});

test('a model blob that is not TorchScript: the native failure is a 422-class error, a BastionError of the worker keeps its code, the pool lives on', async () => {
  const modelId = await sealModel(new TextEncoder().encode('definitely not a zip archive'));
  const dataset = await sealDataset(classifierDataset(8));
  await assert.rejects(
    pool.run('evaluateModel', { blobs, modelId, dataset, loss: 'cross_entropy' }),
    (err: unknown) => err instanceof BastionError && err.code === 'UNPROCESSABLE_MODEL' && /not a loadable TorchScript/.test(err.message),
  );
  await assert.rejects(pool.run('preflight', evaluationPreflight(modelId, 4, [8])), (err: unknown) => {
    assert.ok(err instanceof BastionError);
    assert.equal(err.code, 'UNPROCESSABLE_TRAINING');
    assert.deepEqual(err.details.extensions, { preflight: { samples: 4, code: 'MODEL_LOAD_FAILED' } });
    return true;
  });
  assert.ok(pool.isAlive());
  assert.match((await pool.run('version', {})).torch, /^1\.13/);
});

test('the pool runs no task that loads an uploaded archive: inspectModel is an unknown task (only the sandbox child inspects)', async () => {
  const bytes = new Uint8Array(fs.readFileSync(mnist));
  await assert.rejects(
    pool.run('inspectModel' as never, { bytes } as never),
    (err: unknown) => err instanceof BastionError && err.code === 'INTERNAL' && /Unknown task inspectModel/.test(err.message),
  );
  assert.ok(pool.isAlive());
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
  const events: PrivacyEvent[] = [
    { kind: 'poisson-gaussian', sampleRate: 0.01, noiseMultiplier: 1.1, count: 500 },
    { kind: 'gaussian', noiseMultiplier: 4, count: 1 },
  ];
  assert.deepEqual(await math.composedEpsilon(events, 1e-5), composedEpsilon(events, 1e-5));
  const options = { accountant: 'rdp' as const, targetEpsilon: 2, extraEpsilon: 0.25, delta: 1e-5, sampleRate: 0.01, steps: 500 };
  assert.deepEqual(await math.calibrateTrainingNoise(options), calibrateTrainingNoise(options));
  await assert.rejects(
    math.calibrateTrainingNoise({ ...options, targetEpsilon: -1 }),
    (err: unknown) => err instanceof BastionError && err.code === 'VALIDATION_FAILED' && /targetEpsilon/.test(err.message),
  );
});
