// Hostile data and hostile models meet private training: a record that overflows a huge weight, a label
// out of range, a model that raises on some records. The step goes on whatever the records hold, drops
// exactly the failing samples (re-run one at a time) and sums the others' clipped gradients as if the
// failing record were absent; creation probes on synthetic zeros, so it never depends on a record;
// evaluation counts a failing sample as incorrect. The model's author sees none of this (HTTP tests).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { extractTensors, type TensorData, Trainer, type TrainerConfig, type TrainingData, type TrainingStep } from '../../src/native.js';
import { type TrainerFixtures, type TrainerModelName, trainerFixtures } from '../helpers/trainer-fixtures.js';

const f32 = (data: Float32Array, shape: number[]): TensorData => ({ dtype: 'F32', shape, data });
const i64 = (data: BigInt64Array, shape: number[]): TensorData => ({ dtype: 'I64', shape, data });

/** The fixture dataset, with `edit` applied to copies of its features and labels, and without the rows in `without`. */
function dataset(
  fx: TrainerFixtures,
  edit: (x: Float32Array, y: BigInt64Array) => void = () => undefined,
  without: number[] = [],
): TrainingData {
  const x = Float32Array.from(fx.x);
  const y = BigInt64Array.from(fx.y);
  edit(x, y);
  const keep = Array.from({ length: fx.n }, (_, i) => i).filter((i) => !without.includes(i));
  const xs = new Float32Array(keep.length * fx.d);
  keep.forEach((row, i) => {
    xs.set(x.subarray(row * fx.d, (row + 1) * fx.d), i * fx.d);
  });
  const ys = BigInt64Array.from(keep, (row) => y[row]!);
  return { inputs: [f32(xs, [keep.length, fx.d])], labels: i64(ys, [keep.length]) };
}

/** q = 1, σ = 0, clipping active: one step moves the parameters by lr · Σ_i clip(g_i) / N exactly. */
const exact = (extra: Partial<TrainerConfig> = {}): TrainerConfig =>
  ({
    mode: 'private',
    loss: { kind: 'cross_entropy' },
    optimizer: { type: 'sgd', learningRate: 1 },
    sampleRate: 1,
    noiseMultiplier: 0,
    maxGradNorm: 0.5,
    ...extra,
  }) as TrainerConfig;

function parameters(trainer: Trainer): Float64Array {
  const names = new Set(trainer.info().trainableParameters);
  const tensors = extractTensors(trainer.exportModel(), 1 << 30).filter((t) => names.has(t.name));
  return Float64Array.from(
    tensors.flatMap((t) => Array.from(new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)))),
  );
}

const none = { exception: [], nonFiniteLoss: [], nonFiniteGradient: [] };

/**
 * Steps a trainer on the data with a failing record and one on the data without it (both q = 1, σ = 0)
 * from the same weights; checks the drop and that N·Δθ agrees: the failing record contributed nothing.
 */
function assertDroppedExactly(
  model: TrainerModelName,
  fx: TrainerFixtures,
  bad: TrainingData,
  clean: TrainingData,
  expected: TrainingStep['dropped'],
) {
  const bytes = fx.bytes(model);
  for (const maxPhysicalBatchSize of [undefined, 8, 1]) {
    const config = exact(maxPhysicalBatchSize ? { maxPhysicalBatchSize } : {});
    const withBad = Trainer.create(bytes, bad, config);
    const withoutBad = Trainer.create(bytes, clean, config);
    const start = parameters(withBad);
    const step = withBad.step();
    assert.deepEqual(step.dropped, expected, `physical batch ${maxPhysicalBatchSize ?? 'all'}`);
    assert.equal(step.samples, fx.n, 'the logical batch counts the dropped sample');
    assert.ok(Number.isFinite(step.lossSum), 'the loss sum leaves the dropped sample out');
    const reference = withoutBad.step();
    assert.deepEqual(reference.dropped, none);
    const a = parameters(withBad);
    const b = parameters(withoutBad);
    // The normalisation divides by q·N, N being each trainer's dataset size: compare the clipped sums.
    const nBad = fx.n;
    const nClean = clean.labels.shape[0]!;
    let worst = 0;
    for (let i = 0; i < a.length; i += 1) worst = Math.max(worst, Math.abs((a[i]! - start[i]!) * nBad - (b[i]! - start[i]!) * nClean));
    assert.ok(worst < 1e-5, `clipped sums differ by ${worst} (physical batch ${maxPhysicalBatchSize ?? 'all'})`);
    assert.ok(Math.abs(step.lossSum - reference.lossSum) < 1e-3 * Math.max(1, Math.abs(reference.lossSum)), 'the loss sums agree');
  }
}

