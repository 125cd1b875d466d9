// Planning a training: from a request (model, datasets, epochs, batch, privacy target) to everything
// a job needs and everything its owners must know before it runs — the pooled sample count N, the
// Poisson rate q = expectedBatchSize / N, the steps ⌈epochs / q⌉, the noise multiplier σ calibrated so
// that this training spends at most targetEpsilon on every dataset (at the smallest δ among them, so
// the guarantee holds at each), and what each dataset's ledger would show afterwards. Planning charges
// nothing; POST /v1/trainings charges exactly the events the plan lists. Every inconsistency is
// reported here, before anything is charged.

import type { Static } from 'typebox';
import { type Dataset, getDataset, requireDatasetUse } from '../artifacts/datasets.js';
import type { DatasetSummary, TensorSummary } from '../artifacts/formats/canonical.js';
import { type Model, requireBatchIndependence, usableModel } from '../artifacts/models.js';
import { BastionError, type FieldError } from '../errors.js';
import type { Principal } from '../governance/principals.js';
import type { PrivacyEvent } from '../privacy/accountant.js';
import { calibrateTrainingNoise } from '../privacy/calibration.js';
import { type ChargeItem, type LedgerDeps, ledgerEpsilon, previewCharges } from '../privacy/ledger.js';
import type { TrainingPlanSchema, TrainingRequestSchema } from '../schemas/trainings.js';
import { CLASS_INDEX_LOSSES, DEFAULT_ACCOUNTANT, type LossName } from '../vocabulary.js';
import { DEFAULT_METRICS_LOSS_BOUND, epochEnds } from './metrics.js';

export type TrainingRequest = Static<typeof TrainingRequestSchema>;

/** The plan as the API shows it. */
export type TrainingPlanView = Static<typeof TrainingPlanSchema>;

/** The plan as a job keeps it: the view and what only the server needs to run and charge it. */
export type TrainingPlan = TrainingPlanView & {
  /** Per-layer clipping groups: parameter names with their bound; null for flat clipping. */
  clipGroups: { parameters: string[]; maxGradNorm: number }[] | null;
  /** What to charge each dataset when the training is accepted (empty when not private). */
  events: PrivacyEvent[];
};

export type PlanDeps = LedgerDeps;

const integerLosses: ReadonlySet<LossName> = new Set(CLASS_INDEX_LOSSES);

function sameTensor(a: TensorSummary, b: TensorSummary): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => i === 0 || d === b.shape[i]);
}

const perSample = (t: TensorSummary) => `${t.dtype} [${t.shape.slice(1).join(', ')}]`;

/** Datasets trained together must give the model the same inputs and labels, sample for sample. */
function checkCompatible(datasets: Dataset[], loss: LossName): void {
  const problems: string[] = [];
  const [first, ...rest] = datasets as [Dataset, ...Dataset[]];
  for (const other of rest) {
    if (other.inputs.length !== first.inputs.length) {
      problems.push(`dataset ${other.id} has ${other.inputs.length} input tensors, dataset ${first.id} has ${first.inputs.length}`);
      continue;
    }
    other.inputs.forEach((t, i) => {
      if (!sameTensor(t, first.inputs[i]!))
        problems.push(
          `${t.name} is ${perSample(t)} per sample in dataset ${other.id} but ${perSample(first.inputs[i]!)} in dataset ${first.id}`,
        );
    });
    if (!sameTensor(other.labels, first.labels))
      problems.push(
        `labels are ${perSample(other.labels)} per sample in dataset ${other.id} but ${perSample(first.labels)} in dataset ${first.id}`,
      );
  }
  const labels: DatasetSummary['labels'] = first.labels;
  const integerLabels = labels.dtype.startsWith('I') || labels.dtype.startsWith('U') || labels.dtype === 'BOOL';
  if (integerLosses.has(loss) && (labels.dtype !== 'I64' || labels.shape.length !== 1)) {
    problems.push(`${loss} needs I64 class labels of shape [samples], the datasets have ${labels.dtype} [${labels.shape.join(', ')}]`);
  }
  if (!integerLosses.has(loss) && integerLabels) problems.push(`${loss} needs float labels, the datasets have ${labels.dtype}`);
  if (problems.length > 0)
    throw new BastionError('UNPROCESSABLE_TRAINING', `These datasets cannot be trained together: ${problems.join('; ')}`);
}

const sgdOnly = ['momentum', 'dampening', 'nesterov'] as const;
const adamOnly = ['betas', 'eps'] as const;

/**
 * Optimizer settings torch::optim refuses or that would be silently ignored, each naming its field:
 * Nesterov momentum needs momentum > 0 and dampening 0 (SGDOptions' own check, which otherwise fails
 * the job at its start, after the charge), and a setting of another optimizer type than the one chosen.
 * Ranges are the schema's (schemas/trainings.ts).
 */
