// The life of one training job in the pool: start (or resume) it in a worker, follow its progress and
// checkpoints, and record how it ended — its trained model with its lineage and signed certificate, or why
// it failed, or that it was cancelled. Every change of the job's row commits with its audit entry; the
// ledger's charge, made when the job was accepted (jobs.ts), is never touched here.
import { MessageChannel, type TransferListItem } from 'node:worker_threads';
import { v7 as uuidv7 } from 'uuid';
import { removeBlob, stagedBlob } from '../artifacts/blob-store.js';
import { datasetLayout } from '../artifacts/datasets.js';
import { createTrainedModel, type ModelLineage, storedModel } from '../artifacts/models.js';
import type { ArtifactDeps } from '../artifacts/service.js';
import { type CertificateSigner, datasetCommitment } from '../enclave/training-certificate.js';
import { targetSubjects } from '../governance/authorize.js';
import { parseDatasetPolicy } from '../governance/policy.js';
import { datasetOwners, trainingTarget } from '../governance/targets.js';
import { findDatasetRow } from '../store/artifacts.js';
import type { Store } from '../store/db.js';
import { findTrainingRow, type TrainingRow, type TrainingStatus, updateTraining } from '../store/trainings.js';
import type { TrainingEventType } from './events.js';
import { codeVersion, metricsSpec, trainerConfig } from './job-config.js';
import type { TrainingPlan, TrainingRequest } from './plan.js';
import type { PreflightPool } from './preflight.js';
import { publicProgress } from './progress.js';
import { Control, checkpointIdentity, type TrainingMessage, type TrainModelInput, type TrainModelOutput } from './runner.js';
import { type LiveFigures, mergeMetrics } from './training-view.js';

export interface TrainingLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/**
 * The worker pool as training jobs use it: its size (the default of jobs at once), the pre-flight, and
 * each job's run (runner.ts), whose control port moves to the worker. src/workers/pool.ts implements
 * it; app.ts wires it in.
 */
export type TrainingPool = PreflightPool & {
  readonly size: number;
  run(kind: 'trainModel', input: TrainModelInput, transferList: readonly TransferListItem[]): Promise<TrainModelOutput>;
};

/** `certificates` signs what each successful training did (src/enclave/training-certificate.ts). */
export type TrainingDeps = Omit<ArtifactDeps, 'pool'> & { pool: TrainingPool; log?: TrainingLog; certificates: CertificateSigner };

export const terminal: ReadonlySet<TrainingStatus> = new Set(['succeeded', 'failed', 'cancelled']);

export function requireTrainingRow(store: Store, id: string): TrainingRow {
  const row = findTrainingRow(store, id);
  if (!row) throw new Error(`training ${id} vanished`);
  return row;
}