test('a record that overflows a huge weight is dropped for its non-finite loss; the others give the clipped sum without it', async () => {
  const fx = await trainerFixtures();
  const overflow = (x: Float32Array) => void (x[5 * fx.d] = 1e4);
  assertDroppedExactly('huge_weight.pt', fx, dataset(fx, overflow), dataset(fx, overflow, [5]), {
    exception: [],
    nonFiniteLoss: [5],
    nonFiniteGradient: [],
  });
});

test('through an LSTM (the fused recurrent steps), a record that overflows to NaN gates is dropped for its non-finite loss; the others give the clipped sum without it', async () => {
  const fx = await trainerFixtures();
  const overflow = (x: Float32Array) => void (x[9 * fx.d] = 1e4);
  assertDroppedExactly('huge_lstm.pt', fx, dataset(fx, overflow), dataset(fx, overflow, [9]), {
    exception: [],
    nonFiniteLoss: [9],
    nonFiniteGradient: [],
  });
});

test('a label out of range is dropped as an exception; the others give the clipped sum without it', async () => {
  const fx = await trainerFixtures();
  const outOfRange = (_x: Float32Array, y: BigInt64Array) => void (y[3] = 7n);
  assertDroppedExactly('tiny_mlp.script.pt', fx, dataset(fx, outOfRange), dataset(fx, outOfRange, [3]), {
    exception: [3],
    nonFiniteLoss: [],
    nonFiniteGradient: [],
  });
});

test('a model that raises on some records: the step succeeds and drops exactly those records', async () => {
  const fx = await trainerFixtures();
  const above = (x: Float32Array) => {
    x[2 * fx.d + 1] = 1000;
    x[17 * fx.d + 4] = 500;
  };
  assertDroppedExactly('raises_above.pt', fx, dataset(fx, above), dataset(fx, above, [2, 17]), {
    exception: [2, 17],
    nonFiniteLoss: [],
    nonFiniteGradient: [],
  });
});

test('with Poisson sampling and noise, steps succeed alike with and without the failing record, over many steps', async () => {
  const fx = await trainerFixtures();
  const cases: [TrainerModelName, (x: Float32Array, y: BigInt64Array) => void, keyof TrainingStep['dropped']][] = [
    ['huge_weight.pt', (x) => void (x[0] = 1e4), 'nonFiniteLoss'],
    ['tiny_mlp.script.pt', (_x, y) => void (y[0] = -1n), 'exception'],
    ['raises_above.pt', (x) => void (x[0] = 1e3), 'exception'],
  ];
  for (const [model, edit, reason] of cases) {
    const config = exact({
      sampleRate: 0.5,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      optimizer: { type: 'sgd', learningRate: 0.1 },
      maxPhysicalBatchSize: 4,
    });
    const hostile = Trainer.create(fx.bytes(model), dataset(fx, edit), config);
    const plain = Trainer.create(fx.bytes(model), dataset(fx), config);
    let drops = 0;
    for (let s = 1; s <= 40; s += 1) {
      const step = hostile.step();
      assert.equal(step.step, s);
      assert.equal(plain.step().step, s);
      const dropped = step.dropped[reason];
      assert.ok(
        dropped.every((i) => i === 0),
        `${model}: only record 0 is ever dropped`,
      );
      drops += dropped.length;
    }
    // P(record 0 is never sampled in 40 steps) = 2^-40.
    assert.ok(drops > 0, `${model}: record 0 was dropped when sampled`);
    assert.ok(parameters(hostile).every(Number.isFinite));
  }
});

