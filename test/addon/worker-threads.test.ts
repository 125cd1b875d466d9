// The addon in worker_threads: several workers load it at once, each with its own per-environment
// instance, and terminating them (even in the middle of native calls) leaves the process working.
// This file is also the workers' script: it runs the worker branch when it is not the main thread.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { inspectModel, type ModelInspection, setThreads, version } from '../../src/native.js';
import { testdataPath } from '../helpers/testdata.js';

interface Job {
  mode: 'once' | 'loop';
  file: string;
}

type Report = { kind: 'inspected'; intraOpThreads: number; inspection: ModelInspection } | { kind: 'looping' };

function runWorker(job: Job): void {
  const port = parentPort;
  if (!port) throw new Error('worker without parentPort');
  setThreads(1);
  const bytes = readFileSync(job.file);
  const inspection = inspectModel(bytes);
  if (job.mode === 'once') {
    const report: Report = { kind: 'inspected', intraOpThreads: version().intraOpThreads, inspection };
    port.postMessage(report);
    port.on('message', () => port.close()); // stay alive until the main thread terminates us
    return;
  }
  port.postMessage({ kind: 'looping' } satisfies Report);
  // Busy with native calls until terminated; terminate() takes effect when a call returns.
  for (;;) inspectModel(bytes);
}

if (!isMainThread) {
  runWorker(workerData as Job);
} else {
  const files = [
    testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt'),
    testdataPath('torchscript', 'torch-2.6', 'transformer.script.pt'),
    testdataPath('torchscript', 'torch-1.13', 'groupnorm_conv1d.trace.pt'),
    testdataPath('torchscript', 'torch-2.6', 'mlp.trace.pt'),
  ];

  // Node 20 workers do not inherit tsx's loader hooks: boot them through tsx's tsImport.
  const bootstrap = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) =>
    tsx.tsImport(${JSON.stringify(import.meta.url)}, ${JSON.stringify(import.meta.url)}))`;

  function start(job: Job): { worker: Worker; first: Promise<Report>; exited: Promise<number> } {
    const worker = new Worker(bootstrap, { eval: true, workerData: job });
    const first = new Promise<Report>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`worker exited with ${code} before reporting`)));
    });
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    return { worker, first, exited };
  }

  test('workers load the addon at once, inspect real models with one thread each, and terminate cleanly', async () => {
    for (let round = 0; round < 2; round += 1) {
      const workers = files.map((file) => ({ file, ...start({ mode: 'once', file }) }));
      const reports = await Promise.all(workers.map((w) => w.first));
      for (const [index, report] of reports.entries()) {
        assert.equal(report.kind, 'inspected');
        if (report.kind !== 'inspected') continue;
        assert.equal(report.intraOpThreads, 1);
        const file = workers[index]?.file ?? '';
        assert.deepEqual(report.inspection, inspectModel(readFileSync(file)), file);
      }
      await Promise.all(workers.map((w) => w.worker.terminate()));
      await Promise.all(workers.map((w) => w.exited));
    }
    // The main thread's addon instance is unaffected by the workers' environments going away.
    assert.match(version().torch, /^1\.13\./);
    assert.equal(inspectModel(readFileSync(files[0] ?? '')).parameters.length, 8);
  });

  test('terminating workers in the middle of inspectModel calls leaves the main thread working', async () => {
    const workers = files.slice(0, 3).map((file) => start({ mode: 'loop', file }));
    const reports = await Promise.all(workers.map((w) => w.first));
    assert.ok(reports.every((report) => report.kind === 'looping'));
    await Promise.all(workers.map((w) => w.worker.terminate()));
    const codes = await Promise.all(workers.map((w) => w.exited));
    assert.deepEqual(codes, [1, 1, 1]);
    const inspection = inspectModel(readFileSync(files[1] ?? ''));
    assert.ok(inspection.forward?.operators.some((op) => op.kind === 'aten::scaled_dot_product_attention'));
    setThreads(1);
    assert.equal(version().intraOpThreads, 1);
  });
}
