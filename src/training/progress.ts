// A job's progress as its owner (the model's author, an adversary) sees it: the step, the epoch, the
// throughput and the time left. Invariant: every figure is a function of the plan (public) and of the
// step count and step rate alone, never of a batch's realised size. Under Poisson sampling the number of
// records a step draws is random and depends on the data (on who is in it); publishing it, or a
// throughput counted from it, would be a release no accountant charges (exact PLD of the sizes alone:
// ε ≈ 0.14 for the Fashion-MNIST recipe). What the step rate itself reveals is measured by
// `npm run bench:step-timing` and described in the README's security section.
import type { TrainingPlan } from './plan.js';

export interface PublicProgress {
  /** Epochs run so far, fractional: step · q for a private training, step · epochs / steps otherwise. */
  epoch: number;
  /** Expected samples per second: the mean batch size the plan fixes times stepsPerSec; null without a rate. */
  samplesPerSec: number | null;
  /** Seconds left at the current step rate: (steps − step) / stepsPerSec; null without a rate. */
  etaSeconds: number | null;
}

/**
 * The samples one step processes on average, from the plan alone: q · N under Poisson sampling (the
 * expected batch size), epochs · N / steps with fixed shuffled batches (those sizes are public).
 */
export function expectedSamplesPerStep(plan: Pick<TrainingPlan, 'private' | 'sampleRate' | 'sampleCount' | 'epochs' | 'steps'>): number {
  if (plan.private) return plan.sampleRate * plan.sampleCount;
  return plan.steps > 0 ? (plan.epochs * plan.sampleCount) / plan.steps : 0;
}

/**
 * Progress at `step` (0 … plan.steps) with the recent step rate `stepsPerSec` (steps per second, > 0,
 * or null when none was measured); `running` says whether there is time left to estimate.
 */
export function publicProgress(
  plan: Pick<TrainingPlan, 'private' | 'sampleRate' | 'sampleCount' | 'epochs' | 'steps'>,
  options: { step: number; stepsPerSec: number | null; running: boolean },
): PublicProgress {
  const { step, stepsPerSec, running } = options;
  const rate = stepsPerSec !== null && stepsPerSec > 0 && Number.isFinite(stepsPerSec) ? stepsPerSec : null;
  const epoch = plan.private ? step * plan.sampleRate : plan.steps > 0 ? (step * plan.epochs) / plan.steps : 0;
  return {
    epoch,
    samplesPerSec: rate === null ? null : expectedSamplesPerStep(plan) * rate,
    etaSeconds: running && rate !== null ? Math.max(0, plan.steps - step) / rate : null,
  };
}
