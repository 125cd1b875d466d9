// Training jobs: accepting a training (plan, pre-flight on synthetic inputs, charge the ledger and store it
// queued, in one transaction), the queue — fair between principals (fair-queue.ts), with a limit on each
// principal's queued and running jobs — that runs at most `maxConcurrent` jobs in the pool, each job's
// life (running → succeeded | failed | cancelled), its live progress for subscribers, cancellation (by
// whoever started it, the owners of its datasets, an admin, or the revocation of its principal), and
// resumption after a restart. The invariant it protects: a job's whole planned charge is on every
// dataset's ledger before any step runs, and nothing ever takes it back — a cancelled, failed or
// resumed job keeps it. Every change of a job's state is in the audit log with the change.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { v7 as uuidv7 } from 'uuid';
import { blobPath, removeBlob, stagedBlob } from '../artifacts/blob-store.js';
import { datasetLayout } from '../artifacts/datasets.js';
import { createTrainedModel, storedModel, type ModelLineage } from '../artifacts/models.js';
import type { ArtifactDeps } from '../artifacts/service.js';
import { DEFAULT_MAX_JOBS_PER_PRINCIPAL } from '../config.js';
import { BastionError } from '../errors.js';
import { authorize, enforce, refuseUnknown, targetSubjects } from '../governance/authorize.js';
import { parseDatasetPolicy } from '../governance/policy.js';
import type { Principal } from '../governance/principals.js';
import { datasetOwners, trainingTarget } from '../governance/targets.js';
import { findDatasetRow } from '../store/artifacts.js';
import { findActivePrincipal } from '../store/principals.js';
import type { TrainerConfig } from '../native.js';
import { createRdpAccountant } from '../privacy/accountant.js';
import { chargeLedger } from '../privacy/ledger.js';
import {
  activeTrainingsOf,
  findTrainingRow,
  insertTraining,
  listTrainingRows,
  listTrainingRowsByStatus,
  updateTraining,
  type TrainingRow,
  type TrainingStatus,
} from '../store/trainings.js';
import { createFairQueue } from './fair-queue.js';
import { epochEnds, type MetricsSpec, type TrainingMetric } from './metrics.js';
import { planTraining, planView, type TrainingPlan, type TrainingRequest } from './plan.js';
import { preflightTraining } from './preflight.js';
import { publicProgress } from './progress.js';
import { datasetCommitment, type CertificateSigner } from '../enclave/training-certificate.js';
import { checkpointIdentity, Control, type TrainingMessage, type TrainModelInput, type TrainModelOutput } from './runner.js';

export interface TrainingLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** `certificates` signs what each successful training did (src/enclave/training-certificate.ts). */
export type TrainingDeps = ArtifactDeps & { log?: TrainingLog; certificates: CertificateSigner };

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


/** A training job as its owner sees it; the owners of its datasets and admins see it without `metrics`. */
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

/** What /metrics shows of the jobs (http/metrics.ts): counts and step rates, no ids, nothing computed from data. */
export interface TrainingStats {
  /** Jobs waiting in the queue. */
  queued: number;
  /** Jobs running in the pool. */
  running: number;
  /** Steps this process's jobs have run, all together (a resumed job counts again from its checkpoint). */
  steps: number;
  /** The sum of the running jobs' latest step rates, in steps per second. */
  stepsPerSec: number;
}

export interface TrainingSubscriber {
  /** Called with `state` first (synchronously, inside subscribe), then every event; after a terminal one, nothing more. */
  event(event: TrainingEvent): void;
  /** The server is shutting down: no more events will come. */
  end(): void;
}

export interface TrainingJobs {
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
  /** Who asked the job to cancel (recorded with its end). */
  cancelledBy: string | null;
}

/**
 * What a trained model carries of its datasets' policies, as they are when it is created: the datasets'
 * owners become its co-owners, and each owner (but the trainer) whose policy says `release: approval`
 * must approve it before it can leave.
 */
