// The worker side of one training job: load the model and data from sealed blobs, build the trainer,
// restore the job's checkpoint when there is one, then step up to the plan's total, honouring the
// control word between steps (cancel, or stop after a checkpoint for shutdown), posting progress on
// the job's port and sealing checkpoints as it goes. At the end the trained model is exported and
// staged as a sealed blob; the event loop commits it as an artifact. In private training a sample
// that fails (exception, non-finite loss or gradient) is dropped by the trainer and the job goes on;
// the drops are counted per dataset and reason (kept in the checkpoint across a resume) for the
// datasets' owners. A step whose noisy update is NaN or Inf fails the job at that step: the trainer
// undid it, and nothing is exported.
//
// Nothing derived from the data's values is posted but the metrics of metrics.ts: progress carries the
// step count and the step rate only (never a batch's realised size, which Poisson sampling makes
// private: the event loop derives throughput from the plan, training/progress.ts), and a step's loss
// sums stay in this module (and, between the epoch's steps, in the sealed checkpoint) until an epoch's
// release adds the noise. An epoch's metric is posted with the checkpoint taken at its last step (or
// returned with the result), never before it is durable.
import fs from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { type BlobStore, blobPath, readBlob, stageBlobFrom } from '../artifacts/blob-store.js';
import type { DropReason, Trainer, TrainerConfig, TrainingData, TrainingStep } from '../native.js';
import { type DatasetSource, loadModelBytes, loadTrainingData } from './load.js';
import { addStep, type EpochSums, emptySums, epochEndingAt, type MetricsSpec, releaseMetric, type TrainingMetric } from './metrics.js';

/** The control word's values (Int32Array over `control`, index 0), written by the event loop. */
export const Control = { RUN: 0, CANCEL: 1, STOP: 2 } as const;

export interface TrainModelInput {
  jobId: string;
  blobs: BlobStore;
  modelId: string;
  datasets: DatasetSource[];
  config: TrainerConfig;
  /** The plan's steps (≥ 1). */
  totalSteps: number;
  /** Per-epoch metrics to release; null: none. A noisy spec needs config.lossBound. */
  metrics: MetricsSpec | null;
  /** Id of the model artifact the result is staged as. */
  resultModelId: string;
  /** Checkpoint after this many steps (≥ 1) or this many milliseconds since the last, whichever first. */
  checkpointEverySteps: number;
  checkpointEveryMs: number;
  /** Least time between progress messages (at most 1000: progress at least once a second). */
  progressIntervalMs: number;
  /** 4 bytes: the control word (Control). */
  control: SharedArrayBuffer;
  /** Receives TrainingMessage. */
  port: MessagePort;
}

/**
 * Samples dropped so far, per dataset id and reason. Counts computed from the data: for each dataset's
 * owner only, never for the model's author, events or logs.
 */
export type DroppedCounts = Record<string, Record<DropReason, number>>;

export function emptyDropped(datasetIds: readonly string[]): DroppedCounts {
  return Object.fromEntries(datasetIds.map((id) => [id, { exception: 0, nonFiniteLoss: 0, nonFiniteGradient: 0 }]));
}

/**
 * Adds a step's drops to `counts`, attributing each dataset index to its dataset (the training data is
 * the datasets concatenated in order, each with its sample count).
 */
export function addDropped(
  counts: DroppedCounts,
  datasets: readonly { id: string; samples: number }[],
  dropped: TrainingStep['dropped'],
): void {
  for (const reason of Object.keys(dropped) as DropReason[]) {
    for (const index of dropped[reason]) {
      let start = 0;
      for (const dataset of datasets) {
        if (index < start + dataset.samples) {
          counts[dataset.id] ??= { exception: 0, nonFiniteLoss: 0, nonFiniteGradient: 0 };
          counts[dataset.id]![reason] += 1;
          break;
        }
        start += dataset.samples;
      }
    }
  }
}

export type TrainingMessage =
  | { type: 'started'; step: number; resumedFrom: number | null; metrics: TrainingMetric[] }
  | { type: 'progress'; step: number; stepsPerSec: number }
  | { type: 'checkpoint'; step: number; metric: TrainingMetric | null };

/** `dropped`: absent when the job failed before its first step could run. */
export type TrainModelOutput = (
  | {
      outcome: 'succeeded';
      steps: number;
      stepsPerSec: number | null;
      model: { sha256: string; sizeBytes: number };
      metric: TrainingMetric | null;
    }
  | { outcome: 'cancelled' | 'stopped'; steps: number; stepsPerSec: number | null }
  | { outcome: 'failed'; steps: number; stepsPerSec: number | null; error: string }
) & { dropped?: DroppedCounts };

/** The part of Trainer the loop uses (the worker passes Trainer.create; tests may pass a fake). */
export type TrainerHandle = Pick<Trainer, 'step' | 'state' | 'restore' | 'exportModel' | 'info'>;
export type CreateTrainer = (model: Uint8Array, data: TrainingData, config: TrainerConfig) => TrainerHandle;

export const checkpointIdentity = (jobId: string) => ({ artifactId: jobId, kind: 'checkpoint' as const });

// A checkpoint's plaintext: MAGIC, the header's length (u32 LE), the header as JSON, the trainer state.
const MAGIC = Buffer.from('BCK1');

interface CheckpointHeader {
  /** The epoch in progress's sums (un-noised: they exist only inside the sealed blob). */
  epoch: EpochSums;
  /**
   * Every metric released up to this checkpoint (noisy already). The event loop records a metric only
   * after the checkpoint that holds it is durable, and a resume hands these back, so a metric the event
   * loop had not recorded when the process died is recorded then, with the same value, not lost.
   */
  metrics: TrainingMetric[];
  /** Samples dropped up to this checkpoint (absent in checkpoints written before drops were counted). */
  dropped?: DroppedCounts;
}

