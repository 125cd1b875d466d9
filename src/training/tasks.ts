// The messages between the event loop and the pool workers: which heavy task to run, with what input,
// and the envelope a worker answers with. Errors travel as plain data (structured clone drops an
// Error's own properties, such as the native `code`), and become BastionErrors on the event loop side.
import type { ModelInspection, NativeVersion } from '../native.js';

export interface TaskMap {
  version: { input: Record<string, never>; output: NativeVersion };
  inspectModel: { input: { bytes: Uint8Array }; output: ModelInspection };
}
export type TaskKind = keyof TaskMap;

export interface TaskRequest<K extends TaskKind = TaskKind> {
  kind: K;
  input: TaskMap[K]['input'];
}

export interface TaskFailure {
  /** The native error code (NativeErrorCode) or 'WORKER_ERROR' for anything else. */
  code: string;
  message: string;
}

export type TaskEnvelope<K extends TaskKind = TaskKind> =
  | { ok: true; value: TaskMap[K]['output'] }
  | { ok: false; error: TaskFailure };

export interface WorkerInit {
  /** libtorch intra-op threads, set once at the worker's start. */
  torchThreads: number;
}
