// Evaluations: how well a model does on a dataset, released with differential privacy unless the
// dataset's owner allowed non-private use. The DP release is the number of correctly classified
// units plus discrete Gaussian noise N_Z(0, σ²) (Canonne, Kamath & Steinke 2020; an exact integer drawn
// from the CSPRNG), divided by the public unit count; σ² is calibrated to the requested ε by the
// mechanism's exact δ(ε), and the mechanism (σ², sensitivity) is charged to the dataset's ledger
// before the model touches the data, and after a pre-flight on synthetic inputs of the dataset's
// public shapes (training/preflight.ts), so a model that cannot run is refused uncharged. The mean loss has
// no bounded sensitivity (losses are not clipped here), so it is released only exactly, and only
// where the owner allows.
import { v7 as uuidv7 } from 'uuid';
import { getDataset, datasetLayout, requireDatasetUse } from '../artifacts/datasets.js';
import { LABELS_NAME } from '../artifacts/formats/canonical.js';
import { requireBatchIndependence, usableModel } from '../artifacts/models.js';
import { datasetOwners } from '../governance/targets.js';
import type { ArtifactDeps } from '../artifacts/service.js';
import { BastionError } from '../errors.js';
import type { Principal } from '../governance/principals.js';
import type { PrivacyEvent } from '../privacy/accountant.js';
import { discreteGaussianVariance } from '../privacy/analysis/discrete-gaussian.js';
import { calibrateDiscreteGaussianRelease, type DiscreteGaussianRelease } from '../privacy/calibration.js';
import { chargeLedger } from '../privacy/ledger.js';
import { discreteGaussianNoise } from '../privacy/noise.js';
import type { LossName } from './plan.js';
import { preflightEvaluation } from './preflight.js';
import { accuracyUnitsPerSample } from './tasks.js';

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
  /** Standard deviation of the noise added to accuracy: √Var[N_Z(0, σ²)] / units (≤ σ/units); 0 when exact. */
  accuracyNoiseStd: number;
  /** Mean loss, exact; null in a private evaluation (its sensitivity is unbounded). */
  loss: number | null;
  epsilon: number | null;
  delta: number | null;
  /** σ/Δ of the discrete Gaussian N_Z(0, σ²) on the correct count of sensitivity Δ; null when exact. */
  noiseMultiplier: number | null;
}

const classification: ReadonlySet<LossName> = new Set(['cross_entropy', 'nll', 'bce_with_logits']);

/**
 * Evaluates a model the caller may use on a dataset whose policy lets it evaluate (as asked: private or
 * not, at this ε); charges the dataset's ledger first when private.
 */
export async function evaluateModel(deps: ArtifactDeps, principal: Principal, request: EvaluationRequest): Promise<EvaluationResult> {
  const isPrivate = request.epsilon !== undefined;
  const use = { private: isPrivate, epsilon: request.epsilon ?? null };
  const model = usableModel(deps, principal, request.modelId, 'evaluate', use);
  const dataset = getDataset(deps, principal, request.datasetId);
  requireDatasetUse(deps, principal, dataset.id, 'evaluate', use);
  requireBatchIndependence(model, dataset.inputs.map((t) => t.shape.length));
  const id = uuidv7();
  const audited = {
    principalId: principal.id,
    action: 'evaluation.create',
    target: { kind: 'evaluation' as const, id },
    outcome: 'ok' as const,
    details: { modelId: model.id, datasetId: dataset.id, private: isPrivate, epsilon: use.epsilon },
    subjects: [model.ownerId, ...datasetOwners(deps.store, [dataset.id])],
  };
  const layout = datasetLayout(deps, dataset.id);
  // Accuracy counts correct units: one per sample (argmax), or one per output element for
  // bce_with_logits, where one sample moves up to that many of them: the sensitivity Δ. It comes from
  // the dataset's public label shape, so it is known, and charged for, before the model runs.
  const labels = layout.tensors.find((tensor) => tensor.name === LABELS_NAME);
  if (!labels) throw new Error(`Dataset ${dataset.id} has no ${LABELS_NAME} tensor in its layout`);
  const sensitivity = accuracyUnitsPerSample(request.loss, labels.shape);
  if (isPrivate && !classification.has(request.loss)) {
    throw new BastionError(
      'UNPROCESSABLE_TRAINING',
      `A DP evaluation releases accuracy, which ${request.loss} does not have; regression models can only be evaluated exactly, where the owner allows it`,
    );
  }
  // Forward and loss on synthetic inputs of the dataset's public shapes: a model that cannot run here
  // is a 422 with its own message, before anything is charged.
  await preflightEvaluation(deps, { modelId: request.modelId, dataset, loss: request.loss });
  let release: DiscreteGaussianRelease | null = null;
  if (isPrivate) {
    // One discrete Gaussian release, calibrated by its exact δ(ε) (CKS20 Theorem 7): milliseconds.
    release = calibrateDiscreteGaussianRelease({
      targetEpsilon: request.epsilon!,
      delta: dataset.delta,
      sensitivity,
    });
    const event: PrivacyEvent = { kind: 'discrete-gaussian', sigmaSquared: release.sigmaSquared, sensitivity: release.sensitivity, count: 1 };
    await chargeLedger(deps, { kind: 'evaluation', id, principalId: principal.id }, [{ datasetId: dataset.id, events: [event] }], () => deps.audit.record(audited));
  } else {
    deps.audit.record(audited);
  }
  const measured = await deps.pool.run('evaluateModel', {
    blobs: deps.blobs,
    modelId: request.modelId,
    dataset: { id: dataset.id, layout },
    loss: request.loss,
  });
  if (measured.outputsPerSample !== sensitivity) {
    throw new Error(`The evaluation counted ${measured.outputsPerSample} units per sample where the label shape gives ${sensitivity}`);
  }
  const n = measured.samples;
  let accuracy = measured.accuracy;
  const units = n * sensitivity;
  let accuracyNoiseStd = 0;
  if (release !== null && accuracy !== null) {
    // The exact count (accuracy is correct/units, rounded back to the integer it came from) plus an
    // exact integer from the CSPRNG; dividing and clamping to [0, 1] are post-processing.
    const correct = Math.round(accuracy * units) + discreteGaussianNoise(release.sigmaSquared);
    accuracy = Math.min(1, Math.max(0, correct / units));
    accuracyNoiseStd = Math.sqrt(discreteGaussianVariance(release.sigmaSquared)) / units;
  }
  return {
    id,
    modelId: request.modelId,
    datasetId: dataset.id,
    samples: n,
    private: isPrivate,
    accuracy,
    accuracyNoiseStd,
    loss: isPrivate ? null : measured.meanLoss,
    epsilon: isPrivate ? request.epsilon! : null,
    delta: isPrivate ? dataset.delta : null,
    noiseMultiplier: release === null ? null : Math.sqrt(release.sigmaSquared) / release.sensitivity,
  };
}
