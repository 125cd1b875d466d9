// The worker side of an evaluation: a model's exact loss and accuracy on one dataset, loaded from their
// sealed blobs (the pool's `evaluateModel` task). Exact figures only: the event loop (evaluate.ts) adds
// the DP noise before anything is released, using the unit count per sample that accuracyUnitsPerSample
// derives from public shapes — the same function on both sides, so the release's sensitivity and what
// the worker counted cannot disagree unnoticed.
import type { BlobStore } from '../artifacts/blob-store.js';
import type { Trainer, TrainerConfig, TrainingData } from '../native.js';
import type { LossName } from '../vocabulary.js';
import { type DatasetSource, loadModelBytes, loadTrainingData } from './load.js';

export interface EvaluateModelInput {
  blobs: BlobStore;
  modelId: string;
  dataset: DatasetSource;
  loss: LossName;
}

export interface EvaluateModelOutput {
  samples: number;
  meanLoss: number;
  accuracy: number | null;
  /** Units accuracy counts per sample: 1 (argmax), or the label elements per sample for bce_with_logits. */
  outputsPerSample: number;
}

/**
 * Units that accuracy counts per sample, from public shapes only: 1 (argmax) for classification losses,
 * or the label elements per sample for bce_with_logits (labelShape: the label tensor's full shape,
 * shape[0] the sample count). One sample moves at most this many units: the release's sensitivity.
 */
export function accuracyUnitsPerSample(loss: LossName, labelShape: readonly number[]): number {
  return loss === 'bce_with_logits' ? labelShape.slice(1).reduce((a, b) => a * b, 1) : 1;
}

/** The part of Trainer an evaluation uses (the worker passes Trainer.create). */
export type CreateEvaluationTrainer = (model: Uint8Array, data: TrainingData, config: TrainerConfig) => Pick<Trainer, 'evaluate'>;

/** Evaluates the model on the whole dataset in batches of 256, in eval mode without gradients. */
export async function measureModel(input: EvaluateModelInput, createTrainer: CreateEvaluationTrainer): Promise<EvaluateModelOutput> {
  const { blobs, modelId, dataset, loss } = input;
  const data = await loadTrainingData(blobs, [dataset]);
  const trainer = createTrainer(await loadModelBytes(blobs, modelId), data, {
    mode: 'non-private',
    batchSize: 256,
    loss: { kind: loss },
    optimizer: { type: 'sgd', learningRate: 1e-3 }, // never stepped: evaluation only
  });
  const { samples, meanLoss, accuracy } = trainer.evaluate();
  const outputsPerSample = accuracyUnitsPerSample(loss, data.labels.shape);
  return { samples, meanLoss, accuracy, outputsPerSample };
}