/** Seals the trainer's state and the epoch's sums as the job's checkpoint, replacing the previous one atomically. */
async function writeCheckpoint(blobs: BlobStore, jobId: string, header: CheckpointHeader, state: Buffer): Promise<void> {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  const { staged } = await stageBlobFrom(
    blobs,
    checkpointIdentity(jobId),
    async (sink) => {
      await sink.write(Buffer.concat([MAGIC, length, json]));
      await sink.write(state);
    },
    { hash: false },
  );
  await staged.commit();
}

/** Splits a checkpoint; a bare trainer state (written before the header existed) has empty sums. */
export function parseCheckpoint(bytes: Buffer): { header: CheckpointHeader; state: Buffer } {
  if (bytes.length < 8 || !bytes.subarray(0, 4).equals(MAGIC)) return { header: { epoch: emptySums(), metrics: [] }, state: bytes };
  const length = bytes.readUInt32LE(4);
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as CheckpointHeader;
  return { header, state: bytes.subarray(8 + length) };
}

export async function runTraining(input: TrainModelInput, createTrainer: CreateTrainer): Promise<TrainModelOutput> {
  const control = new Int32Array(input.control);
  const post = (message: TrainingMessage) => input.port.postMessage(message);
  try {
    // failFast would let a record fail the job and choose its message (native.ts): pre-flights only.
    if (input.config.failFast) throw new Error('failFast is for the pre-flight on synthetic data only, never for a training on records');
    const model = await loadModelBytes(input.blobs, input.modelId);
    const data = await loadTrainingData(input.blobs, input.datasets);
    const trainer = createTrainer(model, data, input.config);
    let resumedFrom: number | null = null;
    let epoch = emptySums();
    let released: TrainingMetric[] = [];
    const sources = input.datasets.map((d) => ({ id: d.id, samples: d.layout.tensors[0]?.shape[0] ?? 0 }));
    let dropped = emptyDropped(sources.map((d) => d.id));
    if (fs.existsSync(blobPath(input.blobs, checkpointIdentity(input.jobId)))) {
      const { header, state } = parseCheckpoint(await readBlob(input.blobs, checkpointIdentity(input.jobId)));
      trainer.restore(state);
      epoch = header.epoch;
      released = header.metrics;
      if (header.dropped) dropped = { ...dropped, ...header.dropped };
      resumedFrom = trainer.info().steps;
    }
    let steps = trainer.info().steps;
    post({ type: 'started', step: steps, resumedFrom, metrics: released });

    let lastCheckpointStep = steps;
    let lastCheckpointAt = Date.now();
    let windowStart = performance.now();
    let windowSteps = 0;
    let lastProgressAt = Number.NEGATIVE_INFINITY;
    let stepsPerSec: number | null = null;
    const checkpoint = async (metric: TrainingMetric | null = null) => {
      if (metric) released = [...released, metric];
      await writeCheckpoint(input.blobs, input.jobId, { epoch, metrics: released, dropped }, trainer.state());
      lastCheckpointStep = steps;
      lastCheckpointAt = Date.now();
      post({ type: 'checkpoint', step: steps, metric });
    };
    let finalMetric: TrainingMetric | null = null;

    while (steps < input.totalSteps) {
      const command = Atomics.load(control, 0);
      if (command === Control.CANCEL) return { outcome: 'cancelled', steps, stepsPerSec, dropped };
      if (command === Control.STOP) {
        if (steps > lastCheckpointStep) await checkpoint();
        return { outcome: 'stopped', steps, stepsPerSec, dropped };
      }
      let result: ReturnType<typeof trainer.step>;
      try {
        result = trainer.step();
      } catch (err) {
        if ((err as { code?: unknown }).code === 'NON_FINITE') {
          // The trainer's message names the step and the parameter of a non-finite noisy update (post-processing
          // of the DP output), or, in non-private training, a non-finite loss: no number computed from a record.
          const error =
            `Step ${steps + 1} met a NaN or infinite value (loss, gradient or parameter); the step was undone and no ` +
            `model was released: ${(err as Error).message}`;
          return { outcome: 'failed', steps, stepsPerSec, dropped, error };
        }
        throw err;
      }
      steps = result.step;
      addDropped(dropped, sources, result.dropped);
      let metric: TrainingMetric | null = null;
      if (input.metrics) {
        addStep(input.metrics, epoch, result);
        if (epochEndingAt(input.metrics, steps) >= 0) {
          metric = releaseMetric(input.metrics, steps, epoch);
          epoch = emptySums();
        }
      }
      windowSteps += 1;
      const now = performance.now();
      if (now - lastProgressAt >= input.progressIntervalMs || steps === input.totalSteps) {
        const seconds = (now - windowStart) / 1000;
        if (seconds > 0) stepsPerSec = windowSteps / seconds;
        post({ type: 'progress', step: steps, stepsPerSec: stepsPerSec ?? 0 });
        lastProgressAt = now;
        windowStart = now;
        windowSteps = 0;
      }
      if (steps === input.totalSteps) {
        finalMetric = metric;
      } else if (
        metric ||
        steps - lastCheckpointStep >= input.checkpointEverySteps ||
        Date.now() - lastCheckpointAt >= input.checkpointEveryMs
      ) {
        await checkpoint(metric);
      }
    }
    const exported = trainer.exportModel();
    const { staged } = await stageBlobFrom(input.blobs, { artifactId: input.resultModelId, kind: 'model' }, (sink) => sink.write(exported));
    const result = { sha256: staged.sha256!, sizeBytes: staged.sizeBytes };
    return { outcome: 'succeeded', steps, stepsPerSec, dropped, model: result, metric: finalMetric };
  } finally {
    input.port.close();
  }
}
