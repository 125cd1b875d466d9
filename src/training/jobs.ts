// Training jobs: accepting a training (plan, pre-flight on synthetic inputs, charge the ledger, store it
// queued), the FIFO queue that runs at most `maxConcurrent` jobs in the pool, each job's life (running →
// succeeded | failed | cancelled), its live progress for subscribers, cancellation, and resumption after a restart. The
// invariant it protects: a job's whole planned charge is on every dataset's ledger before any step
// runs, and nothing ever takes it back — a cancelled, failed or resumed job keeps it (over-charging
// after a crash between the charge and the row is possible, under-charging never).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { v7 as uuidv7 } from 'uuid';
import { blobPath, removeBlob, stagedBlob } from '../artifacts/blob-store.js';
import { datasetLayout } from '../artifacts/datasets.js';
import { createTrainedModel, getModel, type ModelLineage } from '../artifacts/models.js';
import type { ArtifactDeps } from '../artifacts/service.js';
import { BastionError } from '../errors.js';
import type { Principal } from '../governance/principals.js';
import type { OptimizerConfig, TrainerConfig } from '../native.js';
import { createRdpAccountant } from '../privacy/accountant.js';
import { chargeLedger } from '../privacy/ledger.js';
import {
  findTrainingRow,
  insertTraining,
  listTrainingRows,
  listTrainingRowsByStatus,
  updateTraining,
  type TrainingRow,
  type TrainingStatus,
} from '../store/trainings.js';
import { epochEnds, type MetricsSpec, type TrainingMetric } from './metrics.js';
import { planTraining, planView, type TrainingPlan, type TrainingRequest } from './plan.js';
import { preflightTraining } from './preflight.js';
import { publicProgress } from './progress.js';
import { checkpointIdentity, Control, type TrainingMessage, type TrainModelInput, type TrainModelOutput } from './runner.js';

export interface TrainingLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export type TrainingDeps = ArtifactDeps & { log?: TrainingLog };

export interface TrainingJobsOptions {
  /** Jobs running at once (default: the pool's size). */
  maxConcurrent?: number;
  /** Checkpoint every this many steps (≥ 1) … */
  checkpointEverySteps: number;
  /** … or this many milliseconds, whichever comes first. */
  checkpointEveryMs: number;
  /** Least time between progress events of a job (default 250; at most 1000). */
  progressIntervalMs?: number;
}

