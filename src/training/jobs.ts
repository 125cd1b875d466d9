// Training jobs: accepting a training (plan, pre-flight on synthetic inputs, charge the ledger and store it
// queued, in one transaction), the queue — fair between principals (fair-queue.ts), with a limit on each
// principal's queued and running jobs — that runs at most `maxConcurrent` jobs in the pool, who may see,
// follow and cancel a job (by whoever started it, the owners of its datasets, an admin, or the revocation
// of its principal), and resumption after a restart. Each job's life in the pool is job-runner.ts; how a
// job is shown, training-view.ts; its events, events.ts. The invariant it protects: a job's whole planned
// charge is on every dataset's ledger before any step runs, and nothing ever takes it back — a cancelled,
// failed or resumed job keeps it. Every change of a job's state is in the audit log with the change.
import fs from 'node:fs';
import { v7 as uuidv7 } from 'uuid';
import { blobPath } from '../artifacts/blob-store.js';
import { DEFAULT_MAX_JOBS_PER_PRINCIPAL } from '../config.js';
import { BastionError } from '../errors.js';
import { authorize, enforce, refuseUnknown, targetSubjects } from '../governance/authorize.js';
import type { Principal } from '../governance/principals.js';
import { trainingTarget } from '../governance/targets.js';
import { chargeLedger } from '../privacy/ledger.js';
import { findActivePrincipal } from '../store/principals.js';
import {
  activeTrainingsOf,
  findTrainingRow,
  insertTraining,
  listTrainingRows,
  listTrainingRowsByStatus,
  type TrainingRow,
  updateTraining,
} from '../store/trainings.js';
import { createTrainingEvents, type TrainingEventType, type TrainingSubscriber } from './events.js';
import { createFairQueue } from './fair-queue.js';
import { trainerConfig } from './job-config.js';
import { createJobRunner, requireTrainingRow, type TrainingDeps, terminal } from './job-runner.js';
import { planTraining, type TrainingPlan, type TrainingRequest } from './plan.js';
import { preflightTraining } from './preflight.js';
import { checkpointIdentity } from './runner.js';
import { type Training, trainingView } from './training-view.js';

export interface TrainingJobsOptions {
  /** Jobs running at once (default: the pool's size). */
  maxConcurrent?: number;
  /** Checkpoint every this many steps (≥ 1) … */
  checkpointEverySteps: number;
  /** … or this many milliseconds, whichever comes first. */
  checkpointEveryMs: number;
  /** Least time between progress events of a job (default 250; at most 1000). */
  progressIntervalMs?: number;
  /** Jobs one principal may have queued and running together (default DEFAULT_MAX_JOBS_PER_PRINCIPAL). */
  maxJobsPerPrincipal?: number;
}

/** What /metrics shows of the jobs (http/metrics.ts): counts and step rates, no ids, nothing computed from data. */
export interface TrainingStats {
  queued: number;
  running: number;
  /** Steps this process's jobs have run, all together (a resumed job counts again from its checkpoint). */
  steps: number;
  /** The sum of the running jobs' latest step rates, in steps per second. */
  stepsPerSec: number;
}

export interface TrainingJobs {
  /** Plans a training and pre-flights it (charging nothing): the plan with its gradient rules; rejects as planTraining and the pre-flight do. */
  plan(principal: Principal, request: TrainingRequest): Promise<TrainingPlan>;
  /** Plans, charges and queues a training for `principal`; rejects as planTraining does, BUDGET_EXHAUSTED or TOO_MANY_JOBS. */
  create(principal: Principal, request: TrainingRequest): Promise<Training>;
  /** The jobs `principal` may see: its own, those on its datasets, every job for an admin. */
  list(principal: Principal): Training[];
  /** One job `principal` may see; NOT_FOUND for anyone else. */
  get(principal: Principal, id: string): Training;
  /** Cancels a queued or running job and resolves once it has stopped; TRAINING_FINISHED when it already ended. */
  cancel(principal: Principal, id: string): Promise<Training>;
  /** Cancels every queued and running job of a principal that was just revoked; resolves once they stopped. */
  cancelAllOf(principalId: string, actor: Principal): Promise<void>;
  /** Subscribes one who may see the job to its events (NOT_FOUND otherwise); returns the unsubscribe function. */
  subscribe(principal: Principal, id: string, subscriber: TrainingSubscriber): () => void;
  /** Re-queues jobs a previous process left running (first), then the queued ones, and starts the queue. */
  start(): void;
  /** Asks running jobs to checkpoint and stop, waits for them, and ends every subscription. */
  close(): Promise<void>;
  /** Queue length, running jobs and steps, for /metrics. */
  stats(): TrainingStats;
}

