// The pre-flight of a training or an evaluation: before anything is charged, the model runs in a pool
// worker on synthetic inputs — zeros of the datasets' public per-sample shapes and dtypes, as many as
// one physical batch (at most PREFLIGHT_MAX_SAMPLES) — through exactly what the job will do with a
// batch: forward, loss, backward (through the DP engine: the per-sample clipped sum, for a private
// training) and one optimizer step; or, for an evaluation, forward and loss in eval mode without
// gradients. The invariant it protects: a model, loss or optimizer that cannot work on these datasets
// is refused with 422 and the model's own message before any ε is charged or any job exists, and that
// message depends on public information only (shapes, dtypes, settings), never on a record, so it may
// be shown to the model's author. The trainer runs with failFast here, and only here, because its
// inputs are synthetic: on records a failure must drop the sample instead (core/dp/trainer.h).
import type { BlobStore } from '../artifacts/blob-store.js';
import { type Dataset, storedDataset } from '../artifacts/datasets.js';
import type { TensorSummary } from '../artifacts/formats/canonical.js';
import { BastionError } from '../errors.js';
import type { NativeErrorCode, ParameterPlan, TensorData, Trainer, TrainerConfig, TrainingData } from '../native.js';
import { type Dtype, dtypeSizeBytes, type LossName } from '../vocabulary.js';
import type { TrainingPlan } from './plan.js';

/**
 * Most synthetic samples a pre-flight runs: the plan's physical batch is capped here (and at the
 * datasets' size) so that a pre-flight costs at most one small batch. 256 is also the evaluation's batch.
 */
export const PREFLIGHT_MAX_SAMPLES = 256;

/** A tensor of zeros to synthesise: its dtype and full shape (shape[0] the synthetic samples). */
export interface SyntheticTensor {
  dtype: Dtype;
  shape: number[];
}

/** What the pool's `preflight` task runs: one step of `config`, or one evaluation with `loss`. */
export type PreflightInput = {
  blobs: BlobStore;
  modelId: string;
  inputs: SyntheticTensor[];
  labels: SyntheticTensor;
} & ({ kind: 'training'; config: TrainerConfig } | { kind: 'evaluation'; loss: LossName });

export interface PreflightOutput {
  /** Synthetic samples the model ran on. */
  samples: number;
  /** A private training's per-parameter gradient rules (the engine's plan after its probe); null otherwise. */
  gradients: ParameterPlan[] | null;
}

/** The worker pool as a pre-flight uses it (src/workers/pool.ts implements it; app.ts wires it in). */
export interface PreflightPool {
  run(kind: 'preflight', input: PreflightInput): Promise<PreflightOutput>;
}

export interface PreflightDeps {
  store: Parameters<typeof storedDataset>[0]['store'];
  blobs: BlobStore;
  pool: PreflightPool;
}

/** The datasets' public per-sample shapes with `samples` as first dimension. */
function synthetic(dataset: Pick<Dataset, 'inputs' | 'labels'>, samples: number): { inputs: SyntheticTensor[]; labels: SyntheticTensor } {
  const resize = (t: TensorSummary): SyntheticTensor => ({ dtype: t.dtype, shape: [samples, ...t.shape.slice(1)] });
  return { inputs: dataset.inputs.map(resize), labels: resize(dataset.labels) };
}

/**
 * Runs the plan's training for one step on synthetic inputs of its datasets' shapes: `config` as the
 * job will use it (trainerConfig of job-config.ts), with q = 1 over min(maxPhysicalBatchSize, 256, N)
 * synthetic samples, so the step is one physical batch. Resolves when the step succeeds; throws
 * UNPROCESSABLE_TRAINING with the model's message when it fails.
 */
export async function preflightTraining(deps: PreflightDeps, plan: TrainingPlan, config: TrainerConfig): Promise<PreflightOutput> {
  const dataset = storedDataset(deps, plan.datasetIds[0]!); // planTraining checked access, and that the datasets agree
  const samples = Math.max(1, Math.min(plan.maxPhysicalBatchSize, PREFLIGHT_MAX_SAMPLES, plan.sampleCount));
  const preflight: TrainerConfig =
    config.mode === 'private'
      ? { ...config, sampleRate: 1, maxPhysicalBatchSize: samples, failFast: true }
      : { ...config, batchSize: samples, maxPhysicalBatchSize: samples, failFast: true };
  return deps.pool.run('preflight', {
    kind: 'training',
    blobs: deps.blobs,
    modelId: plan.modelId,
    ...synthetic(dataset, samples),
    config: preflight,
  });
}

