// The worker-side training loop (training/runner.ts) and data loading (training/load.ts) with a fake
// trainer over real sealed blobs: datasets are concatenated along the sample dimension; a NaN step fails
// the job naming the step and exports nothing; the control word cancels before the next step;
// checkpoints are sealed on schedule and a later run restores the latest one; the samples a trainer
// dropped are counted per dataset and reason, across a resume.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { v7 as uuidv7 } from 'uuid';
import { type BlobStore, openBlobStore, readBlob, stageBlob } from '../../src/artifacts/blob-store.js';
import type { DatasetLayout } from '../../src/artifacts/formats/canonical.js';
import { encodeSafetensors } from '../../src/artifacts/formats/safetensors.js';
import { openDevKeyProvider } from '../../src/enclave/keys.js';
import type { TrainingStep } from '../../src/native.js';
import { loadTrainingData } from '../../src/training/load.js';
import type { MetricsSpec, TrainingMetric } from '../../src/training/metrics.js';
import {
  Control,
  type CreateTrainer,
  parseCheckpoint,
  runTraining,
  type TrainerHandle,
  type TrainingMessage,
  type TrainModelInput,
} from '../../src/training/runner.js';

let dir: string;
let blobs: BlobStore;
const modelId = uuidv7();

async function commit(identity: { artifactId: string; kind: 'model' | 'dataset' }, bytes: Buffer) {
  const staged = await stageBlob(
    blobs,
    identity,
    (async function* () {
      yield bytes;
    })(),
  );
  await staged.commit();
}