test('a model that makes the padding rows (copies of the first sample of a batch) NaN: every step succeeds and drops nothing', async () => {
  // With q·N = 16 a private batch runs padded to a multiple of 4 rows (trainer.cc, PaddedSize), so most
  // steps carry padding. The engine refuses a batch whose padding alone fails, and the trainer then runs
  // its samples alone, where there is no padding: were the padding's NaN let through, 0 · NaN would
  // reach the sum and fail the step.
  const fx = await trainerFixtures();
  const config = exact({ sampleRate: 0.5, noiseMultiplier: 0, maxGradNorm: 1, optimizer: { type: 'sgd', learningRate: 0.1 } });
  const hostile = Trainer.create(fx.bytes('nan_on_copies.pt'), dataset(fx), config);
  let padded = 0;
  for (let s = 1; s <= 20; s += 1) {
    const step = hostile.step();
    assert.equal(step.step, s);
    assert.deepEqual(step.dropped, none);
    assert.ok(Number.isFinite(step.lossSum));
    if (step.samples % 4 !== 0) padded += 1;
  }
  assert.ok(padded > 0, 'some batch was padded');
  assert.ok(parameters(hostile).every(Number.isFinite));
});

test('a model whose every sample is NaN: each step drops its whole batch and applies the noise only', async () => {
  const fx = await trainerFixtures();
  const trainer = Trainer.create(fx.bytes('log_of_linear.pt'), dataset(fx), exact({ noiseMultiplier: 0 }));
  const before = parameters(trainer);
  const step = trainer.step();
  assert.deepEqual(
    step.dropped.nonFiniteLoss,
    Array.from({ length: fx.n }, (_, i) => i),
  );
  assert.equal(step.lossSum, 0);
  assert.deepEqual(parameters(trainer), before, 'σ = 0 and nothing contributed: the parameters stay');
  assert.equal(trainer.info().steps, 1);
});

test('creation probes on zeros: it succeeds whatever the records hold, and still refuses what public shapes and dtypes rule out', async () => {
  const fx = await trainerFixtures();
  // Every record would make the model raise, and every label is out of range: Create does not look.
  const hostile = dataset(fx, (x, y) => {
    x.fill(1e3);
    y.fill(9n);
  });
  for (const mode of ['private', 'non-private'] as const) {
    const config =
      mode === 'private'
        ? exact()
        : ({ mode, loss: { kind: 'cross_entropy' }, optimizer: { type: 'sgd', learningRate: 1 }, batchSize: 4 } as TrainerConfig);
    assert.equal(Trainer.create(fx.bytes('raises_above.pt'), hostile, config).info().steps, 0);
  }
  const step = Trainer.create(fx.bytes('raises_above.pt'), hostile, exact()).step();
  assert.equal(step.dropped.exception.length, fx.n);
  // Public information still refuses: a model that drops the batch dimension, float labels for cross_entropy.
  assert.throws(() => Trainer.create(fx.bytes('batch_mean.pt'), dataset(fx), exact()), /model output has 1 samples .* but the batch has 2/);
  const floatLabels: TrainingData = { inputs: dataset(fx).inputs, labels: f32(new Float32Array(fx.n), [fx.n]) };
  assert.throws(() => Trainer.create(fx.bytes('tiny_mlp.script.pt'), floatLabels, exact()), /cross_entropy needs I64 class labels/);
});