/** A training job as its owner sees it. */
export interface Training {
  id: string;
  ownerId: string;
  status: TrainingStatus;
  modelId: string;
  datasetIds: string[];
  request: TrainingRequest;
  plan: ReturnType<typeof planView>;
  step: number;
  totalSteps: number;
  /** Epochs run so far, fractional (training/progress.ts: public figures only). */
  epoch: number;
  epsilonPlanned: number | null;
  epsilonSpent: number | null;
  delta: number | null;
  /** Expected samples per second: the plan's mean batch size times the step rate, never a count of sampled records. */
  samplesPerSec: number | null;
  etaSeconds: number | null;
  checkpointStep: number | null;
  /** The per-epoch metrics released so far, oldest first. */
  metrics: TrainingMetric[];
  error: string | null;
  resultModelId: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export type TrainingEventType = 'state' | 'progress' | 'checkpoint' | 'metric' | 'completed' | 'failed' | 'cancelled';

export interface TrainingEvent {
  type: TrainingEventType;
  training: Training;
}

export interface TrainingSubscriber {
  /** Called with `state` first (synchronously, inside subscribe), then every event; after a terminal one, nothing more. */
  event(event: TrainingEvent): void;
  /** The server is shutting down: no more events will come. */
  end(): void;
}

export interface TrainingJobs {
  /** Plans, charges and queues a training for `principal`; rejects as planTraining does, or BUDGET_EXHAUSTED. */
  create(principal: Principal, request: TrainingRequest): Promise<Training>;
  list(principal: Principal): Training[];
  /** The owner's job; NOT_FOUND for anyone else. */
  get(principal: Principal, id: string): Training;
  /** Cancels a queued or running job and resolves once it has stopped; TRAINING_FINISHED when it already ended. */
  cancel(principal: Principal, id: string): Promise<Training>;
  /** Subscribes the owner to a job's events (NOT_FOUND otherwise); returns the unsubscribe function. */
  subscribe(principal: Principal, id: string, subscriber: TrainingSubscriber): () => void;
  /** Re-queues jobs a previous process left running (first), then the queued ones, and starts the queue. */
  start(): void;
  /** Asks running jobs to checkpoint and stop, waits for them, and ends every subscription. */
  close(): Promise<void>;
}

const terminal: ReadonlySet<TrainingStatus> = new Set(['succeeded', 'failed', 'cancelled']);
const terminalEvent: Record<'succeeded' | 'failed' | 'cancelled', TrainingEventType> = { succeeded: 'completed', failed: 'failed', cancelled: 'cancelled' };

/** package.json's version: the code version recorded in every trained model's lineage. */
export const codeVersion: string = (() => {
  // src/training/jobs.ts (tsx) and dist/training/jobs.js (tsc) are both two folders below the root.
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
})();

/** The trainer's configuration for a plan: DP-SGD with the plan's q, σ and clipping, or plain minibatches. */
export function trainerConfig(plan: TrainingPlan, request: TrainingRequest): TrainerConfig {
  const o = request.optimizer;
  const optimizer: OptimizerConfig =
    o.type === 'sgd'
      ? {
          kind: 'sgd',
          lr: o.learningRate,
          ...(o.momentum !== undefined ? { momentum: o.momentum } : {}),
          ...(o.dampening !== undefined ? { dampening: o.dampening } : {}),
          ...(o.nesterov !== undefined ? { nesterov: o.nesterov } : {}),
          ...(o.weightDecay !== undefined ? { weightDecay: o.weightDecay } : {}),
        }
      : {
          kind: o.type,
          lr: o.learningRate,
          ...(o.betas !== undefined ? { betas: o.betas } : {}),
          ...(o.eps !== undefined ? { eps: o.eps } : {}),
          ...(o.weightDecay !== undefined ? { weightDecay: o.weightDecay } : {}),
        };
  const loss = { kind: request.loss, ...(request.labelSmoothing !== undefined ? { labelSmoothing: request.labelSmoothing } : {}) };
  const common = { loss, optimizer, maxPhysicalBatchSize: plan.maxPhysicalBatchSize };
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

const rdp = createRdpAccountant();

/** ε for messages: 4 significant digits, no trailing zeros. */
const fmt = (x: number): string => String(Number(x.toPrecision(4)));

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

interface Live {
  step: number;
  stepsPerSec: number | null;
  checkpointStep: number | null;
  control: Int32Array;
  /** Settles when the pool task has ended and its outcome is recorded. */
  done: Promise<void>;
}

export function createTrainingJobs(deps: TrainingDeps, options: TrainingJobsOptions): TrainingJobs {
  const maxConcurrent = Math.max(1, options.maxConcurrent ?? deps.pool.size);
  const progressIntervalMs = Math.min(1000, options.progressIntervalMs ?? 250);
  const queue: string[] = [];
  const running = new Map<string, Live>();
  const subscribers = new Map<string, Set<TrainingSubscriber>>();
  const epsilonCache = new Map<string, { step: number; epsilon: number | null }>();
  let started = false;
  let closing = false;

  function view(row: TrainingRow): Training {
    const plan = JSON.parse(row.plan) as TrainingPlan;
    const live = running.get(row.id);
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
      metrics: JSON.parse(row.metrics) as TrainingMetric[],
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
  function mergeMetrics(row: TrainingRow, metrics: TrainingMetric[]): string | null {
    const known = JSON.parse(row.metrics) as TrainingMetric[];
    const fresh = metrics.filter((m) => !known.some((k) => k.epoch === m.epoch));
    return fresh.length === 0 ? null : JSON.stringify([...known, ...fresh].sort((a, b) => a.epoch - b.epoch));
  }

  function requireRow(id: string): TrainingRow {
    const row = findTrainingRow(deps.store, id);
    if (!row) throw new Error(`training ${id} vanished`);
    return row;
  }

  function ownRow(principal: Principal, id: string): TrainingRow {
    const row = findTrainingRow(deps.store, id);
    if (!row || row.ownerId !== principal.id) throw new BastionError('NOT_FOUND', `No training with id ${id}`);
    return row;
  }

  function emit(id: string, type: TrainingEventType): void {
    const set = subscribers.get(id);
    if (!set || set.size === 0) return;
    const training = view(requireRow(id));
    for (const s of [...set]) s.event({ type, training });
    if (type === 'completed' || type === 'failed' || type === 'cancelled') subscribers.delete(id);
  }

  function finishRow(id: string, status: 'succeeded' | 'failed' | 'cancelled', patch: Parameters<typeof updateTraining>[2] = {}): void {
    updateTraining(deps.store, id, { status, finishedAt: new Date().toISOString(), ...patch });
  }

  async function dropCheckpoint(id: string): Promise<void> {
    await removeBlob(deps.blobs, checkpointIdentity(id)).catch(() => undefined);
  }

  function pump(): void {
    while (started && !closing && running.size < maxConcurrent && queue.length > 0) launch(queue.shift()!);
  }

  function launch(id: string): void {
    const row = findTrainingRow(deps.store, id);
    if (!row || (row.status !== 'queued' && row.status !== 'running')) return;
    const plan = JSON.parse(row.plan) as TrainingPlan;
    const request = JSON.parse(row.request) as TrainingRequest;
    const control = new Int32Array(new SharedArrayBuffer(4));
    const live: Live = { step: row.step, stepsPerSec: null, checkpointStep: row.checkpointStep, control, done: Promise.resolve() };
    /** What the row keeps of the throughput: the expected figure at the latest step rate (public), or nothing. */
    const storedThroughput = (stepsPerSec: number | null) => {
      const samplesPerSec = publicProgress(plan, { step: live.step, stepsPerSec, running: false }).samplesPerSec;
      return samplesPerSec === null ? {} : { samplesPerSec };
    };
    let input: TrainModelInput;
    const channel = new MessageChannel();
    try {
      input = {
        jobId: id,
        blobs: deps.blobs,
        modelId: row.modelId,
        datasets: plan.datasetIds.map((datasetId) => ({ id: datasetId, layout: datasetLayout(deps, datasetId) })),
        config: trainerConfig(plan, request),
        totalSteps: plan.steps,
        metrics: metricsSpec(plan),
        resultModelId: uuidv7(),
        checkpointEverySteps: Math.max(1, options.checkpointEverySteps),
        checkpointEveryMs: options.checkpointEveryMs,
        progressIntervalMs,
        control: control.buffer as SharedArrayBuffer,
        port: channel.port2,
      };
    } catch (err) {
      channel.port1.close();
      finishRow(id, 'failed', { error: `The training cannot start: ${err instanceof Error ? err.message : String(err)}` });
      emit(id, 'failed');
      void dropCheckpoint(id);
      return;
    }
    running.set(id, live);
    updateTraining(deps.store, id, { status: 'running', ...(row.startedAt ? {} : { startedAt: new Date().toISOString() }) });
    emit(id, 'state');

    channel.port1.on('message', (message: TrainingMessage) => {
      if (message.type === 'started') {
        live.step = message.step;
        const metrics = mergeMetrics(requireRow(id), message.metrics);
        if (metrics) {
          updateTraining(deps.store, id, { metrics });
          emit(id, 'metric');
        }
        if (message.resumedFrom !== null) deps.log?.info({ trainingId: id, step: message.resumedFrom }, 'training resumed from its checkpoint');
        else deps.log?.info({ trainingId: id }, 'training started');
      } else if (message.type === 'progress') {
        live.step = message.step;
        live.stepsPerSec = message.stepsPerSec;
        emit(id, 'progress');
      } else {
        live.step = message.step;
        live.checkpointStep = message.step;
        // The checkpoint and the metric released with it land in one row update.
        const metrics = message.metric ? mergeMetrics(requireRow(id), [message.metric]) : null;
        updateTraining(deps.store, id, { step: message.step, checkpointStep: message.step, ...(metrics ? { metrics } : {}), ...storedThroughput(live.stepsPerSec) });
        emit(id, 'checkpoint');
        if (metrics) emit(id, 'metric');
      }
    });

    live.done = (async () => {
      try {
        const output = await deps.pool.run('trainModel', input, [channel.port2]);
        await record(id, row, plan, request, input.resultModelId, output, storedThroughput(output.stepsPerSec ?? live.stepsPerSec));
      } catch (err) {
        deps.log?.error({ trainingId: id, err }, 'training failed');
        try {
          finishRow(id, 'failed', { step: live.step, error: `The training failed after step ${live.step}: ${err instanceof Error ? err.message : String(err)}` });
          await dropCheckpoint(id);
          emit(id, 'failed');
        } catch {
          // The store is gone (shutdown): the row stays as it was and the next start resumes the job.
        }
      } finally {
        const status = deps.store.isOpen() ? findTrainingRow(deps.store, id)?.status : undefined;
        if (status && terminal.has(status)) deps.log?.info({ trainingId: id, status, step: live.step }, 'training ended');
        channel.port1.close();
        running.delete(id);
        pump();
      }
    })();
  }

  async function record(
    id: string,
    row: TrainingRow,
    plan: TrainingPlan,
    request: TrainingRequest,
    resultModelId: string,
    output: TrainModelOutput,
    throughput: { samplesPerSec?: number },
  ): Promise<void> {
    const live = running.get(id);
    if (live) live.step = output.steps;
    // The drops (data-derived counts) go to the row only, where each dataset's owner reads its own entry.
    const base = { step: output.steps, ...throughput, ...(output.dropped ? { dropped: JSON.stringify(output.dropped) } : {}) };
    switch (output.outcome) {
      case 'stopped':
        // Shutdown: the row stays `running`; the next start resumes it from its checkpoint.
        updateTraining(deps.store, id, base);
        deps.log?.info({ trainingId: id, step: output.steps }, 'training checkpointed and stopped for shutdown');
        return;
      case 'cancelled':
        finishRow(id, 'cancelled', base);
        await dropCheckpoint(id);
        emit(id, 'cancelled');
        return;
      case 'failed':
        finishRow(id, 'failed', { ...base, error: output.error });
        await dropCheckpoint(id);
        emit(id, 'failed');
        return;
      case 'succeeded': {
        const source = JSON.parse(row.request) as TrainingRequest;
        const staged = stagedBlob(deps.blobs, { artifactId: resultModelId, kind: 'model' }, output.model) as ReturnType<typeof stagedBlob> & { sha256: string };
        const owner = { id: row.ownerId } as Principal;
        let check;
        let sourceName = 'model';
        try {
          const sourceModel = getModel(deps, owner, row.modelId);
          check = sourceModel.check;
          sourceName = sourceModel.name;
        } catch {
          await staged.discard();
          finishRow(id, 'failed', { ...base, error: `The source model ${row.modelId} was deleted before the result could be recorded` });
          await dropCheckpoint(id);
          emit(id, 'failed');
          return;
        }
        const metrics = output.metric ? mergeMetrics(requireRow(id), [output.metric]) : null;
        const lineage: ModelLineage = {
          trainingId: id,
          sourceModelId: row.modelId,
          datasetIds: plan.datasetIds,
          private: plan.private,
          noiseMultiplier: plan.noiseMultiplier,
          sampleRate: plan.sampleRate,
          steps: output.steps,
          epochs: plan.epochs,
          expectedBatchSize: plan.expectedBatchSize,
          epsilon: plan.epsilon,
          delta: plan.delta,
          accountant: plan.accountant,
          maxGradNorm: plan.maxGradNorm,
          clipping: plan.clipping,
          loss: request.loss,
          optimizer: { ...source.optimizer },
          codeVersion,
        };
        await createTrainedModel(
          deps,
          {
            ownerId: row.ownerId,
            name: `${sourceName} (trained)`,
            description: `Trained by training ${id} from model ${row.modelId} on ${plan.datasetIds.length === 1 ? 'dataset' : 'datasets'} ${plan.datasetIds.join(', ')}`,
            check,
            lineage,
            staged,
          },
          () => finishRow(id, 'succeeded', { ...base, resultModelId, ...(metrics ? { metrics } : {}) }),
        );
        await dropCheckpoint(id);
        if (metrics) emit(id, 'metric');
        emit(id, 'completed');
        return;
      }
    }
  }

  return {
    async create(principal, request) {
      const plan = await planTraining(deps, principal, request);
      if (!plan.allowed) {
        const refused = plan.datasets.filter((d) => !d.allowed);
        throw new BastionError(
          'BUDGET_EXHAUSTED',
          `This training would spend ε = ${fmt(plan.epsilonTotal ?? 0)} at δ = ${plan.delta}${plan.metrics?.epsilon ? ' (metrics included)' : ''}; ` +
            refused.map((d) => `dataset ${d.datasetId} has spent ${fmt(d.epsilonSpent)} of its limit ${d.privacyLimit} (${fmt(Math.max(0, d.privacyLimit - d.epsilonSpent))} left) and would reach ${fmt(d.epsilonAfter)}`).join('; '),
          {
            extensions: {
              epsilon: plan.epsilonTotal,
              delta: plan.delta,
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
      // One step on synthetic inputs of the datasets' public shapes: a model that cannot train here is a
      // 422 with its own message, before anything is charged or stored.
      await preflightTraining(deps, principal, plan, trainerConfig(plan, request));
      const id = uuidv7();
      // The charge comes first: a crash before the row is written over-charges, never under-charges.
      if (plan.events.length > 0) await chargeLedger(deps, { kind: 'training', id }, plan.datasetIds.map((datasetId) => ({ datasetId, events: plan.events })));
      insertTraining(deps.store, {
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
      });
      const training = view(requireRow(id));
      queue.push(id);
      pump();
      return training;
    },

    list: (principal) => listTrainingRows(deps.store, principal.id).map(view),

    get: (principal, id) => view(ownRow(principal, id)),

    async cancel(principal, id) {
      const row = ownRow(principal, id);
      if (terminal.has(row.status)) throw new BastionError('TRAINING_FINISHED', `The training has already ${row.status === 'succeeded' ? 'succeeded' : row.status}; there is nothing to cancel`);
      const live = running.get(id);
      if (live) {
        Atomics.store(live.control, 0, Control.CANCEL);
        await live.done;
      } else {
        const at = queue.indexOf(id);
        if (at >= 0) queue.splice(at, 1);
        finishRow(id, 'cancelled');
        await dropCheckpoint(id);
        emit(id, 'cancelled');
      }
      return view(requireRow(id));
    },

    subscribe(principal, id, subscriber) {
      const row = ownRow(principal, id);
      const training = view(row);
      subscriber.event({ type: 'state', training });
      if (terminal.has(row.status)) {
        subscriber.event({ type: terminalEvent[row.status as 'succeeded' | 'failed' | 'cancelled'], training });
        return () => undefined;
      }
      let set = subscribers.get(id);
      if (!set) subscribers.set(id, (set = new Set()));
      set.add(subscriber);
      return () => {
        subscribers.get(id)?.delete(subscriber);
      };
    },

    start() {
      if (started) return;
      started = true;
      // Jobs a previous process left running resume first (their checkpoint, if any, is restored by
      // the worker); then the queued ones, oldest first.
      for (const row of listTrainingRowsByStatus(deps.store, 'running')) {
        updateTraining(deps.store, row.id, { status: 'queued' });
        queue.push(row.id);
      }
      for (const row of listTrainingRowsByStatus(deps.store, 'queued')) if (!queue.includes(row.id)) queue.push(row.id);
      pump();
    },

    async close() {
      if (closing) return;
      closing = true;
      for (const live of running.values()) Atomics.store(live.control, 0, Control.STOP);
      await Promise.all([...running.values()].map((l) => l.done));
      for (const set of subscribers.values()) for (const s of set) s.end();
      subscribers.clear();
    },
  };
}

/** Whether a job's checkpoint blob exists (for tests and diagnostics). */
export function hasCheckpoint(deps: Pick<TrainingDeps, 'blobs'>, id: string): boolean {
  return fs.existsSync(blobPath(deps.blobs, checkpointIdentity(id)));
}
