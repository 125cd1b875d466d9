// Evaluations: how well a model does on a dataset, released with differential privacy unless the
// dataset's owner allowed non-private use. The DP release is the number of correctly classified
// samples plus Gaussian noise (sensitivity 1 under add/remove-one), divided by the public sample
// count; its ε is charged to the dataset's ledger before the model touches the data. The mean loss has
// no bounded sensitivity (losses are not clipped here), so it is released only exactly, and only
// where the owner allows.
import { v7 as uuidv7 } from 'uuid';
import { getDataset, datasetLayout } from '../artifacts/datasets.js';
import { getModel, requireBatchIndependence } from '../artifacts/models.js';
import type { ArtifactDeps } from '../artifacts/service.js';
import { BastionError } from '../errors.js';
import type { Principal } from '../governance/principals.js';
import type { PrivacyEvent } from '../privacy/accountant.js';
import { calibrateGaussianNoiseMultiplier } from '../privacy/calibration.js';
import { chargeLedger } from '../privacy/ledger.js';
import { gaussianNoise } from '../privacy/noise.js';
import type { LossName } from './plan.js';

export interface EvaluationRequest {
  modelId: string;
  datasetId: string;
  loss: LossName;
  /** ε to spend on a DP release; absent: an exact evaluation (the owner must allow non-private use). */
  epsilon?: number;
}

export interface EvaluationResult {
  id: string;
  modelId: string;
  datasetId: string;
  /** The dataset's sample count (public, as in the catalogue). */
  samples: number;
  private: boolean;
  /** Accuracy in [0, 1] (noisy when private); null for regression losses. */
  accuracy: number | null;
  /** Standard deviation of the noise added to accuracy; 0 when exact. */
  accuracyNoiseStd: number;
  /** Mean loss, exact; null in a private evaluation (its sensitivity is unbounded). */
  loss: number | null;
  epsilon: number | null;
  delta: number | null;
  /** σ of the Gaussian on the correct count (sensitivity 1); null when exact. */
  noiseMultiplier: number | null;
}

const classification: ReadonlySet<LossName> = new Set(['cross_entropy', 'nll', 'bce_with_logits']);

/** Evaluates the caller's model on a dataset; charges the dataset's ledger first when private. */
export async function evaluateModel(deps: ArtifactDeps, principal: Principal, request: EvaluationRequest): Promise<EvaluationResult> {
  const model = getModel(deps, principal, request.modelId); // the caller's own model, or 404
  const dataset = getDataset(deps, principal, request.datasetId);
  requireBatchIndependence(model, dataset.inputs.map((t) => t.shape.length));
  const id = uuidv7();
  const isPrivate = request.epsilon !== undefined;
  let noiseMultiplier: number | null = null;
  if (!isPrivate && !dataset.allowNonPrivate) {
    throw new BastionError('FORBIDDEN', `Dataset ${dataset.id} does not allow non-private use: give epsilon for a DP evaluation`);
  }
  if (isPrivate) {
    if (!classification.has(request.loss)) {
      throw new BastionError('UNPROCESSABLE_TRAINING', `A DP evaluation releases accuracy, which ${request.loss} does not have; regression models can only be evaluated exactly, where the owner allows it`);
    }
    // One plain Gaussian release: its exact analytic calibration is both the tightest and instant.
    noiseMultiplier = calibrateGaussianNoiseMultiplier({ targetEpsilon: request.epsilon!, delta: dataset.delta });
    const event: PrivacyEvent = { kind: 'gaussian', noiseMultiplier, count: 1 };
    await chargeLedger(deps, { kind: 'evaluation', id }, [{ datasetId: dataset.id, events: [event] }]);
  }
  const measured = await deps.pool.run('evaluateModel', {
    blobs: deps.blobs,
    modelId: request.modelId,
    dataset: { id: dataset.id, layout: datasetLayout(deps, dataset.id) },
    loss: request.loss,
  });
  const n = measured.samples;
  let accuracy = measured.accuracy;
  // Accuracy counts correct units: one per sample (argmax), or one per output element for
  // bce_with_logits, where one sample moves up to outputsPerSample of them: that is the sensitivity.
  const sensitivity = measured.outputsPerSample;
  const units = n * sensitivity;
  if (isPrivate && accuracy !== null) {
    const correct = Math.round(accuracy * units) + gaussianNoise(noiseMultiplier! * sensitivity);
    accuracy = Math.min(1, Math.max(0, correct / units)); // clamping is post-processing
  }
  return {
    id,
    modelId: request.modelId,
    datasetId: dataset.id,
    samples: n,
    private: isPrivate,
    accuracy,
    accuracyNoiseStd: isPrivate ? (noiseMultiplier! * sensitivity) / units : 0,
    loss: isPrivate ? null : measured.meanLoss,
    epsilon: isPrivate ? request.epsilon! : null,
    delta: isPrivate ? dataset.delta : null,
    noiseMultiplier,
  };
}