/** A safetensors dataset blob of n samples [n, 2] F32 (values 100·seed + i) and I64 labels, with its layout. */
async function dataset(n: number, seed: number): Promise<{ id: string; layout: DatasetLayout }> {
  const x = Float32Array.from({ length: n * 2 }, (_, i) => 100 * seed + i);
  const y = BigInt64Array.from({ length: n }, (_, i) => BigInt(seed * 10 + i));
  const bytes = encodeSafetensors([
    { name: 'inputs', dtype: 'F32', shape: [n, 2], data: new Uint8Array(x.buffer) },
    { name: 'labels', dtype: 'I64', shape: [n], data: new Uint8Array(y.buffer) },
  ]);
  const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
  const id = uuidv7();
  await commit({ artifactId: id, kind: 'dataset' }, bytes);
  return {
    id,
    layout: {
      blob: 'dataset',
      tensors: [
        { name: 'inputs.0', dtype: 'F32', shape: [n, 2], offsetBytes: headerEnd, sizeBytes: n * 8 },
        { name: 'labels', dtype: 'I64', shape: [n], offsetBytes: headerEnd + n * 8, sizeBytes: n * 8 },
      ],
    },
  };
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-runner-'));
  blobs = openBlobStore(dir, openDevKeyProvider(dir));
  await commit({ artifactId: modelId, kind: 'model' }, Buffer.from('not really torchscript'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A trainer that counts steps; `failAt` makes that step throw NON_FINITE like the addon. */
function fakeTrainer(
  options: { failAt?: number; onStep?: (step: number) => void; drops?: (step: number) => Partial<TrainingStep['dropped']> } = {},
): { create: CreateTrainer; restored: Buffer[] } {
  const restored: Buffer[] = [];
  const create: CreateTrainer = () => {
    let steps = 0;
    const trainer: TrainerHandle = {
      step() {
        if (steps + 1 === options.failAt) throw Object.assign(new Error('loss is NaN'), { code: 'NON_FINITE' });
        steps += 1;
        options.onStep?.(steps);
        // Step s: 4 samples, clamped loss sum s (so an epoch's sum names its steps).
        const dropped = { exception: [], nonFiniteLoss: [], nonFiniteGradient: [], ...options.drops?.(steps) };
        return { step: steps, samples: 4, dropped, lossSum: 1, clippedLossSum: steps, durationMs: 0 };
      },
      state: () => Buffer.from(JSON.stringify({ steps })),
      restore(state) {
        restored.push(Buffer.from(state));
        steps = (JSON.parse(Buffer.from(state).toString()) as { steps: number }).steps;
      },
      exportModel: () => Buffer.from(`model after ${steps}`),
      info: () => ({ steps, samples: 8, trainableParameters: [], gradients: [] }),
    };
    return trainer;
  };
  return { create, restored };
}

async function runJob(
  jobId: string,
  totalSteps: number,
  create: CreateTrainer,
  prepare: (control: Int32Array) => void = () => undefined,
  metrics: MetricsSpec | null = null,
  datasets?: { id: string; layout: DatasetLayout }[],
) {
  const data = datasets ?? [await dataset(8, 1)];
  const channel = new MessageChannel();
  const messages: TrainingMessage[] = [];
  channel.port1.on('message', (m: TrainingMessage) => messages.push(m));
  // The runner closes its end when it returns; this end sees 'close' after every message it posted.
  const closed = new Promise<void>((resolve) => channel.port1.once('close', () => resolve()));
  const control = new SharedArrayBuffer(4);
  prepare(new Int32Array(control));
  const input: TrainModelInput = {
    jobId,
    blobs,
    modelId,
    datasets: data,
    config: {
      mode: 'private',
      sampleRate: 0.5,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      loss: { kind: 'cross_entropy' },
      optimizer: { type: 'sgd', learningRate: 0.1 },
    },
    totalSteps,
    metrics,
    resultModelId: uuidv7(),
    checkpointEverySteps: 3,
    checkpointEveryMs: 3_600_000,
    progressIntervalMs: 0,
    control,
    port: channel.port2,
  };
  const output = await runTraining(input, create);
  await closed;
  return { output, messages, input };
}

test('datasets are concatenated along the sample dimension, tensor by tensor', async () => {
  const a = await dataset(3, 1);
  const b = await dataset(2, 2);
  const data = await loadTrainingData(blobs, [a, b]);
  assert.deepEqual(data.inputs[0]!.shape, [5, 2]);
  assert.deepEqual(
    Array.from(new Float32Array(Uint8Array.from(data.inputs[0]!.data as Buffer).buffer)),
    [100, 101, 102, 103, 104, 105, 200, 201, 202, 203],
  );
  assert.deepEqual(data.labels.shape, [5]);
  assert.deepEqual(Array.from(new BigInt64Array(Uint8Array.from(data.labels.data as Buffer).buffer)), [10n, 11n, 12n, 20n, 21n]);
});

test('a step that meets NaN fails the job naming the step, and no model is staged', async () => {
  const { output } = await runJob(uuidv7(), 10, fakeTrainer({ failAt: 4 }).create);
  assert.equal(output.outcome, 'failed');
  assert.equal(output.steps, 3);
  assert.match((output as { error: string }).error, /^Step 4 met a NaN/);
  assert.deepEqual(
    fs.readdirSync(blobs.stagingDir).filter((f) => f.includes('.model.')),
    [],
  );
});

test('a training on records refuses failFast before it loads anything: failing samples must be dropped there', async () => {
  const channel = new MessageChannel();
  let created = false;
  const input: TrainModelInput = {
    jobId: uuidv7(),
    blobs,
    modelId,
    datasets: [await dataset(8, 1)],
    config: {
      mode: 'private',
      sampleRate: 0.5,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      loss: { kind: 'cross_entropy' },
      optimizer: { type: 'sgd', learningRate: 0.1 },
      failFast: true,
    },
    totalSteps: 1,
    metrics: null,
    resultModelId: uuidv7(),
    checkpointEverySteps: 3,
    checkpointEveryMs: 3_600_000,
    progressIntervalMs: 0,
    control: new SharedArrayBuffer(4),
    port: channel.port2,
  };
  await assert.rejects(
    runTraining(input, (...args) => ((created = true), fakeTrainer().create(...args))),
    /failFast is for the pre-flight on synthetic data only/,
  );
  assert.equal(created, false);
  channel.port1.close();
});

test('the cancel word stops the loop before the next step', async () => {
  let control: Int32Array | undefined;
  const { output } = await runJob(
    uuidv7(),
    1000,
    fakeTrainer({ onStep: (s) => s === 2 && Atomics.store(control!, 0, Control.CANCEL) }).create,
    (c) => (control = c),
  );
  assert.deepEqual({ outcome: output.outcome, steps: output.steps }, { outcome: 'cancelled', steps: 2 });
});

test('checkpoints are sealed every N steps; a later run restores the latest and finishes the plan', async () => {
  const jobId = uuidv7();
  let control: Int32Array | undefined;
  const first = await runJob(
    jobId,
    10,
    fakeTrainer({ onStep: (s) => s === 7 && Atomics.store(control!, 0, Control.STOP) }).create,
    (c) => (control = c),
  );
  assert.deepEqual({ outcome: first.output.outcome, steps: first.output.steps }, { outcome: 'stopped', steps: 7 });
  assert.deepEqual(
    first.messages.filter((m) => m.type === 'checkpoint').map((m) => m.step),
    [3, 6, 7],
    'every 3 steps, and at the stop',
  );
  assert.equal(
    parseCheckpoint(await readBlob(blobs, { artifactId: jobId, kind: 'checkpoint' })).state.toString(),
    JSON.stringify({ steps: 7 }),
  );

  const fake = fakeTrainer();
  const second = await runJob(jobId, 10, fake.create);
  assert.equal(fake.restored.length, 1);
  assert.deepEqual(second.messages[0], { type: 'started', step: 7, resumedFrom: 7, metrics: [] });
  assert.equal(second.output.outcome, 'succeeded');
  assert.equal(second.output.steps, 10);
  const staged = fs.readdirSync(blobs.stagingDir).find((f) => f.startsWith(second.input.resultModelId));
  assert.ok(staged, 'the trained model is staged for the event loop to commit');
});

// Noise 0 would hide the noise term; a huge σ_m makes it visible: meanLoss must differ from the exact mean.
const noisy = (epochEnds: number[]): MetricsSpec => ({ kind: 'noisy', lossBound: 2, noiseMultiplier: 3, expectedBatchSize: 4, epochEnds });
const metricsOf = (messages: TrainingMessage[]) => messages.flatMap((m) => (m.type === 'checkpoint' && m.metric ? [m.metric] : []));

test('an epoch metric is released with the checkpoint at its last step, the last one with the result', async () => {
  const { output, messages } = await runJob(uuidv7(), 10, fakeTrainer().create, undefined, noisy([4, 8, 10]));
  assert.equal(output.outcome, 'succeeded');
  assert.deepEqual(
    messages.filter((m) => m.type === 'checkpoint').map((m) => m.step),
    [3, 4, 7, 8],
    'every 3 steps since the last, and at each epoch end',
  );
  const released = [...metricsOf(messages), (output as { metric: TrainingMetric }).metric];
  assert.deepEqual(
    released.map(({ epoch, step, steps }) => ({ epoch, step, steps })),
    [
      { epoch: 1, step: 4, steps: 4 },
      { epoch: 2, step: 8, steps: 4 },
      { epoch: 3, step: 10, steps: 2 },
    ],
  );
  // σ_m·L·√k / (k·q·N): 3·2·2/(4·4) for the 4-step epochs, 3·2·√2/(2·4) for the last.
  assert.deepEqual(
    released.map((m) => m.noiseStd),
    [0.75, 0.75, (3 * 2 * Math.SQRT2) / 8],
  );
  const exact = [1 + 2 + 3 + 4, 5 + 6 + 7 + 8, 9 + 10].map((sum, i) => sum / (released[i]!.steps * 4));
  assert.ok(
    released.every((m, i) => m.meanLoss !== exact[i]),
    'the released means carry noise',
  );
});

test('a job resumed mid-epoch finishes that epoch over all its steps: the sums travel in the sealed checkpoint', async () => {
  const jobId = uuidv7();
  let control: Int32Array | undefined;
  const spec: MetricsSpec = { kind: 'exact', epochEnds: [4, 8, 10] };
  const first = await runJob(
    jobId,
    10,
    fakeTrainer({ onStep: (s) => s === 6 && Atomics.store(control!, 0, Control.STOP) }).create,
    (c) => (control = c),
    spec,
  );
  assert.equal(first.output.outcome, 'stopped');
  assert.deepEqual(
    metricsOf(first.messages).map((m) => m.epoch),
    [1],
  );
  const saved = parseCheckpoint(await readBlob(blobs, { artifactId: jobId, kind: 'checkpoint' }));
  assert.deepEqual(saved.header.epoch, { steps: 2, lossSum: 2, samples: 8 }, 'steps 5 and 6');
  assert.deepEqual(saved.header.metrics, metricsOf(first.messages), 'the released metrics travel with it');

  const second = await runJob(jobId, 10, fakeTrainer().create, undefined, spec);
  assert.deepEqual(
    second.messages[0],
    { type: 'started', step: 6, resumedFrom: 6, metrics: metricsOf(first.messages) },
    'handed back to the event loop',
  );
  const released = [...metricsOf(second.messages), (second.output as { metric: TrainingMetric }).metric];
  assert.deepEqual(
    released,
    [
      { epoch: 2, step: 8, steps: 4, meanLoss: 0.25, noiseStd: 0 },
      { epoch: 3, step: 10, steps: 2, meanLoss: 0.25, noiseStd: 0 },
    ],
    'epoch 1 is not computed again; epoch 2 covers steps 5–8',
  );
});

test('a noisy spec refuses a trainer that reports no clamped loss sum rather than release an unclamped one', async () => {
  const plain: CreateTrainer = (...args) => {
    const inner = fakeTrainer().create(...args);
    return { ...inner, step: () => ({ ...inner.step(), clippedLossSum: undefined }) };
  };
  await assert.rejects(runJob(uuidv7(), 10, plain, undefined, noisy([4, 8, 10])), /without lossBound/);
});

test('progress messages carry the step and the step rate only: the same messages whatever batch sizes Poisson sampling realised', async () => {
  const withSizes =
    (sizes: number[]): CreateTrainer =>
    (...args) => {
      const inner = fakeTrainer().create(...args);
      return {
        ...inner,
        step: () => {
          const result = inner.step();
          return { ...result, samples: sizes[(result.step - 1) % sizes.length]! };
        },
      };
    };
  const runs = [await runJob(uuidv7(), 12, withSizes([4])), await runJob(uuidv7(), 12, withSizes([0, 40, 1, 17, 0, 3]))];
  const withoutRate = (messages: TrainingMessage[]) =>
    messages.map((m) => (m.type === 'progress' ? { ...m, stepsPerSec: typeof m.stepsPerSec } : m));
  for (const { output, messages } of runs) {
    assert.equal(output.outcome, 'succeeded');
    const progress = messages.filter((m) => m.type === 'progress');
    assert.deepEqual(
      progress.map((m) => m.step),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
      'with progressIntervalMs 0, after every step',
    );
    for (const m of progress) assert.deepEqual(Object.keys(m).sort(), ['step', 'stepsPerSec', 'type']);
    assert.deepEqual(Object.keys(output).sort(), ['dropped', 'metric', 'model', 'outcome', 'steps', 'stepsPerSec']);
  }
  assert.deepEqual(withoutRate(runs[1]!.messages), withoutRate(runs[0]!.messages), 'nothing but the measured rate differs');
});

test('dropped samples are counted per dataset and reason, and the counts survive a checkpoint and resume', async () => {
  const jobId = uuidv7();
  const a = await dataset(3, 1); // indices 0-2
  const b = await dataset(5, 2); // indices 3-7
  // Every step drops index 1 (a) for an exception and 6 (b) for a NaN loss; step 2 also 3 (b) for a NaN gradient.
  const drops = (step: number) => ({ exception: [1], nonFiniteLoss: [6], nonFiniteGradient: step === 2 ? [3] : [] });
  let control: Int32Array | undefined;
  const first = await runJob(
    jobId,
    6,
    fakeTrainer({ drops, onStep: (s) => s === 4 && Atomics.store(control!, 0, Control.STOP) }).create,
    (c) => (control = c),
    null,
    [a, b],
  );
  assert.equal(first.output.outcome, 'stopped');
  assert.deepEqual(first.output.dropped, {
    [a.id]: { exception: 4, nonFiniteLoss: 0, nonFiniteGradient: 0 },
    [b.id]: { exception: 0, nonFiniteLoss: 4, nonFiniteGradient: 1 },
  });
  assert.deepEqual(
    parseCheckpoint(await readBlob(blobs, { artifactId: jobId, kind: 'checkpoint' })).header.dropped,
    first.output.dropped,
    'sealed with the checkpoint',
  );
  assert.ok(
    !first.messages.some((m) => JSON.stringify(m).includes('dropped')),
    'no message to the event loop carries them before the outcome',
  );

  const second = await runJob(jobId, 6, fakeTrainer({ drops }).create, undefined, null, [a, b]);
  assert.equal(second.output.outcome, 'succeeded');
  assert.deepEqual(second.output.dropped, {
    [a.id]: { exception: 6, nonFiniteLoss: 0, nonFiniteGradient: 0 },
    [b.id]: { exception: 0, nonFiniteLoss: 6, nonFiniteGradient: 1 },
  });
});
