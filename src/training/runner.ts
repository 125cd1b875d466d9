// The worker side of one training job: load the model and data from sealed blobs, build the trainer,
// restore the job's checkpoint when there is one, then step up to the plan's total, honouring the
// control word between steps (cancel, or stop after a checkpoint for shutdown), posting progress on
// the job's port and sealing checkpoints as it goes. At the end the trained model is exported and
// staged as a sealed blob; the event loop commits it as an artifact. A step that meets NaN or Inf
// fails the job at that step: the trainer undid it, and nothing is exported.
//
// Nothing derived from the data's values is posted: progress carries step counts and throughput only
// (the batch loss of a step is not differentially private and never leaves this module).
import fs from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { blobPath, readBlob, stageBlobFrom, type BlobStore } from '../artifacts/blob-store.js';
import type { Trainer, TrainerConfig, TrainingData } from '../native.js';
import { loadModelBytes, loadTrainingData, type DatasetSource } from './load.js';

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

export type TrainingMessage =
  | { type: 'started'; step: number; resumedFrom: number | null }
  | { type: 'progress'; step: number; samplesPerSec: number; stepsPerSec: number }
  | { type: 'checkpoint'; step: number };

export type TrainModelOutput =
  | { outcome: 'succeeded'; steps: number; samplesPerSec: number | null; model: { sha256: string; sizeBytes: number } }
  | { outcome: 'cancelled' | 'stopped'; steps: number; samplesPerSec: number | null }
  | { outcome: 'failed'; steps: number; samplesPerSec: number | null; error: string };

/** The part of Trainer the loop uses (the worker passes Trainer.create; tests may pass a fake). */
export type TrainerHandle = Pick<Trainer, 'step' | 'state' | 'restore' | 'exportModel' | 'info'>;
export type CreateTrainer = (model: Uint8Array, data: TrainingData, config: TrainerConfig) => TrainerHandle;

export const checkpointIdentity = (jobId: string) => ({ artifactId: jobId, kind: 'checkpoint' as const });

/** Seals the trainer's state as the job's checkpoint, replacing the previous one atomically. */
async function writeCheckpoint(blobs: BlobStore, jobId: string, state: Buffer): Promise<void> {
  const { staged } = await stageBlobFrom(blobs, checkpointIdentity(jobId), (sink) => sink.write(state), { hash: false });
  await staged.commit();
}

export async function runTraining(input: TrainModelInput, createTrainer: CreateTrainer): Promise<TrainModelOutput> {
  const control = new Int32Array(input.control);
  const post = (message: TrainingMessage) => input.port.postMessage(message);
  try {
    const model = await loadModelBytes(input.blobs, input.modelId);
    const data = await loadTrainingData(input.blobs, input.datasets);
    const trainer = createTrainer(model, data, input.config);
    let resumedFrom: number | null = null;
    if (fs.existsSync(blobPath(input.blobs, checkpointIdentity(input.jobId)))) {
      trainer.restore(await readBlob(input.blobs, checkpointIdentity(input.jobId)));
      resumedFrom = trainer.info().steps;
    }
    let steps = trainer.info().steps;
    post({ type: 'started', step: steps, resumedFrom });

    let lastCheckpointStep = steps;
    let lastCheckpointAt = Date.now();
    let windowStart = performance.now();
    let windowSamples = 0;
    let windowSteps = 0;
    let lastProgressAt = Number.NEGATIVE_INFINITY;
    let samplesPerSec: number | null = null;
    let stepsPerSec: number | null = null;
    const checkpoint = async () => {
      await writeCheckpoint(input.blobs, input.jobId, trainer.state());
      lastCheckpointStep = steps;
      lastCheckpointAt = Date.now();
      post({ type: 'checkpoint', step: steps });
    };

    while (steps < input.totalSteps) {
      const command = Atomics.load(control, 0);
      if (command === Control.CANCEL) return { outcome: 'cancelled', steps, samplesPerSec };
      if (command === Control.STOP) {
        if (steps > lastCheckpointStep) await checkpoint();
        return { outcome: 'stopped', steps, samplesPerSec };
      }
      let result;
      try {
        result = trainer.step();
      } catch (err) {
        if ((err as { code?: unknown }).code === 'NON_FINITE') {
          return { outcome: 'failed', steps, samplesPerSec, error: `Step ${steps + 1} met a NaN or infinite value (loss, gradient or parameter); the step was undone and no model was released: ${(err as Error).message}` };
        }
        throw err;
      }
      steps = result.step;
      windowSamples += result.samples;
      windowSteps += 1;
      const now = performance.now();
      if (now - lastProgressAt >= input.progressIntervalMs || steps === input.totalSteps) {
        const seconds = (now - windowStart) / 1000;
        if (seconds > 0) {
          samplesPerSec = windowSamples / seconds;
          stepsPerSec = windowSteps / seconds;
        }
        post({ type: 'progress', step: steps, samplesPerSec: samplesPerSec ?? 0, stepsPerSec: stepsPerSec ?? 0 });
        lastProgressAt = now;
        windowStart = now;
        windowSamples = 0;
        windowSteps = 0;
      }
      if (steps < input.totalSteps && (steps - lastCheckpointStep >= input.checkpointEverySteps || Date.now() - lastCheckpointAt >= input.checkpointEveryMs)) {
        await checkpoint();
      }
    }
    const exported = trainer.exportModel();
    const { staged } = await stageBlobFrom(input.blobs, { artifactId: input.resultModelId, kind: 'model' }, (sink) => sink.write(exported));
    return { outcome: 'succeeded', steps, samplesPerSec, model: { sha256: staged.sha256!, sizeBytes: staged.sizeBytes } };
  } finally {
    input.port.close();
  }
}