function releaseRule(store: TrainingDeps['store'], trainerId: string, datasetIds: readonly string[]): { coOwnerIds: string[]; approvals: { approverId: string; datasetIds: string[] }[] } {
  const asks = new Map<string, string[]>();
  for (const id of datasetIds) {
    const row = findDatasetRow(store, id);
    if (!row || row.ownerId === trainerId || parseDatasetPolicy(row.policy).release !== 'approval') continue;
    asks.set(row.ownerId, [...(asks.get(row.ownerId) ?? []), id]);
  }
  return {
    coOwnerIds: datasetOwners(store, datasetIds).filter((id) => id !== trainerId),
    approvals: [...asks].map(([approverId, ids]) => ({ approverId, datasetIds: ids })),
  };
}

export function createTrainingJobs(deps: TrainingDeps, options: TrainingJobsOptions): TrainingJobs {
  const maxConcurrent = Math.max(1, options.maxConcurrent ?? deps.pool.size);
  const progressIntervalMs = Math.min(1000, options.progressIntervalMs ?? 250);
  const maxJobsPerPrincipal = Math.max(1, options.maxJobsPerPrincipal ?? DEFAULT_MAX_JOBS_PER_PRINCIPAL);
  const queue = createFairQueue();
  const running = new Map<string, Live>();
  /** Each subscriber with whether it sees the job's released results (its owner) or not. */
  const subscribers = new Map<string, Map<TrainingSubscriber, boolean>>();
  const epsilonCache = new Map<string, { step: number; epsilon: number | null }>();
  let started = false;
  let closing = false;
  /** Steps run so far by every job of this process (TrainingStats.steps). */
  let stepsRun = 0;
  const advance = (live: Live, step: number) => {
    if (step > live.step) stepsRun += step - live.step;
    live.step = step;
  };

  /** The job as `full` (its owner) or without its released results (metrics). */
  function view(row: TrainingRow, full = true): Training {
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

  /** The row, once `principal` may do `action` on it; NOT_FOUND or FORBIDDEN (audited) otherwise. */
  function authorizedRow(principal: Principal, id: string, action: 'job.read' | 'job.cancel'): TrainingRow {
    const row = findTrainingRow(deps.store, id);
    if (!row) refuseUnknown(deps, principal, action, 'training', id);
    enforce(deps, principal, action, trainingTarget(deps.store, row));
    return row;
  }

  const seesResults = (principal: Principal, row: TrainingRow) => authorize(principal, 'job.readResults', trainingTarget(deps.store, row)).allowed;

  function emit(id: string, type: TrainingEventType): void {
    const set = subscribers.get(id);
    if (!set || set.size === 0) return;
    const row = requireRow(id);
    const full = view(row, true);
    const redacted = view(row, false);
    for (const [s, sees] of [...set]) s.event({ type, training: sees ? full : redacted });
    if (type === 'completed' || type === 'failed' || type === 'cancelled') subscribers.delete(id);
  }

  /** A change of the job's row and its audit entry, in one transaction. */
  function changeRow(id: string, patch: Parameters<typeof updateTraining>[2], action: string, actor: string | null, details: Record<string, unknown> = {}): void {
    deps.store.transaction(() => {
      updateTraining(deps.store, id, patch);
      const row = requireRow(id);
      deps.audit.record({
        principalId: actor,
        action,
        target: { kind: 'training', id },
        outcome: 'ok',
        details: { status: row.status, step: row.step, ...details },
        subjects: targetSubjects(trainingTarget(deps.store, row)),
      });
    });
  }

  function finishRow(id: string, status: 'succeeded' | 'failed' | 'cancelled', patch: Parameters<typeof updateTraining>[2] = {}, actor: string | null = null): void {
    changeRow(id, { status, finishedAt: new Date().toISOString(), ...patch }, status === 'cancelled' ? 'training.cancel' : 'training.finish', actor);
  }

  async function dropCheckpoint(id: string): Promise<void> {
    await removeBlob(deps.blobs, checkpointIdentity(id)).catch(() => undefined);
  }

  function pump(): void {
    while (started && !closing && running.size < maxConcurrent && queue.size > 0) launch(queue.shift()!);
  }

  function launch(id: string): void {
    const row = findTrainingRow(deps.store, id);
    if (!row || (row.status !== 'queued' && row.status !== 'running')) return;
    const plan = JSON.parse(row.plan) as TrainingPlan;
    const request = JSON.parse(row.request) as TrainingRequest;
    const control = new Int32Array(new SharedArrayBuffer(4));
    const live: Live = { step: row.step, stepsPerSec: null, checkpointStep: row.checkpointStep, control, done: Promise.resolve(), cancelledBy: null };
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
    changeRow(id, { status: 'running', ...(row.startedAt ? {} : { startedAt: new Date().toISOString() }) }, row.startedAt ? 'training.resume' : 'training.start', null);
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
        advance(live, message.step);
        live.stepsPerSec = message.stepsPerSec;
        emit(id, 'progress');
      } else {
        advance(live, message.step);
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
    if (live) advance(live, output.steps);
    // The drops (data-derived counts) go to the row only, where each dataset's owner reads its own entry.
    const base = { step: output.steps, ...throughput, ...(output.dropped ? { dropped: JSON.stringify(output.dropped) } : {}) };
    switch (output.outcome) {
      case 'stopped':
        // Shutdown: the row stays `running`; the next start resumes it from its checkpoint.
        updateTraining(deps.store, id, base);
        deps.log?.info({ trainingId: id, step: output.steps }, 'training checkpointed and stopped for shutdown');
        return;
      case 'cancelled':
        finishRow(id, 'cancelled', base, live?.cancelledBy ?? null);
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
        const sourceModel = storedModel(deps, row.modelId);
        const datasetRows = plan.datasetIds.map((datasetId) => findDatasetRow(deps.store, datasetId));
        const missingDataset = plan.datasetIds.find((_, i) => !datasetRows[i]);
        const gone = !sourceModel ? `The source model ${row.modelId}` : missingDataset ? `The dataset ${missingDataset}` : null;
        if (!sourceModel || gone) {
          await staged.discard();
          finishRow(id, 'failed', { ...base, error: `${gone} was deleted before the result could be recorded` });
          await dropCheckpoint(id);
          emit(id, 'failed');
          return;
        }
        const { check, name: sourceName } = sourceModel;
        const finishedAt = new Date().toISOString();
        let metrics: string | null = null;
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
        const certificate = deps.certificates.sign({
          modelId: resultModelId,
          trainingId: id,
          modelSha256: staged.sha256,
          sourceModelId: row.modelId,
          sourceModelSha256: sourceModel.sha256,
          datasets: datasetRows.map((d) => ({ id: d!.id, commitment: datasetCommitment(d!.commitmentSalt, d!.sha256) })),
          private: plan.private,
          noiseMultiplier: plan.noiseMultiplier,
          sampleRate: plan.sampleRate,
          steps: output.steps,
          epsilon: plan.epsilon,
          delta: plan.delta,
          accountant: plan.accountant,
          maxGradNorm: plan.maxGradNorm,
          clipping: plan.clipping,
          codeVersion,
          finishedAt,
        });
        await createTrainedModel(
          deps,
          {
            ...releaseRule(deps.store, row.ownerId, plan.datasetIds),
            ownerId: row.ownerId,
            name: `${sourceName} (trained)`,
            description: `Trained by training ${id} from model ${row.modelId} on ${plan.datasetIds.length === 1 ? 'dataset' : 'datasets'} ${plan.datasetIds.join(', ')}`,
            check,
            lineage,
            certificate,
            staged,
          },
          () => {
            // Merged here, in the transaction: a checkpoint message (its own port) can land while the
            // result is committed, and its metric must not be overwritten by an older copy of the row.
            metrics = output.metric ? mergeMetrics(requireRow(id), [output.metric]) : null;
            finishRow(id, 'succeeded', { ...base, finishedAt, resultModelId, ...(metrics ? { metrics } : {}) });
          },
        );
        await dropCheckpoint(id);
        if (metrics) emit(id, 'metric');
        emit(id, 'completed');
        return;
      }
    }
  }


  /** TOO_MANY_JOBS when the principal already has its limit of queued and running jobs. */
  function requireRoomFor(principalId: string): void {
    const active = activeTrainingsOf(deps.store, principalId).length;
    if (active >= maxJobsPerPrincipal) {
      throw new BastionError('TOO_MANY_JOBS', `This principal has ${active} trainings queued or running, the most it may have at once (${maxJobsPerPrincipal}); wait for one to end or cancel one`, {
        retryAfterSeconds: 60,
        extensions: { limit: maxJobsPerPrincipal },
      });
    }
  }

  /** Cancels a queued or running job for `actor` and resolves once it has stopped (within one step). */
  async function stop(id: string, actor: string | null): Promise<void> {
    const live = running.get(id);
    if (live) {
      live.cancelledBy ??= actor;
      Atomics.store(live.control, 0, Control.CANCEL);
      await live.done;
      return;
    }
    queue.remove(id);
    const row = findTrainingRow(deps.store, id);
    if (!row || terminal.has(row.status)) return;
    finishRow(id, 'cancelled', {}, actor);
    await dropCheckpoint(id);
    emit(id, 'cancelled');
  }

  return {
    async create(principal, request) {
      requireRoomFor(principal.id);
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
      await preflightTraining(deps, plan, trainerConfig(plan, request));
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
          details: { modelId: plan.modelId, datasetIds: plan.datasetIds, private: plan.private, epsilon: plan.epsilonTotal ?? plan.epsilon, delta: plan.delta, steps: plan.steps },
          subjects: targetSubjects(trainingTarget(deps.store, row)),
        });
      };
      if (plan.events.length > 0) {
        await chargeLedger(deps, { kind: 'training', id, principalId: principal.id }, plan.datasetIds.map((datasetId) => ({ datasetId, events: plan.events })), insert);
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
      if (terminal.has(row.status)) throw new BastionError('TRAINING_FINISHED', `The training has already ${row.status === 'succeeded' ? 'succeeded' : row.status}; there is nothing to cancel`);
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
      let set = subscribers.get(id);
      if (!set) subscribers.set(id, (set = new Map()));
      set.set(subscriber, sees);
      return () => {
        subscribers.get(id)?.delete(subscriber);
      };
    },

    start() {
      if (started) return;
      started = true;
      // Jobs of principals revoked meanwhile end here; the others a previous process left running resume
      // first (their checkpoint, if any, is restored by the worker); then the queued ones, oldest first.
      for (const status of ['running', 'queued'] as const) {
        for (const row of listTrainingRowsByStatus(deps.store, status)) {
          if (!findActivePrincipal(deps.store, row.ownerId)) {
            finishRow(row.id, 'cancelled', {}, null);
            void dropCheckpoint(row.id);
            continue;
          }
          if (status === 'running') updateTraining(deps.store, row.id, { status: 'queued' });
          queue.push(row.id, row.ownerId);
        }
      }
      pump();
    },

    stats() {
      let stepsPerSec = 0;
      for (const { stepsPerSec: rate } of running.values()) if (rate !== null && Number.isFinite(rate) && rate > 0) stepsPerSec += rate;
      return { queued: queue.size, running: running.size, steps: stepsRun, stepsPerSec };
    },

    async close() {
      if (closing) return;
      closing = true;
      for (const live of running.values()) Atomics.store(live.control, 0, Control.STOP);
      await Promise.all([...running.values()].map((l) => l.done));
      for (const set of subscribers.values()) for (const s of set.keys()) s.end();
      subscribers.clear();
    },
  };
}

/** Whether a job's checkpoint blob exists (for tests and diagnostics). */
export function hasCheckpoint(deps: Pick<TrainingDeps, 'blobs'>, id: string): boolean {
  return fs.existsSync(blobPath(deps.blobs, checkpointIdentity(id)));
}
