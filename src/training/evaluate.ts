// Evaluations: how well a model does on a dataset, released with differential privacy unless the
// dataset's owner allowed non-private use. The DP release is the number of correctly classified
// units plus discrete Gaussian noise N_Z(0, σ²) (Canonne, Kamath & Steinke 2020; an exact integer drawn
// from the CSPRNG), divided by the public unit count; σ² is calibrated to the requested ε by the
// mechanism's exact δ(ε), and the mechanism (σ², sensitivity) is charged to the dataset's ledger
// before the model touches the data, and after a pre-flight on synthetic inputs of the dataset's
// public shapes (training/preflight.ts), so a model that cannot run is refused uncharged. The mean loss has
// no bounded sensitivity (losses are not clipped here), so it is released only exactly, and only
// where the owner allows. An evaluation in flight can be cancelled by whoever asked for it, the dataset's
// owner or an admin (or by revoking the principal who asked): its charge stands and nothing is released.
import type { Static } from 'typebox';
import { v7 as uuidv7 } from 'uuid';
import { datasetLayout, getDataset, requireDatasetUse } from '../artifacts/datasets.js';
import { LABELS_NAME } from '../artifacts/formats/canonical.js';
import { requireBatchIndependence, usableModel } from '../artifacts/models.js';
import type { ArtifactDeps } from '../artifacts/service.js';
import { BastionError } from '../errors.js';
import { authorize, enforce, refuseUnknown } from '../governance/authorize.js';
import type { Principal } from '../governance/principals.js';
import type { JobTarget } from '../governance/targets.js';
import { datasetOwners } from '../governance/targets.js';
import type { PrivacyEvent } from '../privacy/accountant.js';
import { discreteGaussianVariance } from '../privacy/analysis/discrete-gaussian.js';
import { calibrateDiscreteGaussianRelease, type DiscreteGaussianRelease } from '../privacy/calibration.js';
import { chargeLedger } from '../privacy/ledger.js';
import { discreteGaussianNoise } from '../privacy/noise.js';
import type { EvaluationRequestSchema, EvaluationRunSchema, EvaluationSchema } from '../schemas/evaluations.js';
import type { LossName } from '../vocabulary.js';
import { accuracyUnitsPerSample, type EvaluateModelInput, type EvaluateModelOutput } from './measure.js';
import { type PreflightPool, preflightEvaluation } from './preflight.js';

export type EvaluationRequest = Static<typeof EvaluationRequestSchema>;

export type EvaluationResult = Static<typeof EvaluationSchema>;

/**
 * The worker pool as evaluations use it: the pre-flight, then the exact measurement (measure.ts).
 * src/workers/pool.ts implements it; app.ts wires it in.
 */
export type EvaluationPool = PreflightPool & {
  run(kind: 'evaluateModel', input: EvaluateModelInput): Promise<EvaluateModelOutput>;
};

export type EvaluationDeps = Omit<ArtifactDeps, 'pool'> & { pool: EvaluationPool };

const classification: ReadonlySet<LossName> = new Set(['cross_entropy', 'nll', 'bce_with_logits']);

/** An evaluation in flight, as those who may stop it see it. */
export type EvaluationRun = Static<typeof EvaluationRunSchema>;

export interface Evaluations {
  /** Evaluates as evaluateModel does; EVALUATION_CANCELLED (409) when it was cancelled meanwhile. */
  run(principal: Principal, request: EvaluationRequest): Promise<EvaluationResult>;
  /** The evaluations in flight `principal` may see: its own, those on its datasets, all for an admin. */
  list(principal: Principal): EvaluationRun[];
  /** Cancels one in flight (NOT_FOUND for one the caller may not see, or that has ended). */
  cancel(principal: Principal, id: string): EvaluationRun;
  /** Cancels every evaluation in flight of a principal just revoked. */
  cancelAllOf(principalId: string, actor: Principal): void;
}

interface InFlight {
  run: EvaluationRun;
  target: JobTarget;
  cancelledBy: string | null;
}

