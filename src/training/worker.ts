// A pool worker: loads the addon once, fixes its thread counts once (libtorch intra-op threads from
// the pool's settings, OpenBLAS's own threads at 1), then runs heavy tasks one at a time. This is the
// only place, besides disposable child processes, that calls heavy addon functions. The privacy
// accountants run here too: PLD takes up to seconds, too long for the event loop.
import { workerData } from 'node:worker_threads';
import { convertDataset } from '../artifacts/convert.js';
import { BastionError } from '../errors.js';
import { inspectModel, NativeError, setThreads, Trainer, version } from '../native.js';
import { calibrateTrainingNoise } from '../privacy/calibration.js';
import { composedEpsilon } from '../privacy/ledger.js';
import { loadModelBytes, loadTrainingData } from './load.js';
import { runPreflight } from './preflight.js';
import { runTraining } from './runner.js';
import { accuracyUnitsPerSample, type TaskEnvelope, type TaskKind, type TaskMap, type TaskRequest, type WorkerInit } from './tasks.js';

const init = workerData as WorkerInit;
setThreads(init.torchThreads);

type Handlers = { [K in TaskKind]: (input: TaskMap[K]['input']) => TaskMap[K]['output'] | Promise<TaskMap[K]['output']> };

const handlers: Handlers = {
  version: () => version(),
  inspectModel: ({ bytes }) => inspectModel(bytes),
  convertDataset: (input) => convertDataset(input),
  trainModel: (input) => runTraining(input, (model, data, config) => Trainer.create(model, data, config)),
  preflight: async (input) => runPreflight(input, await loadModelBytes(input.blobs, input.modelId), (model, data, config) => Trainer.create(model, data, config)),
  composeEpsilon: ({ events, delta }) => composedEpsilon(events, delta),
  calibrateTrainingNoise: (options) => calibrateTrainingNoise(options),
  evaluateModel: async ({ blobs, modelId, dataset, loss }) => {
    const data = await loadTrainingData(blobs, [dataset]);
    const trainer = Trainer.create(await loadModelBytes(blobs, modelId), data, {
      mode: 'non-private',
      batchSize: 256,
      loss: { kind: loss },
      optimizer: { type: 'sgd', learningRate: 1e-3 }, // never stepped: evaluation only
    });
    const { samples, meanLoss, accuracy } = trainer.evaluate();
    const labels = data.labels.shape;
    const outputsPerSample = accuracyUnitsPerSample(loss, labels);
    return { samples, meanLoss, accuracy, outputsPerSample };
  },
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
