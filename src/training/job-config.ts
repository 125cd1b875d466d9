// What a job gives the worker: the trainer's configuration for a plan (DP-SGD with the plan's q, σ and
// clipping, or plain minibatches), what it releases per epoch, and the code version its model records.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrainerConfig } from '../native.js';
import { epochEnds, type MetricsSpec } from './metrics.js';
import type { TrainingPlan, TrainingRequest } from './plan.js';

/** package.json's version: the code version recorded in every trained model's lineage. */
export const codeVersion: string = (() => {
  // src/training/job-config.ts (tsx) and dist/training/job-config.js (tsc) are both two folders below the root.
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
})();

/** The trainer's configuration for a plan: DP-SGD with the plan's q, σ and clipping, or plain minibatches. */
export function trainerConfig(plan: TrainingPlan, request: TrainingRequest): TrainerConfig {
  const loss = { kind: request.loss, ...(request.labelSmoothing !== undefined ? { labelSmoothing: request.labelSmoothing } : {}) };
  // The optimizer crosses into the addon as the request states it (type, learningRate, ...).
  const common = { loss, optimizer: request.optimizer, maxPhysicalBatchSize: plan.maxPhysicalBatchSize };
  if (!plan.private) return { mode: 'non-private', batchSize: plan.expectedBatchSize, ...common };
  return {
    mode: 'private',
    ...(plan.metrics?.lossBound ? { lossBound: plan.metrics.lossBound } : {}),
    sampleRate: plan.sampleRate,
    noiseMultiplier: plan.noiseMultiplier,
    ...(plan.clipGroups ? { perLayer: plan.clipGroups } : { maxGradNorm: plan.maxGradNorm! }),
    ...common,
  };
}

/** What the job's worker releases per epoch (training/metrics.ts); null: nothing. */
export function metricsSpec(plan: TrainingPlan): MetricsSpec | null {
  if (!plan.metrics) return null;
  const ends = epochEnds(plan.steps, plan.epochs);
  if (!plan.private) return { kind: 'exact', epochEnds: ends };
  return {
    kind: 'noisy',
    lossBound: plan.metrics.lossBound!,
    noiseMultiplier: plan.metrics.noiseMultiplier,
    expectedBatchSize: plan.sampleRate * plan.sampleCount,
    epochEnds: ends,
  };
}
