// The messages between the event loop and the pool workers: which heavy task to run, with what input,
// and the envelope a worker answers with. Errors travel as plain data (structured clone drops an
// Error's own properties, such as the native `code`), and become BastionErrors on the event loop side.
import type { ConvertInput, ConvertOutput } from '../artifacts/convert.js';
import type { BastionErrorDetails, ErrorCode } from '../errors.js';
import type { NativeVersion } from '../native.js';
import type { PrivacyEvent } from '../privacy/accountant.js';
import type { TrainingNoise, TrainingNoiseOptions } from '../privacy/calibration.js';
import type { ComposedEpsilon } from '../privacy/ledger.js';
import type { EvaluateModelInput, EvaluateModelOutput } from '../training/measure.js';
import type { PreflightInput, PreflightOutput } from '../training/preflight.js';
import type { TrainModelInput, TrainModelOutput } from '../training/runner.js';

export interface TaskMap {
  version: { input: Record<string, never>; output: NativeVersion };
  /** Checks a dataset and writes its canonical form as a staged blob (artifacts/convert.ts). */
  convertDataset: { input: ConvertInput; output: ConvertOutput };
  /** Runs one training job to its end, cancellation or stop (training/runner.ts); its port must be transferred. */
  trainModel: { input: TrainModelInput; output: TrainModelOutput };
  /** Loss and accuracy of a model on a dataset, exact (training/measure.ts; the caller adds any DP noise). */
  evaluateModel: { input: EvaluateModelInput; output: EvaluateModelOutput };
  /** One step or evaluation on synthetic inputs of public shapes, failing fast (training/preflight.ts). */
  preflight: { input: PreflightInput; output: PreflightOutput };
  /** ε of composed events under the tighter accountant (privacy/ledger.ts composedEpsilon). */
  composeEpsilon: { input: { events: PrivacyEvent[]; delta: number }; output: ComposedEpsilon };
  /** A training's noise multipliers and ε (privacy/calibration.ts calibrateTrainingNoise). */
  calibrateTrainingNoise: { input: TrainingNoiseOptions; output: TrainingNoise };
}
export type TaskKind = keyof TaskMap;

export interface TaskRequest<K extends TaskKind = TaskKind> {
  kind: K;
  input: TaskMap[K]['input'];
}

export interface TaskFailure {
  /** The native error code (NativeErrorCode), 'BASTION_ERROR' for a service's BastionError, or 'WORKER_ERROR'. */
  code: string;
  message: string;
  /** For BASTION_ERROR: the error's own code and details, re-thrown as such on the event loop side. */
  bastion?: { code: ErrorCode; details: BastionErrorDetails };
}

export type TaskEnvelope<K extends TaskKind = TaskKind> = { ok: true; value: TaskMap[K]['output'] } | { ok: false; error: TaskFailure };

export interface WorkerInit {
  /** libtorch intra-op threads, set once at the worker's start. */
  torchThreads: number;
}