interface Live extends LiveFigures {
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
function releaseRule(
  store: TrainingDeps['store'],
  trainerId: string,
  datasetIds: readonly string[],
): { coOwnerIds: string[]; approvals: { approverId: string; datasetIds: string[] }[] } {
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

export interface JobRunner {
  /** Starts (or resumes) a queued job in the pool; when it has settled, `onSettled` runs. */
  launch(id: string): void;
  /** Cancels the job for `actor`: a running one stops at its next step; resolves once it has stopped. */
  stop(id: string, actor: string | null): Promise<void>;
  /** The running job's live figures; undefined when it does not run here. */
  live(id: string): LiveFigures | undefined;
  /** Jobs running, steps run by this process's jobs, and their summed step rates. */
  stats(): { running: number; steps: number; stepsPerSec: number };
  /** Asks every running job to checkpoint and stop, and waits for them (shutdown). */
  stopAll(): Promise<void>;
}

export function createJobRunner(
  deps: TrainingDeps,
  settings: { checkpointEverySteps: number; checkpointEveryMs: number; progressIntervalMs: number },
  hooks: { emit(id: string, type: TrainingEventType): void; onSettled(): void },
): JobRunner {
  const running = new Map<string, Live>();
  /** Steps run so far by every job of this process (TrainingStats.steps). */
  let stepsRun = 0;
  const advance = (live: Live, step: number) => {
    if (step > live.step) stepsRun += step - live.step;
    live.step = step;
  };

  const requireRow = (id: string): TrainingRow => requireTrainingRow(deps.store, id);

  /** A change of the job's row and its audit entry, in one transaction. */
  function changeRow(
    id: string,
    patch: Parameters<typeof updateTraining>[2],
    action: string,
    actor: string | null,
    details: Record<string, unknown> = {},
  ): void {
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

  function finishRow(
    id: string,
    status: 'succeeded' | 'failed' | 'cancelled',
    patch: Parameters<typeof updateTraining>[2] = {},
    actor: string | null = null,
  ): void {
    changeRow(
      id,
      { status, finishedAt: new Date().toISOString(), ...patch },
      status === 'cancelled' ? 'training.cancel' : 'training.finish',
      actor,
    );
  }

  async function dropCheckpoint(id: string): Promise<void> {
    await removeBlob(deps.blobs, checkpointIdentity(id)).catch(() => undefined);
  }

  function launch(id: string): void {
    const row = findTrainingRow(deps.store, id);
    if (!row || (row.status !== 'queued' && row.status !== 'running')) return;
    const plan = JSON.parse(row.plan) as TrainingPlan;
    const request = JSON.parse(row.request) as TrainingRequest;
    const control = new Int32Array(new SharedArrayBuffer(4));
    const live: Live = {
      step: row.step,
      stepsPerSec: null,
      checkpointStep: row.checkpointStep,
      control,
      done: Promise.resolve(),
      cancelledBy: null,
    };
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
        checkpointEverySteps: Math.max(1, settings.checkpointEverySteps),
        checkpointEveryMs: settings.checkpointEveryMs,
        progressIntervalMs: settings.progressIntervalMs,
        control: control.buffer as SharedArrayBuffer,
        port: channel.port2,
      };
    } catch (err) {
      channel.port1.close();
      finishRow(id, 'failed', { error: `The training cannot start: ${err instanceof Error ? err.message : String(err)}` });
      hooks.emit(id, 'failed');
      void dropCheckpoint(id);
      return;
    }
    running.set(id, live);
    changeRow(
      id,
      { status: 'running', ...(row.startedAt ? {} : { startedAt: new Date().toISOString() }) },
      row.startedAt ? 'training.resume' : 'training.start',
      null,
    );
    hooks.emit(id, 'state');

    channel.port1.on('message', (message: TrainingMessage) => {
      if (message.type === 'started') {
        live.step = message.step;
        const metrics = mergeMetrics(requireRow(id), message.metrics);
        if (metrics) {
          updateTraining(deps.store, id, { metrics });
          hooks.emit(id, 'metric');
        }
        if (message.resumedFrom !== null)
          deps.log?.info({ trainingId: id, step: message.resumedFrom }, 'training resumed from its checkpoint');
        else deps.log?.info({ trainingId: id }, 'training started');
      } else if (message.type === 'progress') {
        advance(live, message.step);
        live.stepsPerSec = message.stepsPerSec;
        hooks.emit(id, 'progress');
      } else {
        advance(live, message.step);
        live.checkpointStep = message.step;
        // The checkpoint and the metric released with it land in one row update.
        const metrics = message.metric ? mergeMetrics(requireRow(id), [message.metric]) : null;
        updateTraining(deps.store, id, {
          step: message.step,
          checkpointStep: message.step,
          ...(metrics ? { metrics } : {}),
          ...storedThroughput(live.stepsPerSec),
        });
        hooks.emit(id, 'checkpoint');
        if (metrics) hooks.emit(id, 'metric');
      }
    });

    live.done = (async () => {
      try {
        const output = await deps.pool.run('trainModel', input, [channel.port2]);
        await record(id, row, plan, request, input.resultModelId, output, storedThroughput(output.stepsPerSec ?? live.stepsPerSec));
      } catch (err) {
        deps.log?.error({ trainingId: id, err }, 'training failed');
        try {
          finishRow(id, 'failed', {
            step: live.step,
            error: `The training failed after step ${live.step}: ${err instanceof Error ? err.message : String(err)}`,
          });
          await dropCheckpoint(id);
          hooks.emit(id, 'failed');
        } catch {
          // The store is gone (shutdown): the row stays as it was and the next start resumes the job.
        }
      } finally {
        const status = deps.store.isOpen() ? findTrainingRow(deps.store, id)?.status : undefined;
        if (status && terminal.has(status)) deps.log?.info({ trainingId: id, status, step: live.step }, 'training ended');
        channel.port1.close();
        running.delete(id);
        hooks.onSettled();
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
        hooks.emit(id, 'cancelled');
        return;
      case 'failed':
        finishRow(id, 'failed', { ...base, error: output.error });
        await dropCheckpoint(id);
        hooks.emit(id, 'failed');
        return;
      case 'succeeded': {
        const source = JSON.parse(row.request) as TrainingRequest;
        const staged = stagedBlob(deps.blobs, { artifactId: resultModelId, kind: 'model' }, output.model) as ReturnType<
          typeof stagedBlob
        > & { sha256: string };
        const sourceModel = storedModel(deps, row.modelId);
        const datasetRows = plan.datasetIds.map((datasetId) => findDatasetRow(deps.store, datasetId));
        const missingDataset = plan.datasetIds.find((_, i) => !datasetRows[i]);
        const gone = !sourceModel ? `The source model ${row.modelId}` : missingDataset ? `The dataset ${missingDataset}` : null;
        if (!sourceModel || gone) {
          await staged.discard();
          finishRow(id, 'failed', { ...base, error: `${gone} was deleted before the result could be recorded` });
          await dropCheckpoint(id);
          hooks.emit(id, 'failed');
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
            description:
              `Trained by training ${id} ` +
              `from model ${row.modelId} on ${plan.datasetIds.length === 1 ? 'dataset' : 'datasets'} ${plan.datasetIds.join(', ')}`,
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
        if (metrics) hooks.emit(id, 'metric');
        hooks.emit(id, 'completed');
        return;
      }
    }
  }

  async function stop(id: string, actor: string | null): Promise<void> {
    const live = running.get(id);
    if (live) {
      live.cancelledBy ??= actor;
      Atomics.store(live.control, 0, Control.CANCEL);
      await live.done;
      return;
    }
    const row = findTrainingRow(deps.store, id);
    if (!row || terminal.has(row.status)) return;
    finishRow(id, 'cancelled', {}, actor);
    await dropCheckpoint(id);
    hooks.emit(id, 'cancelled');
  }

  return {
    launch,
    stop,
    live: (id) => running.get(id),
    stats() {
      let stepsPerSec = 0;
      for (const { stepsPerSec: rate } of running.values()) if (rate !== null && Number.isFinite(rate) && rate > 0) stepsPerSec += rate;
      return { running: running.size, steps: stepsRun, stepsPerSec };
    },
    async stopAll() {
      for (const live of running.values()) Atomics.store(live.control, 0, Control.STOP);
      await Promise.all([...running.values()].map((l) => l.done));
    },
  };
}
