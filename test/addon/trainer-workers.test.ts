// Trainers in worker_threads: two workers each create a private trainer on the reference mlp and
// step it at the same time, in their own addon instance; neither crashes and both report finite
// losses. This file is also the workers' script: it runs the worker branch when it is not the main thread.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { setThreads, Trainer } from '../../src/native.js';
import { prng } from '../helpers/prng.js';
import { testdataPath } from '../helpers/testdata.js';

interface Job {
  file: string;
  seed: number;
  steps: number;
}

interface Report {
  steps: number;
  samples: number[];
  lossSums: number[];
  meanLoss: number;
}

function runWorker(job: Job): void {
  const port = parentPort;
  if (!port) throw new Error('worker without parentPort');
  setThreads(1);
  const random = prng(job.seed);
  const n = 64;
  const x = Float32Array.from({ length: n * 100 }, () => random() * 2 - 1);
  const y = BigInt64Array.from({ length: n }, (_, i) => ((x[i * 100] ?? 0) > 0 ? 1n : 0n));
  const trainer = Trainer.create(
    readFileSync(job.file),
    { inputs: [{ dtype: 'F32', shape: [n, 100], data: x }], labels: { dtype: 'I64', shape: [n], data: y } },
    {
      mode: 'private',
      loss: { kind: 'cross_entropy' },
      optimizer: { type: 'sgd', learningRate: 0.1 },
      sampleRate: 0.25,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      maxPhysicalBatchSize: 8,
    },
  );
  const samples: number[] = [];
  const lossSums: number[] = [];
  for (let i = 0; i < job.steps; i += 1) {
    const step = trainer.step();
    samples.push(step.samples);
    lossSums.push(step.lossSum);
  }
  const report: Report = { steps: trainer.info().steps, samples, lossSums, meanLoss: trainer.evaluate().meanLoss };
  port.postMessage(report);
}

if (!isMainThread) {
  runWorker(workerData as Job);
} else {
  // Node 20 workers do not inherit tsx's loader hooks: boot them through tsx's tsImport.
  const bootstrap = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) =>
    tsx.tsImport(${JSON.stringify(import.meta.url)}, ${JSON.stringify(import.meta.url)}))`;

  function start(job: Job): Promise<{ report: Report; code: number }> {
    const worker = new Worker(bootstrap, { eval: true, workerData: job });
    return new Promise((resolve, reject) => {
      let report: Report | undefined;
      worker.once('message', (message: Report) => (report = message));
      worker.once('error', reject);
      worker.once('exit', (code) =>
        report ? resolve({ report, code }) : reject(new Error(`worker exited with ${code} before reporting`)),
      );
    });
  }

  test('two workers train a private trainer each at the same time without crashing', async () => {
    const files = [testdataPath('torchscript', 'torch-1.13', 'mlp.script.pt'), testdataPath('torchscript', 'torch-2.6', 'mlp.trace.pt')];
    for (let round = 0; round < 2; round += 1) {
      const results = await Promise.all(files.map((file, index) => start({ file, seed: round * 10 + index, steps: 20 })));
      for (const { report, code } of results) {
        assert.equal(code, 0);
        assert.equal(report.steps, 20);
        assert.ok(report.lossSums.every(Number.isFinite));
        assert.ok(Number.isFinite(report.meanLoss));
        assert.ok(report.samples.some((s) => s > 0));
      }
    }
  });
}