test('evaluation counts a failing sample as incorrect and leaves it out of the loss, whatever made it fail', async () => {
  const fx = await trainerFixtures();
  const base = Trainer.create(fx.bytes('tiny_mlp.script.pt'), dataset(fx), exact());
  const clean = base.evaluate();
  assert.equal(clean.failed, 0);
  const outOfRange = base.evaluate(dataset(fx, (_x, y) => void (y[4] = 11n)));
  assert.equal(outOfRange.failed, 1);
  assert.equal(outOfRange.samples, fx.n);
  const cleanWithout = base.evaluate(dataset(fx, () => undefined, [4]));
  // The 31 others are judged as before; the failing one is incorrect and adds 0 to the loss sum.
  assert.ok(Math.abs(outOfRange.accuracy! * fx.n - cleanWithout.accuracy! * (fx.n - 1)) < 1e-9);
  assert.ok(Math.abs(outOfRange.meanLoss * fx.n - cleanWithout.meanLoss * (fx.n - 1)) < 1e-4);

  const raising = Trainer.create(fx.bytes('raises_above.pt'), dataset(fx), exact());
  const result = raising.evaluate(dataset(fx, (x) => void (x[9 * fx.d] = 1e3)));
  assert.equal(result.failed, 1);
  assert.ok(Number.isFinite(result.meanLoss));

  const overflow = Trainer.create(fx.bytes('huge_weight.pt'), dataset(fx), exact());
  const nan = overflow.evaluate(dataset(fx, (x) => void (x[0] = 1e4)));
  assert.equal(nan.failed, 1, 'a non-finite loss fails the sample');
  assert.ok(Number.isFinite(nan.meanLoss));
});

test("failFast (pre-flight only) makes a step throw the model's own message where the trainer would drop the sample", async () => {
  const fx = await trainerFixtures();
  const above = dataset(fx, (x) => void (x[2 * fx.d + 1] = 1000));
  const dropping = Trainer.create(fx.bytes('raises_above.pt'), above, exact());
  assert.deepEqual(dropping.step().dropped, { exception: [2], nonFiniteLoss: [], nonFiniteGradient: [] });
  for (const maxPhysicalBatchSize of [undefined, 8]) {
    const config = exact({ failFast: true, ...(maxPhysicalBatchSize ? { maxPhysicalBatchSize } : {}) });
    const failing = Trainer.create(fx.bytes('raises_above.pt'), above, config);
    const before = parameters(failing);
    assert.throws(
      () => failing.step(),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'INVALID_ARGUMENT');
        assert.match(err.message, /^Step 1: the model fails on a batch of \d+ synthetic samples: .*a feature is above 100/);
        return true;
      },
    );
    assert.equal(failing.info().steps, 0, 'the failed step is not counted');
    assert.deepEqual(parameters(failing), before, 'nor applied');
  }
  // A non-finite loss is an error too, not a drop.
  const overflow = dataset(fx, (x) => void (x[5 * fx.d] = 1e4));
  const overflowing = Trainer.create(fx.bytes('huge_weight.pt'), overflow, exact({ failFast: true }));
  assert.throws(
    () => overflowing.step(),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'NON_FINITE');
      assert.match(err.message, /per-sample loss of the synthetic batch is NaN or infinite/);
      return true;
    },
  );
  // Non-private steps and evaluations fail with the model's message as well.
  const nonPrivate = {
    mode: 'non-private',
    loss: { kind: 'cross_entropy' },
    optimizer: { type: 'sgd', learningRate: 1 },
    batchSize: fx.n,
    failFast: true,
  };
  const raising = () => Trainer.create(fx.bytes('raises_above.pt'), above, nonPrivate as TrainerConfig);
  assert.throws(() => raising().step(), /: Step 1: the model fails on synthetic samples: .*a feature is above 100/);
  assert.throws(() => raising().evaluate(), /: Evaluation: the model fails on a batch of 32 synthetic samples: .*a feature is above 100/);
  assert.equal(
    Trainer.create(fx.bytes('raises_above.pt'), above, { ...nonPrivate, failFast: false } as TrainerConfig).evaluate().failed,
    1,
  );
});

test("creation names the model's own libtorch message when it fails on the synthetic probe (public shapes only)", async () => {
  const fx = await trainerFixtures();
  const narrow: TrainingData = { inputs: [f32(new Float32Array(fx.n * 5), [fx.n, 5])], labels: i64(new BigInt64Array(fx.n), [fx.n]) };
  assert.throws(
    () => Trainer.create(fx.bytes('tiny_mlp.script.pt'), narrow, exact()),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'INVALID_ARGUMENT');
      const shapes = /: RuntimeError: mat1 and mat2 shapes cannot be multiplied \(2x5 and 6x8\)$/;
      assert.match(err.message, /^The model fails on two synthetic samples \(zeros of the data's per-sample shapes and dtypes\)/);
      assert.match(err.message, shapes);
      return true;
    },
  );
});
