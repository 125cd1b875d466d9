// Training metrics: the mean training loss of each epoch, released at the epoch's last step.
//
// Private trainings release it only when asked (metricsEpsilon > 0), with noise. Each step t sums its
// Poisson batch's per-sample losses, clamped to [0, L] inside the trainer: S_t = Σ_{i∈B_t} clamp(l_i, 0, L).
// One sample changes S_t by at most L, so releasing S_t + N(0, σ_m²L²) at every step is a Poisson-
// subsampled Gaussian mechanism with the training's own q and steps. The epoch's release is
// (Σ_t S_t + N(0, k·σ_m²L²)) / (k·q·N) over its k steps: that has exactly the distribution of the sum of
// the k per-step releases, so it is their post-processing and costs nothing more. The denominator
// k·q·N is the expected sample count of those steps, public like q·N in the gradient's normalisation.
// The gradient and the loss of a step come from the same batch, so the plan charges them as one
// mechanism: noise σ on the gradient (sensitivity C) and σ_m on the loss sum (sensitivity L) together
// are a Gaussian mechanism with multiplier (σ⁻² + σ_m⁻²)^(−1/2); the plan calibrates that joint σ to
// targetEpsilon + metricsEpsilon and derives σ_m from it (privacy/calibration.ts, calibrateTrainingNoise).
//
// Non-private trainings (every owner allowed non-private use) release the exact mean loss.
//
// A metric is released only at a durable checkpoint (or with the result), so no step whose loss went
// into a release is ever run again after a crash, and no step's loss enters two releases.
import type { Static } from 'typebox';
import { gaussianNoise } from '../privacy/noise.js';
import type { TrainingMetricSchema } from '../schemas/trainings.js';

/** One released metric, as the API shows it. */
export type TrainingMetric = Static<typeof TrainingMetricSchema>;

/** How a job releases metrics (null in the job input: none). */
export type MetricsSpec =
  | {
      kind: 'noisy';
      /** L: per-sample losses are clamped to [0, L]. */
      lossBound: number;
      /** σ_m: the noise on each step's clamped loss sum is σ_m·L. */
      noiseMultiplier: number;
      /** q·N, the expected samples per step. */
      expectedBatchSize: number;
      /** Step numbers that end an epoch, increasing; the last is the training's last step. */
      epochEnds: number[];
    }
  | { kind: 'exact'; epochEnds: number[] };

/** Default L for noisy metrics: above the initial cross-entropy of up to 148 classes (ln 148 ≈ 5). */
export const DEFAULT_METRICS_LOSS_BOUND = 5;

/** Steps ending epochs 1…⌈epochs⌉ of a training of `steps` steps: ⌈e · steps / epochs⌉, and `steps` last. */
export function epochEnds(steps: number, epochs: number): number[] {
  const ends: number[] = [];
  for (let e = 1; e < epochs; e += 1) {
    const end = Math.ceil((e * steps) / epochs);
    if (end > (ends.at(-1) ?? 0) && end < steps) ends.push(end);
  }
  ends.push(steps);
  return ends;
}

/** The running sums of the epoch in progress; they travel in the sealed checkpoint (un-noised). */
export interface EpochSums {
  steps: number;
  /** Σ clippedLossSum (noisy) or Σ lossSum (exact). */
  lossSum: number;
  /** Realised samples (exact metrics only divide by them). */
  samples: number;
}

export const emptySums = (): EpochSums => ({ steps: 0, lossSum: 0, samples: 0 });

/** Adds one step's sums; throws when a noisy spec meets a step without clippedLossSum (a trainer built without lossBound). */
export function addStep(spec: MetricsSpec, sums: EpochSums, step: { samples: number; lossSum: number; clippedLossSum?: number }): void {
  const loss = spec.kind === 'noisy' ? step.clippedLossSum : step.lossSum;
  if (loss === undefined) throw new Error('The trainer reports no clamped loss sum: it was built without lossBound');
  sums.steps += 1;
  sums.lossSum += loss;
  sums.samples += step.samples;
}

/** The index of the epoch that `step` ends (0-based), or -1. */
export function epochEndingAt(spec: MetricsSpec, step: number): number {
  return spec.epochEnds.indexOf(step);
}

/** The release for the epoch ending at `step` from its sums (which must cover ≥ 1 step). */
export function releaseMetric(
  spec: MetricsSpec,
  step: number,
  sums: EpochSums,
  noise: (std: number) => number = gaussianNoise,
): TrainingMetric {
  const epoch = epochEndingAt(spec, step) + 1;
  if (epoch === 0) throw new RangeError(`Step ${step} ends no epoch`);
  if (sums.steps < 1) throw new RangeError('An epoch metric needs at least one step');
  if (spec.kind === 'exact') {
    return { epoch, step, steps: sums.steps, meanLoss: sums.samples > 0 ? sums.lossSum / sums.samples : 0, noiseStd: 0 };
  }
  const expectedSamples = sums.steps * spec.expectedBatchSize;
  const sumStd = spec.noiseMultiplier * spec.lossBound * Math.sqrt(sums.steps);
  return { epoch, step, steps: sums.steps, meanLoss: (sums.lossSum + noise(sumStd)) / expectedSamples, noiseStd: sumStd / expectedSamples };
}
