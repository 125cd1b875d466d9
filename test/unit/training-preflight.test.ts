// The pre-flight's worker side with a fake trainer: it builds zeros of the public shapes, runs one
// private step at q = 1 over one physical batch (or one evaluation) with failFast, and turns a native
// failure into 422 unprocessable-training carrying the native message; memory failures stay the server's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BastionError } from '../../src/errors.js';
import type { TrainerConfig, TrainingData } from '../../src/native.js';
import { type CreatePreflightTrainer, type PreflightInput, preflightEvaluation, runPreflight } from '../../src/training/preflight.js';

const blobs = {} as PreflightInput['blobs'];
const shapes = {
  inputs: [
    { dtype: 'F32' as const, shape: [32, 4] },
    { dtype: 'I64' as const, shape: [32, 7] },
  ],
  labels: { dtype: 'I64' as const, shape: [32] },
};
const privateConfig: TrainerConfig = {
  mode: 'private',
  loss: { kind: 'cross_entropy' },
  optimizer: { type: 'sgd', learningRate: 0.1 },
  sampleRate: 1,
  noiseMultiplier: 1,
  maxGradNorm: 1,
  maxPhysicalBatchSize: 32,
  failFast: true,
};

function recorder(fail?: { code: string; message: string }) {
  const calls: { data: TrainingData; config: TrainerConfig; ran: string[] }[] = [];
  const create: CreatePreflightTrainer = (_model, data, config) => {
    const call = { data, config, ran: [] as string[] };
    calls.push(call);
    const run = (what: string) => {
      call.ran.push(what);
      if (fail) throw Object.assign(new Error(fail.message), { code: fail.code });
    };
    return {
      step: () => (run('step'), {}) as never,
      evaluate: () => (run('evaluate'), {}) as never,
      info: () => ({ steps: 1, samples: 0, trainableParameters: ['w'], gradients: [{ parameter: 'w', rule: 'linear', reason: '' }] }),
    };
  };
  return { calls, create };
}

test('a training pre-flight steps once on zeros of the public shapes, with failFast, and reports the gradient rules', () => {
  const { calls, create } = recorder();
  assert.deepEqual(
    runPreflight(
      { kind: 'training', blobs, modelId: 'm', ...shapes, config: { ...privateConfig, failFast: false } },
      new Uint8Array(1),
      create,
    ),
    { samples: 32, gradients: [{ parameter: 'w', rule: 'linear', reason: '' }] },
  );
  assert.equal(calls.length, 1);
  const [call] = calls;
  assert.deepEqual(call!.ran, ['step']);
  assert.equal(call!.config.failFast, true, 'failFast is forced on');
  assert.deepEqual(
    call!.data.inputs.map((t) => [t.dtype, t.shape, t.data.byteLength]),
    [
      ['F32', [32, 4], 32 * 4 * 4],
      ['I64', [32, 7], 32 * 7 * 8],
    ],
  );
  assert.ok(
    call!.data.inputs.every((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).every((b) => b === 0)),
    'zeros',
  );
  assert.deepEqual([call!.data.labels.dtype, call!.data.labels.shape], ['I64', [32]]);
});

test('an evaluation pre-flight evaluates once in a batch of all the synthetic samples', () => {
  const { calls, create } = recorder();
  runPreflight({ kind: 'evaluation', blobs, modelId: 'm', ...shapes, loss: 'nll' }, new Uint8Array(1), create);
  assert.deepEqual(calls[0]!.ran, ['evaluate']);
  assert.deepEqual(calls[0]!.config, {
    mode: 'non-private',
    batchSize: 32,
    maxPhysicalBatchSize: 32,
    loss: { kind: 'nll' },
    optimizer: { type: 'sgd', learningRate: 1e-3 },
    failFast: true,
  });
});

test("a native failure is 422 unprocessable-training with its message; out of memory is not the model's", () => {
  for (const code of ['INVALID_ARGUMENT', 'NON_FINITE', 'TORCH_ERROR', 'NATIVE_ERROR', 'MODEL_LOAD_FAILED']) {
    const { create } = recorder({ code, message: 'Step 1: the model fails on a batch of 32 synthetic samples: RuntimeError: boom' });
    assert.throws(
      () => runPreflight({ kind: 'training', blobs, modelId: 'm', ...shapes, config: privateConfig }, new Uint8Array(1), create),
      (err: unknown) => {
        assert.ok(err instanceof BastionError);
        assert.equal(err.code, 'UNPROCESSABLE_TRAINING');
        assert.match(
          err.message,
          /^The model cannot be trained on these datasets as asked: it fails on synthetic inputs \(a batch of 32 zeros .*: Step 1: .*RuntimeError: boom$/,
        );
        assert.deepEqual(err.details.extensions, { preflight: { samples: 32, code } });
        return true;
      },
    );
  }
  const { create } = recorder({ code: 'OUT_OF_MEMORY', message: 'Out of memory' });
  assert.throws(
    () => runPreflight({ kind: 'training', blobs, modelId: 'm', ...shapes, config: privateConfig }, new Uint8Array(1), create),
    (err: unknown) => !(err instanceof BastionError),
  );
});

test("an evaluation pre-flight asks the pool for min(256, N) samples of the catalogue's per-sample shapes", async () => {
  const asked: PreflightInput[] = [];
  const pool = {
    run: (async (kind: string, input: PreflightInput) => (
      assert.equal(kind, 'preflight'), asked.push(input), { samples: 0, gradients: null }
    )) as never,
  };
  for (const sampleCount of [1000, 10]) {
    const dataset = {
      sampleCount,
      inputs: [{ name: 'inputs.0', dtype: 'U8' as const, shape: [sampleCount, 3, 5] }],
      labels: { name: 'labels', dtype: 'I64' as const, shape: [sampleCount] },
    };
    await preflightEvaluation({ blobs, pool }, { modelId: 'm', dataset, loss: 'cross_entropy' });
  }
  assert.deepEqual(
    asked.map((a) => [a.inputs[0]!.shape, a.labels.shape]),
    [
      [[256, 3, 5], [256]],
      [[10, 3, 5], [10]],
    ],
  );
});