function optimizerProblems(optimizer: TrainingRequest['optimizer']): FieldError[] {
  const errors: FieldError[] = [];
  const at = (field: string) => `/optimizer/${field}`;
  if (optimizer.type === 'sgd') {
    if (optimizer.nesterov === true && !((optimizer.momentum ?? 0) > 0)) {
      errors.push({ pointer: at('nesterov'), detail: 'needs momentum > 0 (Nesterov momentum is a kind of momentum)' });
    }
    if (optimizer.nesterov === true && (optimizer.dampening ?? 0) !== 0) {
      errors.push({ pointer: at('dampening'), detail: 'must be 0 with nesterov' });
    }
    for (const field of adamOnly)
      if (optimizer[field] !== undefined) errors.push({ pointer: at(field), detail: 'applies to adam and adamw only' });
  } else {
    for (const field of sgdOnly) if (optimizer[field] !== undefined) errors.push({ pointer: at(field), detail: 'applies to sgd only' });
  }
  return errors;
}

/** Per-layer groups: the trainable parameters of each module (the name without its last part), C/√K each. */
function layerGroups(model: Model, maxGradNorm: number): { parameters: string[]; maxGradNorm: number }[] {
  const byLayer = new Map<string, string[]>();
  for (const p of model.check.parameters.filter((x) => x.requiresGrad)) {
    const layer = p.name.includes('.') ? p.name.slice(0, p.name.lastIndexOf('.')) : p.name;
    byLayer.set(layer, [...(byLayer.get(layer) ?? []), p.name]);
  }
  const bound = maxGradNorm / Math.sqrt(byLayer.size);
  return [...byLayer.values()].map((parameters) => ({ parameters, maxGradNorm: bound }));
}

/**
 * Plans a training for `principal`: validates what the request names (a model the caller may train
 * with, datasets whose policies let it train as asked and that fit together), calibrates σ, and
 * previews every dataset's ledger. Throws NOT_FOUND (what the caller may not see), FORBIDDEN (a policy
 * rule: non-private use, ε per training, an unreleased model), UNPROCESSABLE_TRAINING or VALIDATION_FAILED.
 */