/**
 * Runs an evaluation's forward and loss, in eval mode without gradients, on min(256, N) synthetic
 * samples of the dataset's shapes. Throws UNPROCESSABLE_TRAINING with the model's message when it fails.
 */
export async function preflightEvaluation(
  deps: Pick<PreflightDeps, 'blobs' | 'pool'>,
  request: { modelId: string; dataset: Pick<Dataset, 'inputs' | 'labels' | 'sampleCount'>; loss: LossName },
): Promise<PreflightOutput> {
  const samples = Math.max(1, Math.min(PREFLIGHT_MAX_SAMPLES, request.dataset.sampleCount));
  return deps.pool.run('preflight', {
    kind: 'evaluation',
    blobs: deps.blobs,
    modelId: request.modelId,
    ...synthetic(request.dataset, samples),
    loss: request.loss,
  });
}

/** The part of Trainer a pre-flight uses (the worker passes Trainer.create). */
export type CreatePreflightTrainer = (
  model: Uint8Array,
  data: TrainingData,
  config: TrainerConfig,
) => Pick<Trainer, 'step' | 'evaluate' | 'info'>;

/** Native failures that say the model, loss or settings do not work (the rest are the server's: memory, the addon). */
const modelFailures: ReadonlySet<NativeErrorCode> = new Set<NativeErrorCode>([
  'INVALID_ARGUMENT',
  'MODEL_LOAD_FAILED',
  'NON_FINITE',
  'TORCH_ERROR',
  'NATIVE_ERROR',
]);

/** Zeros of a synthetic tensor's dtype and shape (valid embedding indices and class labels). */
function zeros(tensor: SyntheticTensor): TensorData {
  const bytes = tensor.shape.reduce((a, b) => a * b, 1) * dtypeSizeBytes[tensor.dtype];
  return { dtype: tensor.dtype, shape: tensor.shape, data: Buffer.alloc(bytes) };
}

/**
 * The worker side (workers/worker.ts passes the model's bytes and Trainer.create): builds a trainer
 * with failFast on the synthetic data and steps or evaluates it once. A failure of the model, loss or
 * optimizer becomes UNPROCESSABLE_TRAINING carrying the native message, which the synthetic inputs make
 * public; running out of memory stays the server's (503).
 */
export function runPreflight(input: PreflightInput, model: Uint8Array, createTrainer: CreatePreflightTrainer): PreflightOutput {
  const data = { inputs: input.inputs.map(zeros), labels: zeros(input.labels) };
  const samples = input.labels.shape[0] ?? 0;
  let gradients: ParameterPlan[] | null = null;
  try {
    if (input.kind === 'training') {
      const trainer = createTrainer(model, data, { ...input.config, failFast: true });
      trainer.step();
      if (input.config.mode === 'private') gradients = trainer.info().gradients;
    } else {
      const config: TrainerConfig = {
        mode: 'non-private',
        batchSize: samples,
        maxPhysicalBatchSize: samples,
        loss: { kind: input.loss },
        optimizer: { type: 'sgd', learningRate: 1e-3 }, // never stepped: evaluation only
        failFast: true,
      };
      createTrainer(model, data, config).evaluate();
    }
  } catch (err) {
    // A NativeError, told by its code (this module is imported on the event loop too, where the addon is never loaded).
    const code = (err as { code?: unknown }).code;
    if (!(err instanceof Error) || typeof code !== 'string' || !modelFailures.has(code as NativeErrorCode)) throw err;
    const [what, whose] =
      input.kind === 'training'
        ? ['The model cannot be trained on these datasets as asked', "the datasets'"]
        : ['The model cannot be evaluated on this dataset', "the dataset's"];
    throw new BastionError(
      'UNPROCESSABLE_TRAINING',
      `${what}: it fails on synthetic inputs (a batch of ${samples} zeros of ${whose} public per-sample shapes and dtypes; no ` +
        `record was read): ${err.message}`,
      { extensions: { preflight: { samples, code } } },
    );
  }
  return { samples, gradients };
}
