// How a training job is shown: its row and, while it runs, its live figures, as its owner sees it or without
// its released results; ε of the steps run so far; and the one place epoch metrics are merged (an epoch is
// released once, however often it is reported).
import type { Static } from 'typebox';
import { createRdpAccountant } from '../privacy/accountant.js';
import type { TrainingSchema } from '../schemas/trainings.js';
import type { TrainingRow } from '../store/trainings.js';
import type { TrainingMetric } from './metrics.js';
import { planView, type TrainingPlan, type TrainingRequest } from './plan.js';
import { publicProgress } from './progress.js';

/** A training job as its owner sees it; the owners of its datasets and admins see it without `metrics`. */
export type Training = Static<typeof TrainingSchema>;

const rdp = createRdpAccountant();

/**
 * ε of the first `step` steps at the plan's δ, metrics included (the charged event's σ). The plan's
 * total bounds every prefix (ε grows with steps), and RDP's bound is sound too, so the smaller of the
 * two is an upper bound; RDP is used for the prefix because PLD costs ~100 ms per evaluation, too much
 * for the event loop at every progress event.
 */
function epsilonOfSteps(plan: TrainingPlan, step: number): number | null {
  const total = plan.epsilonTotal ?? plan.epsilon;
  const charged = plan.events[0];
  if (!plan.private || total === null || plan.delta === null || charged?.kind !== 'poisson-gaussian') return null;
  if (step <= 0) return 0;
  if (step >= plan.steps) return total;
  const prefix = rdp.epsilon([{ ...charged, count: step }], { delta: plan.delta });
  return Math.min(total, prefix);
}

/** What a running job knows before its row does: its step, step rate and last checkpoint. */
export interface LiveFigures {
  step: number;
  stepsPerSec: number | null;
  checkpointStep: number | null;
}

/**
 * The job as `full` (its owner) or without its released results (metrics). `live` is the running job's
 * figures, if it runs; `epsilonCache` keeps each job's ε at its last step (RDP is evaluated once a step).
 */
export function trainingView(
  row: TrainingRow,
  live: LiveFigures | undefined,
  full: boolean,
  epsilonCache: Map<string, { step: number; epsilon: number | null }>,
): Training {
  const plan = JSON.parse(row.plan) as TrainingPlan;
  const step = live?.step ?? row.step;
  let cached = epsilonCache.get(row.id);
  if (!cached || cached.step !== step) {
    cached = { step, epsilon: epsilonOfSteps(plan, step) };
    epsilonCache.set(row.id, cached);
  }
  // Live: from the step rate; afterwards: the stored figure, which is the same expected throughput.
  const progress = publicProgress(plan, { step, stepsPerSec: live?.stepsPerSec ?? null, running: row.status === 'running' });
  return {
    id: row.id,
    ownerId: row.ownerId,
    status: row.status,
    modelId: row.modelId,
    datasetIds: JSON.parse(row.datasetIds) as string[],
    request: JSON.parse(row.request) as TrainingRequest,
    plan: planView(plan),
    step,
    totalSteps: plan.steps,
    epoch: progress.epoch,
    epsilonPlanned: plan.epsilonTotal ?? plan.epsilon,
    epsilonSpent: cached.epsilon,
    delta: plan.delta,
    samplesPerSec: progress.samplesPerSec ?? row.samplesPerSec,
    etaSeconds: progress.etaSeconds,
    checkpointStep: live?.checkpointStep ?? row.checkpointStep,
    metrics: full ? (JSON.parse(row.metrics) as TrainingMetric[]) : [],
    error: row.error,
    resultModelId: row.resultModelId,
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
  };
}

/**
 * The row's metrics JSON with those of `metrics` whose epoch it lacks, in epoch order; null when none
 * is new. A metric comes back after a restart (from the checkpoint) with the value it had: an epoch
 * is released once, whatever number of times it is reported.
 */
export function mergeMetrics(row: TrainingRow, metrics: TrainingMetric[]): string | null {
  const known = JSON.parse(row.metrics) as TrainingMetric[];
  const fresh = metrics.filter((m) => !known.some((k) => k.epoch === m.epoch));
  return fresh.length === 0 ? null : JSON.stringify([...known, ...fresh].sort((a, b) => a.epoch - b.epoch));
}
