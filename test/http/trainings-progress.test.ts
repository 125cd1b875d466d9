// What a job's progress shows its owner — the model's author, whom the guarantee treats as an adversary:
// only public figures. Under Poisson sampling a step's realised batch size is private, so the events and
// the job view give the step, epoch = step · q, expected throughput q · N · steps/s and the ETA from the
// step rate, whatever sizes the trainer reports. The real runner (training/runner.ts) drives a fake
// trainer whose realised sizes swing from 0 to 5 × q · N and whose steps take time in proportion, as
// libtorch's do; the old throughput (records counted per second) would make samplesPerSec · etaSeconds
// track those sizes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { stageBlob } from '../../src/artifacts/blob-store.js';
import { encodeSafetensors } from '../../src/artifacts/formats/safetensors.js';
import { calibrateTrainingNoise } from '../../src/privacy/calibration.js';
import { composedEpsilon } from '../../src/privacy/ledger.js';
import { insertDataset } from '../../src/store/artifacts.js';
import { type CreateTrainer, runTraining, type TrainModelInput } from '../../src/training/runner.js';
import type { WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, idlePool, insertModelRow, type TestApp } from '../helpers/app.js';
import { openSse } from '../helpers/sse.js';

const N = 200;
const BATCH = 20; // q · N
/** Realised batch sizes the fake trainer reports, in turn: private under Poisson sampling. */
const SIZES = [0, 100, 3, 41, 0, 20, 7, 77];

let t: TestApp;
let base: string;
let scientist: { id: string; token: string };
let opened: () => void;
const gate = new Promise<void>((resolve) => (opened = resolve));

/** A trainer that reports SIZES as its batches and spends ~20 µs of CPU per sample, as a real step would. */
const varyingTrainer: CreateTrainer = () => {
  let steps = 0;
  return {
    step() {
      steps += 1;
      const samples = SIZES[(steps - 1) % SIZES.length]!;
      const until = performance.now() + 0.2 + samples * 0.02;
      while (performance.now() < until);
      return {
        step: steps,
        samples,
        lossSum: samples,
        durationMs: 0,
        dropped: { exception: [], nonFiniteLoss: [], nonFiniteGradient: [] },
      };
    },
    state: () => Buffer.from(JSON.stringify({ steps })),
    restore: () => undefined,
    exportModel: () => Buffer.from(`model after ${steps}`),
    info: () => ({ steps, samples: N, trainableParameters: [], gradients: [] }),
  };
};

/** Runs the real training loop in this thread for 'trainModel' once the test has subscribed. */
const pool: WorkerPool = {
  ...idlePool,
  run: (async (task: string, input: unknown) => {
    if (task === 'preflight') return { samples: 1 }; // the model is bytes of no TorchScript: the fake trainer runs it
    if (task !== 'trainModel') throw new Error(`unexpected task ${task}`);
    await gate;
    return runTraining(input as TrainModelInput, varyingTrainer);
  }) as WorkerPool['run'],
};

async function commit(artifactId: string, kind: 'model' | 'dataset', bytes: Buffer) {
  const staged = await stageBlob(
    t.blobs,
    { artifactId, kind },
    (async function* () {
      yield bytes;
    })(),
  );
  await staged.commit();
}

before(async () => {
  t = await buildTestApp({
    pool,
    // The accountants run inline: this pool only trains.
    privacyMath: {
      composedEpsilon: async (events, delta) => composedEpsilon(events, delta),
      calibrateTrainingNoise: async (options) => calibrateTrainingNoise(options),
    },
    training: { checkpointEverySteps: 1000, checkpointEveryMs: 3_600_000, progressIntervalMs: 0 },
  });
  base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  scientist = t.principal('data-scientist');
});
after(() => t.close());

async function addModel(): Promise<string> {
  const id = uuidv7();
  const check = {
    methods: ['forward'],
    parameters: [{ name: 'fc.weight', shape: [3, 2], dtype: 'F32', requiresGrad: true }],
    buffers: [],
    parameterCount: 6,
    operators: ['aten::linear'],
    inputRanks: ['2'],
  };
  insertModelRow(t.store, { id, ownerId: scientist.id, details: check });
  await commit(id, 'model', Buffer.from('not really torchscript'));
  return id;
}

