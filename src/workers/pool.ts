// The Piscina pool that runs libtorch work off the event loop. Sized once (default: one worker per
// core), each worker with a fixed number of libtorch threads. Task failures come back as BastionErrors
// whose codes say whether the input was unusable (422) or the server failed (500). No service imports
// this folder: each declares the narrow interface it needs (artifacts/service.ts ConversionPool,
// training's PreflightPool, EvaluationPool and TrainingPool, privacy/ledger.ts PrivacyMath), which
// WorkerPool satisfies, and the composition roots (app.ts, main.ts) wire the pool in.
import { fileURLToPath } from 'node:url';
import type { TransferListItem } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { BastionError } from '../errors.js';
import type { PrivacyMath } from '../privacy/ledger.js';
import type { TaskEnvelope, TaskFailure, TaskKind, TaskMap, TaskRequest, WorkerInit } from './tasks.js';

export interface PoolOptions {
  /** Worker threads, ≥ 1. */
  size: number;
  /** libtorch intra-op threads per worker, ≥ 1. */
  torchThreads: number;
}

/** The pool's own figures; /metrics shows them (http/metrics.ts PoolGauges is what it reads of them). */
export interface PoolStats {
  /** Live worker threads. */
  threads: number;
  /** Tasks waiting for a free worker. */
  queueSize: number;
  /** Piscina's utilisation: time spent running tasks over the capacity available since the pool started, 0 … 1. */
  utilization: number;
  /** Tasks completed since the pool started. */
  completed: number;
}

export interface WorkerPool {
  readonly size: number;
  /** Runs one task; `transferList` names what the input moves rather than copies (a MessagePort must be moved). */
  run<K extends TaskKind>(kind: K, input: TaskMap[K]['input'], transferList?: readonly TransferListItem[]): Promise<TaskMap[K]['output']>;
  /** True while the pool accepts work and has live workers. */
  isAlive(): boolean;
  /** Threads, queue and utilisation, for /metrics; absent on pools that are not Piscina (tests). */
  stats?(): PoolStats;
  close(): Promise<void>;
}

// Under tsx (tests, development) this file is src/workers/pool.ts and the worker is worker.ts; after
// `tsc` both are .js in dist/.
const workerFile = fileURLToPath(new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

export function createPool(options: PoolOptions): WorkerPool {
  const workerData: WorkerInit = { torchThreads: options.torchThreads };
  const piscina = new Piscina({
    filename: workerFile,
    minThreads: options.size,
    maxThreads: options.size,
    idleTimeout: Number.POSITIVE_INFINITY,
    workerData,
  });
  let closed = false;
  return {
    size: options.size,
    async run(kind, input, transferList) {
      if (closed) throw new BastionError('SERVICE_UNAVAILABLE', 'The worker pool is shutting down', { retryAfterSeconds: 5 });
      const request: TaskRequest = { kind, input };
      const envelope = (await piscina.run(request, transferList ? { transferList: [...transferList] as never } : {})) as TaskEnvelope;
      if (envelope.ok) return envelope.value as TaskMap[typeof kind]['output'];
      throw taskError(envelope.error);
    },
    isAlive: () => !closed && piscina.threads.length > 0,
    stats: () => ({
      threads: piscina.threads.length,
      queueSize: piscina.queueSize,
      utilization: piscina.utilization,
      completed: piscina.completed,
    }),
    async close() {
      if (closed) return;
      closed = true;
      await piscina.close();
    },
  };
}

/** The privacy accountants, run in the pool (they take up to seconds with PLD). */
export function privacyMathOn(pool: Pick<WorkerPool, 'run'>): PrivacyMath {
  return {
    composedEpsilon: (events, delta) => pool.run('composeEpsilon', { events: [...events], delta }),
    calibrateTrainingNoise: (options) => pool.run('calibrateTrainingNoise', options),
  };
}

/** Native failures on uploaded content are the client's (422); everything else is the server's (500). */
function taskError(failure: TaskFailure): BastionError {
  if (failure.bastion) return new BastionError(failure.bastion.code, failure.message, failure.bastion.details);
  switch (failure.code) {
    case 'MODEL_LOAD_FAILED':
      return new BastionError('UNPROCESSABLE_MODEL', `The file is not a loadable TorchScript archive: ${failure.message}`);
    case 'OUT_OF_MEMORY':
      return new BastionError('SERVICE_UNAVAILABLE', 'The server ran out of memory for this task', { retryAfterSeconds: 30 });
    default:
      return new BastionError('INTERNAL', `Worker task failed (${failure.code}): ${failure.message}`);
  }
}