const terminalEvent: Record<'succeeded' | 'failed' | 'cancelled', TrainingEventType> = {
  succeeded: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
};

/** ε for messages: 4 significant digits, no trailing zeros. */
const fmt = (x: number): string => String(Number(x.toPrecision(4)));

export function createTrainingJobs(deps: TrainingDeps, options: TrainingJobsOptions): TrainingJobs {
  const maxConcurrent = Math.max(1, options.maxConcurrent ?? deps.pool.size);
  const progressIntervalMs = Math.min(1000, options.progressIntervalMs ?? 250);
  const maxJobsPerPrincipal = Math.max(1, options.maxJobsPerPrincipal ?? DEFAULT_MAX_JOBS_PER_PRINCIPAL);
  const queue = createFairQueue();
  const epsilonCache = new Map<string, { step: number; epsilon: number | null }>();
  let started = false;
  let closing = false;
  const runner = createJobRunner(
    deps,
    { checkpointEverySteps: options.checkpointEverySteps, checkpointEveryMs: options.checkpointEveryMs, progressIntervalMs },
    { emit: (id, type) => events.emit(id, type), onSettled: () => pump() },
  );
  /** The job as `full` (its owner) or without its released results (metrics). */
  const view = (row: TrainingRow, full = true): Training => trainingView(row, runner.live(row.id), full, epsilonCache);
  const requireRow = (id: string): TrainingRow => requireTrainingRow(deps.store, id);
  const events = createTrainingEvents((id) => {
    const row = requireRow(id);
    return { full: view(row, true), redacted: view(row, false) };
  });

  /** The row, once `principal` may do `action` on it; NOT_FOUND or FORBIDDEN (audited) otherwise. */
  function authorizedRow(principal: Principal, id: string, action: 'job.read' | 'job.cancel'): TrainingRow {
    const row = findTrainingRow(deps.store, id);
    if (!row) refuseUnknown(deps, principal, action, 'training', id);
    enforce(deps, principal, action, trainingTarget(deps.store, row));
    return row;
  }

  const seesResults = (principal: Principal, row: TrainingRow) =>
    authorize(principal, 'job.readResults', trainingTarget(deps.store, row)).allowed;

  function pump(): void {
    while (started && !closing && runner.stats().running < maxConcurrent && queue.size > 0) runner.launch(queue.shift()!);
  }

  /** Cancels a queued or running job for `actor` and resolves once it has stopped (within one step). */
  async function stop(id: string, actor: string | null): Promise<void> {
    queue.remove(id);
    await runner.stop(id, actor);
  }

  /** TOO_MANY_JOBS when the principal already has its limit of queued and running jobs. */
  function requireRoomFor(principalId: string): void {
    const active = activeTrainingsOf(deps.store, principalId).length;
    if (active >= maxJobsPerPrincipal) {
      throw new BastionError(
        'TOO_MANY_JOBS',
        `This principal has ${active} trainings queued or running, the most it may have at once (${maxJobsPerPrincipal}); wait for ` +
          `one to end or cancel one`,
        {
          retryAfterSeconds: 60,
          extensions: { limit: maxJobsPerPrincipal },
        },
      );
    }
  }

  /** One step on synthetic inputs of the datasets' public shapes: a model that cannot train here is a 422 with its own message. */
  async function preflighted(plan: TrainingPlan, request: TrainingRequest): Promise<TrainingPlan> {
    const { gradients } = await preflightTraining(deps, plan, trainerConfig(plan, request));
    return { ...plan, gradients };
  }

  return {
    async plan(principal, request) {
      return preflighted(await planTraining(deps, principal, request), request);
    },

    async create(principal, request) {
      requireRoomFor(principal.id);
      const planned = await planTraining(deps, principal, request);
      if (!planned.allowed) {
        const refused = planned.datasets.filter((d) => !d.allowed);
        throw new BastionError(
          'BUDGET_EXHAUSTED',
          `This training would spend ε = ${fmt(planned.epsilonTotal ?? 0)} at δ = ${planned.delta}${planned.metrics?.epsilon ? ' (metrics included)' : ''}; ` +
            refused
              .map(
                (d) =>
                  `dataset ${d.datasetId} has spent ${fmt(d.epsilonSpent)} of ` +
                  `its limit ${d.privacyLimit} (${fmt(Math.max(0, d.privacyLimit - d.epsilonSpent))} left) and ` +
                  `would reach ${fmt(d.epsilonAfter)}`,
              )
              .join('; '),
          {
            extensions: {
              epsilon: planned.epsilonTotal,
              delta: planned.delta,
              datasets: refused.map((d) => ({
                datasetId: d.datasetId,
                privacyLimit: d.privacyLimit,
                epsilonSpent: d.epsilonSpent,
                epsilonRemaining: Math.max(0, d.privacyLimit - d.epsilonSpent),
                epsilonAfter: d.epsilonAfter,
              })),
            },
          },
        );
      }
      // Before anything is charged or stored.
      const plan = await preflighted(planned, request);
      const id = uuidv7();
      const row: TrainingRow = {
        id,
        ownerId: principal.id,
        modelId: plan.modelId,
        datasetIds: JSON.stringify(plan.datasetIds),
        status: 'queued',
        request: JSON.stringify(request),
        plan: JSON.stringify(plan),
        step: 0,
        checkpointStep: null,
        samplesPerSec: null,
        error: null,
        resultModelId: null,
        metrics: '[]',
        dropped: null,
        createdAt: new Date().toISOString(),
        startedAt: null,
        finishedAt: null,
      };
      // The job, its charge to every dataset's ledger and their audit entries commit together.
      const insert = () => {
        requireRoomFor(principal.id);
        insertTraining(deps.store, row);
        deps.audit.record({
          principalId: principal.id,
          action: 'training.create',
          target: { kind: 'training', id },
          outcome: 'ok',
          details: {
            modelId: plan.modelId,
            datasetIds: plan.datasetIds,
            private: plan.private,
            epsilon: plan.epsilonTotal ?? plan.epsilon,
            delta: plan.delta,
            steps: plan.steps,
          },
          subjects: targetSubjects(trainingTarget(deps.store, row)),
        });
      };
      if (plan.events.length > 0) {
        await chargeLedger(
          deps,
          { kind: 'training', id, principalId: principal.id },
          plan.datasetIds.map((datasetId) => ({ datasetId, events: plan.events })),
          insert,
        );
      } else {
        deps.store.transaction(insert);
      }
      const training = view(requireRow(id));
      queue.push(id, principal.id);
      pump();
      return training;
    },

    list: (principal) =>
      listTrainingRows(deps.store).flatMap((row) => {
        // One target per row (its datasets' owners are looked up once), for both decisions.
        const target = trainingTarget(deps.store, row);
        if (!authorize(principal, 'job.read', target).allowed) return [];
        return [view(row, authorize(principal, 'job.readResults', target).allowed)];
      }),

    get(principal, id) {
      const row = authorizedRow(principal, id, 'job.read');
      return view(row, seesResults(principal, row));
    },

    async cancel(principal, id) {
      const row = authorizedRow(principal, id, 'job.cancel');
      if (terminal.has(row.status))
        throw new BastionError(
          'TRAINING_FINISHED',
          `The training has already ${row.status === 'succeeded' ? 'succeeded' : row.status}; there is nothing to cancel`,
        );
      await stop(id, principal.id);
      return view(requireRow(id), seesResults(principal, row));
    },

    async cancelAllOf(principalId, actor) {
      await Promise.all(activeTrainingsOf(deps.store, principalId).map((row) => stop(row.id, actor.id)));
    },

    subscribe(principal, id, subscriber) {
      const row = authorizedRow(principal, id, 'job.read');
      const sees = seesResults(principal, row);
      const training = view(row, sees);
      subscriber.event({ type: 'state', training });
      if (terminal.has(row.status)) {
        subscriber.event({ type: terminalEvent[row.status as 'succeeded' | 'failed' | 'cancelled'], training });
        return () => undefined;
      }
      return events.add(id, subscriber, sees);
    },

    start() {
      if (started) return;
      started = true;
      // Jobs of principals revoked meanwhile end here; the others a previous process left running resume
      // first (their checkpoint, if any, is restored by the worker); then the queued ones, oldest first.
      for (const status of ['running', 'queued'] as const) {
        for (const row of listTrainingRowsByStatus(deps.store, status)) {
          if (!findActivePrincipal(deps.store, row.ownerId)) {
            void runner.stop(row.id, null); // not running here: ends the row at once, then drops its checkpoint
            continue;
          }
          if (status === 'running') updateTraining(deps.store, row.id, { status: 'queued' });
          queue.push(row.id, row.ownerId);
        }
      }
      pump();
    },

    stats: () => ({ queued: queue.size, ...runner.stats() }),

    async close() {
      if (closing) return;
      closing = true;
      await runner.stopAll();
      events.endAll();
    },
  };
}

/** Whether a job's checkpoint blob exists (for tests and diagnostics). */
export function hasCheckpoint(deps: Pick<TrainingDeps, 'blobs'>, id: string): boolean {
  return fs.existsSync(blobPath(deps.blobs, checkpointIdentity(id)));
}