/** Another owner's dataset, whose policy names the scientist as a trainer. */
async function addDataset(): Promise<string> {
  const owner = t.principal(`owner-${uuidv7()}`);
  const id = uuidv7();
  const x = new Float32Array(N * 2);
  const y = BigInt64Array.from({ length: N }, (_, i) => BigInt(i % 3));
  const bytes = encodeSafetensors([
    { name: 'inputs', dtype: 'F32', shape: [N, 2], data: new Uint8Array(x.buffer) },
    { name: 'labels', dtype: 'I64', shape: [N], data: new Uint8Array(y.buffer) },
  ]);
  const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
  await commit(id, 'dataset', bytes);
  const summary = {
    sampleCount: N,
    inputs: [{ name: 'inputs.0', dtype: 'F32', shape: [N, 2] }],
    labels: { name: 'labels', dtype: 'I64', shape: [N] },
    labelClasses: [0, 1, 2],
  };
  const layout = {
    blob: 'dataset',
    tensors: [
      { name: 'inputs.0', dtype: 'F32', shape: [N, 2], offsetBytes: headerEnd, sizeBytes: N * 8 },
      { name: 'labels', dtype: 'I64', shape: [N], offsetBytes: headerEnd + N * 8, sizeBytes: N * 8 },
    ],
  };
  insertDataset(t.store, {
    id,
    ownerId: owner.id,
    name: 'd',
    description: '',
    format: 'safetensors',
    sha256: '0'.repeat(64),
    sizeBytes: bytes.length,
    privacyLimit: 100,
    delta: 1e-5,
    sampleCount: N,
    details: JSON.stringify({ summary, layout }),
    policy: JSON.stringify({ trainers: [scientist.id] }),
    commitmentSalt: '0'.repeat(64),
    createdAt: new Date().toISOString(),
  });
  return id;
}

test('progress events and the job view show step, epoch = step · q, q · N · steps/s and the ETA from the step rate, never the realised batch sizes', async () => {
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/trainings',
    headers: t.auth(scientist.token),
    payload: {
      modelId: await addModel(),
      datasetIds: [await addDataset()],
      epochs: 4,
      expectedBatchSize: BATCH,
      loss: 'cross_entropy',
      optimizer: { type: 'sgd', learningRate: 0.1 },
      privacy: { targetEpsilon: 8, maxGradNorm: 1, accountant: 'rdp' },
    },
  });
  assert.equal(res.statusCode, 202, res.body);
  const job = res.json();
  const q = BATCH / N;
  assert.equal(job.plan.sampleRate, q);
  assert.equal(job.totalSteps, 40);

  const stream = await openSse(`${base}/v1/trainings/${job.id}/events`, t.auth(scientist.token));
  await stream.log.next('state');
  opened();
  await stream.log.whenEnded();
  assert.equal(stream.log.types().at(-1), 'completed');

  const progress = stream.log.events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data));
  assert.ok(progress.length >= 20, `progress after (nearly) every step: ${progress.length}`);
  for (const p of progress) {
    assert.ok(Math.abs(p.epoch - p.step * q) < 1e-12, `epoch ${p.epoch} at step ${p.step}`);
    if (p.status !== 'running' || p.etaSeconds === null || p.step === p.totalSteps) continue;
    // samplesPerSec = q·N·r and etaSeconds = (T − step)/r for the same step rate r, so their product is
    // q·N·(T − step) exactly: nothing of the realised sizes is in either.
    const product = p.samplesPerSec * p.etaSeconds;
    assert.ok(
      Math.abs(product - BATCH * (p.totalSteps - p.step)) < 1e-6 * BATCH * p.totalSteps,
      `step ${p.step}: ${p.samplesPerSec} × ${p.etaSeconds}`,
    );
  }
  for (const e of stream.log.events) assert.doesNotMatch(e.data, /"(samples|batchSize|realised)"/, 'no field names a batch size');

  const done = (await t.app.inject({ url: `/v1/trainings/${job.id}`, headers: t.auth(scientist.token) })).json();
  assert.equal(done.status, 'succeeded');
  assert.ok(Math.abs(done.epoch - 40 * q) < 1e-12);
  assert.equal(done.etaSeconds, null);
  assert.ok(done.samplesPerSec > 0);
});
