// A pool worker: loads the addon once, fixes its thread counts once (libtorch intra-op threads from
// the pool's settings, OpenBLAS's own threads at 1), then runs heavy tasks one at a time. This is the
// only place, besides disposable child processes, that calls heavy addon functions. It loads only
// models that are already artifacts: an uploaded archive first meets libtorch in the sandbox child
// (artifacts/sandbox-child.ts, a process of its own), so no task here inspects one. The privacy
// accountants run here too: PLD takes up to seconds, too long for the event loop.
import { workerData } from 'node:worker_threads';
import { convertDataset } from '../artifacts/convert.js';
import { BastionError } from '../errors.js';
import { NativeError, setThreads, Trainer, version } from '../native.js';
import { calibrateTrainingNoise } from '../privacy/calibration.js';
import { composedEpsilon } from '../privacy/ledger.js';
import { loadModelBytes } from '../training/load.js';
import { measureModel } from '../training/measure.js';
import { runPreflight } from '../training/preflight.js';
import { runTraining } from '../training/runner.js';
import type { TaskEnvelope, TaskKind, TaskMap, TaskRequest, WorkerInit } from './tasks.js';

const init = workerData as WorkerInit;
setThreads(init.torchThreads);

type Handlers = { [K in TaskKind]: (input: TaskMap[K]['input']) => TaskMap[K]['output'] | Promise<TaskMap[K]['output']> };

const handlers: Handlers = {
  version: () => version(),
  convertDataset: (input) => convertDataset(input),
  trainModel: (input) => runTraining(input, (model, data, config) => Trainer.create(model, data, config)),
  preflight: async (input) =>
    runPreflight(input, await loadModelBytes(input.blobs, input.modelId), (model, data, config) => Trainer.create(model, data, config)),
  composeEpsilon: ({ events, delta }) => composedEpsilon(events, delta),
  calibrateTrainingNoise: (options) => calibrateTrainingNoise(options),
  evaluateModel: (input) => measureModel(input, (model, data, config) => Trainer.create(model, data, config)),
};

export default async function runTask(request: TaskRequest): Promise<TaskEnvelope> {
  const handler = handlers[request.kind] as ((input: unknown) => unknown) | undefined;
  if (!handler) return { ok: false, error: { code: 'WORKER_ERROR', message: `Unknown task ${String(request.kind)}` } };
  try {
    return { ok: true, value: await handler(request.input) } as TaskEnvelope;
  } catch (err) {
    if (err instanceof NativeError) return { ok: false, error: { code: err.code, message: err.message } };
    if (err instanceof BastionError) {
      return { ok: false, error: { code: 'BASTION_ERROR', message: err.message, bastion: { code: err.code, details: err.details } } };
    }
    return { ok: false, error: { code: 'WORKER_ERROR', message: err instanceof Error ? err.message : String(err) } };
  }
}