/** The evaluation service: evaluateModel with a registry of what is in flight, so it can be stopped. */
export function createEvaluations(deps: EvaluationDeps): Evaluations {
  const inFlight = new Map<string, InFlight>();
  const stop = (entry: InFlight, actor: string) => {
    if (entry.cancelledBy !== null) return;
    entry.cancelledBy = actor;
    entry.run.status = 'cancelled';
    deps.audit.record({
      principalId: actor,
      action: 'evaluation.cancel',
      target: { kind: 'evaluation', id: entry.run.id },
      outcome: 'ok',
      subjects: [entry.target.ownerId, ...entry.target.datasetOwnerIds],
    });
  };
  return {
    run: (principal, request) =>
      evaluateModel(deps, principal, request, {
        started(run, target) {
          inFlight.set(run.id, { run, target, cancelledBy: null });
        },
        check(id) {
          const by = inFlight.get(id)?.cancelledBy;
          if (by)
            throw new BastionError(
              'EVALUATION_CANCELLED',
              `Evaluation ${id} was cancelled by principal ${by}; its charge stands and nothing is released`,
            );
        },
        ended(id) {
          inFlight.delete(id);
        },
      }),
    list: (principal) =>
      [...inFlight.values()].filter((e) => authorize(principal, 'job.read', e.target).allowed).map((e) => ({ ...e.run })),
    cancel(principal, id) {
      const entry = inFlight.get(id);
      if (!entry) refuseUnknown(deps, principal, 'job.cancel', 'evaluation', id);
      enforce(deps, principal, 'job.cancel', entry.target);
      stop(entry, principal.id);
      return { ...entry.run };
    },
    cancelAllOf(principalId, actor) {
      for (const entry of inFlight.values()) if (entry.run.ownerId === principalId) stop(entry, actor.id);
    },
  };
}

interface EvaluationHooks {
  started(run: EvaluationRun, target: JobTarget): void;
  /** Throws when the evaluation was cancelled. */
  check(id: string): void;
  ended(id: string): void;
}

/**
 * Evaluates a model the caller may use on a dataset whose policy lets it evaluate (as asked: private or
 * not, at this ε); charges the dataset's ledger first when private.
 */
export async function evaluateModel(
  deps: EvaluationDeps,
  principal: Principal,
  request: EvaluationRequest,
  hooks?: EvaluationHooks,
): Promise<EvaluationResult> {
  const isPrivate = request.epsilon !== undefined;
  const use = { private: isPrivate, epsilon: request.epsilon ?? null };
  const model = usableModel(deps, principal, request.modelId, 'evaluate', use);
  const dataset = getDataset(deps, principal, request.datasetId);
  requireDatasetUse(deps, principal, dataset.id, 'evaluate', use);
  requireBatchIndependence(
    model,
    dataset.inputs.map((t) => t.shape.length),
  );
  const id = uuidv7();
  const datasetOwnerIds = datasetOwners(deps.store, [dataset.id]);
  const audited = {
    principalId: principal.id,
    action: 'evaluation.create',
    target: { kind: 'evaluation' as const, id },
    outcome: 'ok' as const,
    details: { modelId: model.id, datasetId: dataset.id, private: isPrivate, epsilon: use.epsilon },
    subjects: [model.ownerId, ...datasetOwnerIds],
  };
  hooks?.started(
    {
      id,
      ownerId: principal.id,
      modelId: model.id,
      datasetId: dataset.id,
      private: isPrivate,
      epsilon: use.epsilon,
      status: 'running',
      startedAt: new Date().toISOString(),
    },
    { kind: 'evaluation', id, ownerId: principal.id, datasetOwnerIds },
  );
  try {
    return await measure();
  } finally {
    hooks?.ended(id);
  }

  async function measure(): Promise<EvaluationResult> {
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
        `A DP evaluation releases accuracy, which ${request.loss} does not have; regression models can only be evaluated exactly, ` +
          `where the owner allows it`,
      );
    }
    // Forward and loss on synthetic inputs of the dataset's public shapes: a model that cannot run here
    // is a 422 with its own message, before anything is charged.
    await preflightEvaluation(deps, { modelId: request.modelId, dataset, loss: request.loss });
    hooks?.check(id); // cancelled before the charge: nothing charged
    let release: DiscreteGaussianRelease | null = null;
    if (isPrivate) {
      // One discrete Gaussian release, calibrated by its exact δ(ε) (CKS20 Theorem 7): milliseconds.
      release = calibrateDiscreteGaussianRelease({
        targetEpsilon: request.epsilon!,
        delta: dataset.delta,
        sensitivity,
      });
      const event: PrivacyEvent = {
        kind: 'discrete-gaussian',
        sigmaSquared: release.sigmaSquared,
        sensitivity: release.sensitivity,
        count: 1,
      };
      await chargeLedger(deps, { kind: 'evaluation', id, principalId: principal.id }, [{ datasetId: dataset.id, events: [event] }], () =>
        deps.audit.record(audited),
      );
    } else {
      deps.audit.record(audited);
    }
    const measured = await deps.pool.run('evaluateModel', {
      blobs: deps.blobs,
      modelId: request.modelId,
      dataset: { id: dataset.id, layout },
      loss: request.loss,
    });
    hooks?.check(id); // cancelled while it ran: the charge stands, nothing is released
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
}
