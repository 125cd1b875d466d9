// Training end to end against the compiled server with real curl: a small dataset and a scripted model
// uploaded, a private training watched live with `curl -N` until it completes, the trained model
// downloaded and run by PyTorch; then a server killed (SIGKILL) mid-training resumes the job from its
// sealed checkpoint after restart, finishes it, and the ledger shows the same ε as before the kill;
// and a SIGTERM checkpoints a running job before the server exits, so it resumes where it stopped.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { verifyTrainingCertificate } from '../../src/enclave/training-certificate.js';
import { curlFor } from '../helpers/curl.js';
import { type ServerProcess, startServerProcess } from '../helpers/server.js';
import { SseLog } from '../helpers/sse.js';
import { CLASSES, classifierDataset, classifierModel, runInPytorch } from '../helpers/training-fixtures.js';

describe('trainings over HTTPS with curl', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-trainings-'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-training-files-'));
  let server: ServerProcess;
  let datasetId: string;
  let modelId: string;

  const start = async () => {
    server = await startServerProcess(['--port', '0', '--pool-size', '1'], {
      BASTION_DATA_DIR: dataDir,
      BASTION_CHECKPOINT_EVERY_STEPS: '25',
    });
    curl.refreshToken();
  };
  const curl = curlFor(dataDir);
  const curlArgs = curl.args;
  const json = async (args: string[]) => JSON.parse((await curl(args)).body);
  /** `curl -N` on a job's events: the parsed events as they arrive, ended when curl exits. */
  function watch(id: string): SseLog {
    const log = new SseLog();
    const child = spawn('curl', curlArgs(['-N', `${server.url}/v1/trainings/${id}/events`]), { stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => log.push(chunk));
    child.on('exit', () => log.end());
    return log;
  }
  const train = (epochs: number, metricsEpsilon = 0) =>
    curl([
      '-H',
      'content-type: application/json',
      '--data',
      JSON.stringify({
        modelId,
        datasetIds: [datasetId],
        epochs,
        expectedBatchSize: 64,
        maxPhysicalBatchSize: 64,
        loss: 'cross_entropy',
        optimizer: { type: 'sgd', learningRate: 0.5, momentum: 0.9 },
        privacy: { targetEpsilon: 2, maxGradNorm: 1.0, clipping: 'flat', accountant: 'rdp' },
        metricsEpsilon,
      }),
      `${server.url}/v1/trainings`,
    ]);
  const logged = (message: string, trainingId: string) => server.logs.find((l) => l.msg === message && l.trainingId === trainingId);

  before(async () => {
    await start();
    const datasetFile = path.join(work, 'points.safetensors');
    fs.writeFileSync(datasetFile, classifierDataset(512));
    const dataset = await curl(['-F', `file=@${datasetFile}`, '-F', 'name=points', '-F', 'privacyLimit=20', `${server.url}/v1/datasets`]);
    assert.equal(dataset.status, 201, dataset.body);
    datasetId = JSON.parse(dataset.body).id;
    const modelFile = path.join(work, 'classifier.pt');
    fs.writeFileSync(modelFile, await classifierModel());
    const model = await curl(['-F', `file=@${modelFile}`, '-F', 'name=classifier', `${server.url}/v1/models`]);
    assert.equal(model.status, 201, model.body);
    modelId = JSON.parse(model.body).id;
  });
  after(async () => {
    await server?.stop();
  });

  test('a private training is watched live with curl -N and its model runs in PyTorch', async () => {
    // 20 epochs of 8 steps: long enough that curl connects before the last step (a job that is
    // already over gets its state and end only, no progress).
    const created = await train(20);
    assert.equal(created.status, 202, created.body);
    const job = JSON.parse(created.body);
    const log = watch(job.id);
    await log.whenEnded();
    const types = log.types();
    assert.equal(types[0], 'state');
    assert.equal(types.at(-1), 'completed');
    assert.ok(types.includes('progress'), types.join(','));
    const done = JSON.parse(log.events.at(-1)!.data);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.step, 160);

    const file = path.join(work, 'trained.pt');
    const download = await curl(['-o', file, `${server.url}/v1/models/${done.resultModelId}/content`]);
    assert.equal(download.status, 200);
    assert.deepEqual(await runInPytorch(file), { shape: [4, CLASSES], finite: true });
    const model = await json([`${server.url}/v1/models/${done.resultModelId}`]);
    assert.equal(model.lineage.trainingId, job.id);
    assert.equal(model.lineage.noiseMultiplier, job.plan.noiseMultiplier);
    // Its certificate names the downloaded bytes and the plan's σ and q; signed by the development key here.
    const certificate = await json([`${server.url}/v1/models/${done.resultModelId}/certificate`]);
    const verified = verifyTrainingCertificate(certificate, { model: fs.readFileSync(file), at: new Date(), allowDevelopment: true });
    assert.ok(verified.ok, JSON.stringify(verified));
    assert.deepEqual(
      [
        verified.statement.trainingId,
        verified.statement.noiseMultiplier,
        verified.statement.sampleRate,
        verified.statement.steps,
        verified.statement.enclave,
      ],
      [job.id, job.plan.noiseMultiplier, job.plan.sampleRate, 160, false],
    );
  });

  test('a server killed mid-training resumes the job from its checkpoint, the ledger is unchanged and no epoch metric is released twice', async () => {
    // 512 samples, batch 64, 400 epochs: 3200 steps, a checkpoint every 25 and at every epoch's end (8 steps).
    const job = JSON.parse((await train(400, 0.5)).body);
    const log = watch(job.id);
    const checkpoint = JSON.parse((await log.next('checkpoint')).data);
    assert.ok(checkpoint.checkpointStep >= 8);
    const epsilonBefore = (await json([`${server.url}/v1/datasets/${datasetId}/privacy`])).epsilonSpent;
    server.child.kill('SIGKILL');
    await server.stop();
    await log.whenEnded();
    assert.ok(!log.types().includes('completed'), 'the kill came before the end');

    await start();
    const after = watch(job.id);
    await after.whenEnded();
    assert.equal(after.types().at(-1), 'completed', after.types().join(','));
    const resumed = logged('training resumed from its checkpoint', job.id);
    assert.ok(resumed, 'the job resumed from a checkpoint');
    assert.ok((resumed.step as number) >= checkpoint.checkpointStep, `resumed at ${String(resumed.step)}`);
    const done = await json([`${server.url}/v1/trainings/${job.id}`]);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.step, done.totalSteps);
    assert.equal((await json([`${server.url}/v1/datasets/${datasetId}/privacy`])).epsilonSpent, epsilonBefore);
    const epochs = done.metrics.map((m: { epoch: number }) => m.epoch);
    assert.deepEqual(
      epochs,
      [...epochs].sort((a, b) => a - b),
      'in order',
    );
    assert.equal(new Set(epochs).size, epochs.length, 'no epoch twice');
    assert.deepEqual(
      epochs,
      Array.from({ length: 400 }, (_, i) => i + 1),
      'every epoch, those the killed server had not recorded too',
    );
    assert.ok(
      done.metrics.every((m: { steps: number; noiseStd: number }) => m.steps === 8 && m.noiseStd > 0),
      'every release covers its whole epoch',
    );
  });

  test('SIGTERM checkpoints a running job before the server exits; the next start resumes it', async () => {
    // 16,000 steps: it is cancelled long before its end.
    const job = JSON.parse((await train(2000)).body);
    const log = watch(job.id);
    const progress = JSON.parse((await log.next('progress')).data);
    assert.equal(progress.status, 'running');
    assert.equal(await server.stop(), 0);
    const stopped = logged('training checkpointed and stopped for shutdown', job.id);
    assert.ok(stopped && (stopped.step as number) > 0, 'the job stopped at a checkpoint');

    await start();
    const after = watch(job.id);
    // A progress event comes after the worker reported where it resumed (same port, in order).
    await after.next('progress');
    const resumed = logged('training resumed from its checkpoint', job.id);
    assert.ok(resumed, 'the job resumed from its checkpoint');
    assert.equal(resumed.step, stopped.step);
    const cancelled = await json(['-X', 'POST', `${server.url}/v1/trainings/${job.id}/cancel`]);
    assert.equal(cancelled.status, 'cancelled');
    await after.whenEnded();
    assert.equal(after.types().at(-1), 'cancelled');
  });
});