export async function planTraining(deps: PlanDeps, principal: Principal, request: TrainingRequest): Promise<TrainingPlan> {
  const errors: FieldError[] = [];
  const isPrivate = request.private !== false;
  if (isPrivate && !request.privacy) errors.push({ pointer: '/privacy', detail: 'is required unless private is false' });
  if (!isPrivate && request.privacy) errors.push({ pointer: '/privacy', detail: 'must be absent when private is false' });
  if (!isPrivate && (request.metricsEpsilon ?? 0) > 0)
    errors.push({
      pointer: '/metricsEpsilon',
      detail: 'applies to private trainings only (a non-private training releases exact metrics)',
    });
  if (request.metricsLossBound !== undefined && !((request.metricsEpsilon ?? 0) > 0))
    errors.push({ pointer: '/metricsLossBound', detail: 'applies only with metricsEpsilon > 0' });
  if (request.labelSmoothing !== undefined && request.loss !== 'cross_entropy')
    errors.push({ pointer: '/labelSmoothing', detail: 'applies to cross_entropy only' });
  errors.push(...optimizerProblems(request.optimizer));
  if (errors.length > 0) throw new BastionError('VALIDATION_FAILED', errors.map((e) => `${e.pointer} ${e.detail}`).join('; '), { errors });

  const model = usableModel(deps, principal, request.modelId, 'train');
  const datasets = request.datasetIds.map((id) => getDataset(deps, principal, id));
  // Visibility, non-private use: before anything is computed. ε per training: once the plan knows it.
  for (const d of datasets) requireDatasetUse(deps, principal, d.id, 'train', { private: isPrivate, epsilon: null });
  checkCompatible(datasets, request.loss);
  requireBatchIndependence(
    model,
    datasets[0]!.inputs.map((t) => t.shape.length),
  );
  const sampleCount = datasets.reduce((n, d) => n + d.sampleCount, 0);
  if (request.expectedBatchSize > sampleCount) {
    throw new BastionError(
      'VALIDATION_FAILED',
      `/expectedBatchSize ${request.expectedBatchSize} exceeds the ${sampleCount} samples of the datasets`,
      {
        errors: [{ pointer: '/expectedBatchSize', detail: `must be at most the pooled sample count ${sampleCount}` }],
      },
    );
  }
  const maxPhysicalBatchSize = request.maxPhysicalBatchSize ?? request.expectedBatchSize;

  if (!isPrivate) {
    const steps = Math.ceil((request.epochs * sampleCount) / request.expectedBatchSize);
    return {
      modelId: model.id,
      datasetIds: request.datasetIds,
      private: false,
      sampleCount,
      epochs: request.epochs,
      expectedBatchSize: request.expectedBatchSize,
      maxPhysicalBatchSize,
      sampleRate: 0,
      steps,
      noiseMultiplier: 0,
      maxGradNorm: null,
      clipping: null,
      accountant: null,
      delta: null,
      epsilon: null,
      epsilonTotal: null,
      metrics: { epsilon: null, noiseMultiplier: 0, lossBound: null, releases: epochEnds(steps, request.epochs).length },
      datasets: datasets.map((d) => ({
        datasetId: d.id,
        privacyLimit: d.privacyLimit,
        delta: d.delta,
        epsilonSpent: 0,
        epsilonAfter: 0,
        epsilonRemainingAfter: d.privacyLimit,
        allowed: true,
      })),
      allowed: true,
      clipGroups: null,
      events: [],
    };
  }

  const privacy = request.privacy!;
  const accountantName = privacy.accountant ?? DEFAULT_ACCOUNTANT;
  const sampleRate = request.expectedBatchSize / sampleCount;
  const steps = Math.ceil(request.epochs / sampleRate);
  const delta = Math.min(...datasets.map((d) => d.delta));
  // Metrics (training/metrics.ts) come from the training's own batches: calibrateTrainingNoise charges
  // both as one mechanism of ε ≤ targetEpsilon + metricsEpsilon and keeps σ as without them.
  const metricsEpsilon = request.metricsEpsilon ?? 0;
  const options = {
    accountant: accountantName,
    targetEpsilon: privacy.targetEpsilon,
    extraEpsilon: metricsEpsilon,
    delta,
    sampleRate,
    steps,
  };
  let noise: Awaited<ReturnType<typeof calibrateTrainingNoise>>;
  try {
    noise = await (deps.math ? deps.math.calibrateTrainingNoise(options) : calibrateTrainingNoise(options));
  } catch (err) {
    if (err instanceof BastionError && err.details.errors?.some((e) => e.parameter === 'extraEpsilon')) {
      throw new BastionError(
        'UNPROCESSABLE_TRAINING',
        `metricsEpsilon ${metricsEpsilon} is too small to release any metric next to this training's noise; use a larger one or 0`,
        {
          errors: [{ pointer: '/metricsEpsilon', detail: 'too small for this training' }],
        },
      );
    }
    throw err;
  }
  const { noiseMultiplier } = noise;
  const training = { kind: 'poisson-gaussian', sampleRate, count: steps } as const;
  const events: PrivacyEvent[] = [{ ...training, noiseMultiplier: noise.chargedNoiseMultiplier }];
  const items: ChargeItem[] = datasets.map((d) => ({ datasetId: d.id, events }));
  // The plan's ε figures are the ledger's (the tighter of PLD and RDP at the calibrated σ), not the
  // calibrating accountant's, so that what a plan shows is what the charge records. The ledger memoises
  // them: a dataset with no history shares the figure with its preview.
  const [previews, charged, alone] = await Promise.all([
    previewCharges(deps, items),
    ledgerEpsilon(deps, events, delta),
    noise.extraNoiseMultiplier === null ? null : ledgerEpsilon(deps, [{ ...training, noiseMultiplier }], delta),
  ]);
  const epsilonTotal = charged.epsilon;
  const epsilon = alone?.epsilon ?? epsilonTotal;
  for (const d of datasets) requireDatasetUse(deps, principal, d.id, 'train', { private: true, epsilon: epsilonTotal });
  const metrics: TrainingPlan['metrics'] =
    noise.extraNoiseMultiplier === null
      ? null
      : {
          epsilon: epsilonTotal - epsilon,
          noiseMultiplier: noise.extraNoiseMultiplier,
          lossBound: request.metricsLossBound ?? DEFAULT_METRICS_LOSS_BOUND,
          releases: epochEnds(steps, request.epochs).length,
        };
  const clipping = privacy.clipping ?? 'flat';
  return {
    modelId: model.id,
    datasetIds: request.datasetIds,
    private: true,
    sampleCount,
    epochs: request.epochs,
    expectedBatchSize: request.expectedBatchSize,
    maxPhysicalBatchSize,
    sampleRate,
    steps,
    noiseMultiplier,
    maxGradNorm: privacy.maxGradNorm,
    clipping,
    accountant: noise.accountant,
    delta,
    epsilon,
    epsilonTotal,
    metrics,
    datasets: previews.map((p) => ({
      datasetId: p.datasetId,
      privacyLimit: p.privacyLimit,
      delta: p.delta,
      epsilonSpent: p.epsilonBefore,
      epsilonAfter: p.epsilonAfter,
      epsilonRemainingAfter: Math.max(0, p.privacyLimit - p.epsilonAfter),
      allowed: p.allowed,
    })),
    allowed: previews.every((p) => p.allowed),
    clipGroups: clipping === 'per-layer' ? layerGroups(model, privacy.maxGradNorm) : null,
    events,
  };
}

/** The plan as the API shows it (without the internal charge list and clip groups). */
export function planView(plan: TrainingPlan): TrainingPlanView {
  const { events: _events, clipGroups: _groups, ...view } = plan;
  return view;
}
