// Training jobs through the HTTP API with a real worker pool: a private training is planned, charged,
// queued, run and recorded as a new model with lineage (an LSTM classifier too, through the engine's
// recurrence); refusals (budget, mismatched datasets) charge nothing; cancellation stops a running job
// and keeps the whole charge; two jobs run at once; a job is seen by whoever started it, the owners of
// its datasets and admins, and only the first sees what it released. Progress is observed through the
// job's Server-Sent Events, never by waiting.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { datasetCommitment, verifyTrainingCertificate } from '../../src/enclave/training-certificate.js';
import { createPool, type WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { multipartForm } from '../helpers/multipart.js';
import { openSse, parseSse } from '../helpers/sse.js';
import {
  CLASSES,
  classifierDataset,
  classifierModel,
  evalOnlyModel,
  narrowModel,
  recurrentModel,
  runInPytorch,
} from '../helpers/training-fixtures.js';

let t: TestApp;
let pool: WorkerPool;
let base: string;
let owner: { id: string; token: string };
let scientist: { id: string; token: string };
let stranger: { id: string; token: string };
let modelId: string;

before(async () => {
  pool = createPool({ size: 2, torchThreads: 1 });
  t = await buildTestApp({ pool, training: { checkpointEverySteps: 5, checkpointEveryMs: 60_000 } });
  owner = t.principal('data-owner');
  scientist = t.principal('data-scientist');
  stranger = t.principal('stranger');
  base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  modelId = await uploadModel('classifier', await classifierModel());
});
after(async () => {
  await t.close();
  await pool.close();
});

/** Uploads TorchScript `content` as the scientist's model `name`; its id. */
async function uploadModel(name: string, content: Buffer): Promise<string> {
  const form = await multipartForm({ name }, [{ content, filename: `${name}.pt` }]);
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/models',
    payload: form.payload,
    headers: { ...form.headers, ...t.auth(scientist.token) },
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id;
}

/** The data owner's policy for the scientist: may train on it (with `allowNonPrivate`, without DP too). */
const forScientist = (allowNonPrivate = false) =>
  JSON.stringify({ trainers: [scientist.id], ...(allowNonPrivate ? { allowNonPrivate } : {}) });

async function uploadDataset(options: { samples?: number; features?: number; privacyLimit?: number; seed?: number } = {}): Promise<string> {
  const content = classifierDataset(options.samples ?? 512, options.seed ?? 1, options.features);
  const form = await multipartForm({ name: 'points', privacyLimit: String(options.privacyLimit ?? 20), policy: forScientist() }, [
    { content, filename: 'points.safetensors' },
  ]);
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/datasets',
    payload: form.payload,
    headers: { ...form.headers, ...t.auth(owner.token) },
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id;
}

const body = (datasetIds: string[], extra: Record<string, unknown> = {}) => ({
  modelId,
  datasetIds,
  epochs: 1,
  expectedBatchSize: 64,
  maxPhysicalBatchSize: 32,
  loss: 'cross_entropy',
  optimizer: { type: 'sgd', learningRate: 0.5, momentum: 0.9 },
  privacy: { targetEpsilon: 3, maxGradNorm: 1.0, clipping: 'flat', accountant: 'rdp' },
  metricsEpsilon: 0,
  ...extra,
});

const create = (payload: unknown, token = scientist.token) =>
  t.app.inject({ method: 'POST', url: '/v1/trainings', payload: payload as object, headers: t.auth(token) });
const get = (id: string, token = scientist.token) => t.app.inject({ url: `/v1/trainings/${id}`, headers: t.auth(token) });
const privacy = async (datasetId: string) =>
  (await t.app.inject({ url: `/v1/datasets/${datasetId}/privacy`, headers: t.auth(owner.token) })).json();
/** The whole event stream of a job; resolves when the server ends it (after a terminal event). */
const events = async (id: string) =>
  parseSse((await t.app.inject({ url: `/v1/trainings/${id}/events`, headers: t.auth(scientist.token) })).body);
const sse = (id: string, token = scientist.token) => openSse(`${base}/v1/trainings/${id}/events`, t.auth(token));
const trainingRows = () => (t.store.db.prepare('SELECT count(*) AS n FROM trainings').get() as { n: number }).n;

describe('a private training', () => {
  test('is accepted with 202 and its plan, runs in the pool, and succeeds with a new model owned by the caller', async () => {
    const datasetId = await uploadDataset();
    const res = await create(body([datasetId], { epochs: 2 }));
    assert.equal(res.statusCode, 202, res.body);
    const job = res.json();
    assert.equal(res.headers.location, `/v1/trainings/${job.id}`);
    assert.ok(['queued', 'running'].includes(job.status));
    assert.equal(job.plan.sampleRate, 64 / 512);
    assert.equal(job.totalSteps, Math.ceil(2 / (64 / 512)));
    assert.equal(job.plan.steps, job.totalSteps);
    assert.ok(job.plan.noiseMultiplier > 0);
    assert.equal(job.epsilonPlanned, job.plan.epsilon);
    assert.equal(job.delta, job.plan.delta);
    assert.equal(job.resultModelId, null);
    // The pre-flight's engine plan: every parameter of the classifier on the linear rule, none on the exact path.
    assert.deepEqual(
      job.plan.gradients,
      ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'].map((parameter) => ({ parameter, rule: 'linear', reason: '' })),
    );

    const stream = await events(job.id);
    assert.equal(stream[0]!.event, 'state', 'a subscriber first gets the current state');
    assert.equal(stream.at(-1)!.event, 'completed');
    assert.ok(
      stream.some((e) => e.event === 'progress'),
      stream.map((e) => e.event).join(','),
    );
    assert.ok(
      stream.some((e) => e.event === 'checkpoint'),
      'checkpoints every 5 steps',
    );
    for (const e of stream) assert.doesNotMatch(e.data, /loss"?\s*:\s*\d/i, 'no un-noised loss leaves the server');

    const done = (await get(job.id)).json();
    assert.equal(done.status, 'succeeded');
    assert.equal(done.step, done.totalSteps);
    assert.equal(done.epoch, 2);
    assert.equal(done.epsilonSpent, done.epsilonPlanned);
    assert.ok(done.samplesPerSec > 0);
    assert.equal(done.error, null);
    assert.ok(done.startedAt && done.finishedAt);
    assert.equal(
      fs.existsSync(path.join(t.blobs.blobsDir, 'checkpoint', `${job.id}.sealed`)),
      false,
      'the checkpoint is removed once the job ends',
    );

    const model = (await t.app.inject({ url: `/v1/models/${done.resultModelId}`, headers: t.auth(scientist.token) })).json();
    assert.equal(model.ownerId, scientist.id);
    assert.deepEqual(model.lineage, {
      trainingId: job.id,
      sourceModelId: modelId,
      datasetIds: [datasetId],
      private: true,
      noiseMultiplier: job.plan.noiseMultiplier,
      sampleRate: job.plan.sampleRate,
      steps: job.totalSteps,
      epochs: 2,
      expectedBatchSize: 64,
      epsilon: job.plan.epsilon,
      delta: job.plan.delta,
      accountant: 'rdp',
      maxGradNorm: 1,
      clipping: 'flat',
      loss: 'cross_entropy',
      optimizer: { type: 'sgd', learningRate: 0.5, momentum: 0.9 },
      codeVersion: JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version,
    });
    const download = await t.app.inject({ url: `/v1/models/${done.resultModelId}/content`, headers: t.auth(scientist.token) });
    assert.equal(download.statusCode, 200);
    assert.equal(createHash('sha256').update(download.rawPayload).digest('hex'), model.sha256);
    const file = path.join(t.dataDir, 'trained.pt');
    fs.writeFileSync(file, download.rawPayload);
    assert.deepEqual(await runInPytorch(file), { shape: [4, CLASSES], finite: true });
    // The certificate: the downloaded bytes, the source model's hash, the dataset's commitment, the plan.
    const certificate = (await t.app.inject({ url: `/v1/models/${done.resultModelId}/certificate`, headers: t.auth(owner.token) })).json();
    const verified = verifyTrainingCertificate(certificate, { model: download.rawPayload, at: new Date(), allowDevelopment: true });
    assert.ok(verified.ok, JSON.stringify(verified));
    const source = (await t.app.inject({ url: `/v1/models/${modelId}`, headers: t.auth(scientist.token) })).json();
    const dataset = (await t.app.inject({ url: `/v1/datasets/${datasetId}`, headers: t.auth(owner.token) })).json();
    assert.deepEqual(verified.statement, {
      format: 'bastion.training-certificate/1',
      modelId: done.resultModelId,
      trainingId: job.id,
      modelSha256: model.sha256,
      sourceModelId: modelId,
      sourceModelSha256: source.sha256,
      datasets: [{ id: datasetId, commitment: datasetCommitment(dataset.commitmentSalt, dataset.sha256) }],
      private: true,
      noiseMultiplier: job.plan.noiseMultiplier,
      sampleRate: job.plan.sampleRate,
      steps: job.totalSteps,
      epsilon: job.plan.epsilon,
      delta: job.plan.delta,
      accountant: 'rdp',
      maxGradNorm: 1,
      clipping: 'flat',
      codeVersion: model.lineage.codeVersion,
      finishedAt: done.finishedAt,
      enclave: false,
    });
    const uploaded = await t.app.inject({ url: `/v1/models/${modelId}/certificate`, headers: t.auth(scientist.token) });
    assert.equal(uploaded.statusCode, 404);
    assert.match(uploaded.json().detail, /was uploaded, not trained here/);
    assert.deepEqual(model.coOwnerIds, [owner.id]);
    assert.equal(model.release, 'released', "the dataset's policy releases trained models to their trainer");
    assert.equal((await t.app.inject({ url: `/v1/models/${done.resultModelId}`, headers: t.auth(stranger.token) })).statusCode, 404);
    // The data owner co-owns it: sees it and its lineage, but the model is the trainer's to download.
    const { policy: _policy, ...coOwnerView } = model;
    assert.deepEqual((await t.app.inject({ url: `/v1/models/${done.resultModelId}`, headers: t.auth(owner.token) })).json(), coOwnerView);
    assert.equal((await t.app.inject({ url: `/v1/models/${done.resultModelId}/content`, headers: t.auth(owner.token) })).statusCode, 403);

    // The ledger holds exactly the planned events, charged to this job at the scientist's request.
    const ledger = await privacy(datasetId);
    assert.deepEqual(
      ledger.events.map((e: { source: unknown }) => e.source),
      [{ kind: 'training', id: job.id }],
    );
    assert.deepEqual(
      ledger.events.map((e: { principalId: string }) => e.principalId),
      [scientist.id],
    );
    assert.ok(Math.abs(ledger.epsilonSpent - job.plan.datasets[0].epsilonAfter) < 1e-9);
  });

  test('with metricsEpsilon, every epoch releases a noisy mean training loss as a metric event, charged with the training', async () => {
    const datasetId = await uploadDataset({ seed: 11 });
    const res = await create(body([datasetId], { epochs: 3, metricsEpsilon: 1, metricsLossBound: 4 }));
    assert.equal(res.statusCode, 202, res.body);
    const job = res.json();
    assert.equal(job.epsilonPlanned, job.plan.epsilonTotal);
    assert.ok(
      job.plan.epsilonTotal > job.plan.epsilon && job.plan.epsilonTotal <= 4,
      `${job.plan.epsilon} + metrics → ${job.plan.epsilonTotal}`,
    );
    assert.equal(job.plan.metrics.releases, 3);

    const stream = await events(job.id);
    assert.equal(stream.at(-1)!.event, 'completed', stream.at(-1)!.data);
    const metricEvents = stream.filter((e) => e.event === 'metric').map((e) => JSON.parse(e.data).metrics.at(-1));
    assert.deepEqual(
      metricEvents.map((m) => m.epoch),
      [1, 2, 3],
      'one metric event per epoch, in order',
    );
    const done = (await get(job.id)).json();
    assert.deepEqual(done.metrics, metricEvents);
    assert.equal(
      done.metrics.reduce((n: number, m: { steps: number }) => n + m.steps, 0),
      done.totalSteps,
      'every step in exactly one release',
    );
    assert.deepEqual(
      done.metrics.map((m: { step: number }) => m.step),
      [8, 16, 24],
    );
    for (const m of done.metrics) {
      // σ_m·L·√k / (k·q·N) with q·N = 64.
      assert.ok(Math.abs(m.noiseStd - (job.plan.metrics.noiseMultiplier * 4) / (64 * Math.sqrt(m.steps))) < 1e-12, String(m.noiseStd));
      assert.ok(Number.isFinite(m.meanLoss));
    }
    assert.equal(done.epsilonSpent, job.plan.epsilonTotal);

    const ledger = await privacy(datasetId);
    assert.equal(ledger.events.length, 1);
    const joint = 1 / Math.sqrt(job.plan.noiseMultiplier ** -2 + job.plan.metrics.noiseMultiplier ** -2);
    assert.ok(Math.abs(ledger.events[0].event.noiseMultiplier - joint) < 1e-12, 'one joint mechanism is charged');
    assert.ok(Math.abs(ledger.epsilonSpent - job.plan.datasets[0].epsilonAfter) < 1e-9);
  });

  test('per-layer clipping with adam trains to a model whose lineage says so', async () => {
    const datasetId = await uploadDataset({ seed: 9 });
    const res = await create(
      body([datasetId], {
        optimizer: { type: 'adam', learningRate: 0.01, betas: [0.9, 0.99], weightDecay: 0.001 },
        privacy: { targetEpsilon: 3, maxGradNorm: 1.0, clipping: 'per-layer', accountant: 'pld' },
      }),
    );
    assert.equal(res.statusCode, 202, res.body);
    const stream = await events(res.json().id);
    assert.equal(stream.at(-1)!.event, 'completed', stream.at(-1)!.data);
    const done = JSON.parse(stream.at(-1)!.data);
    const model = (await t.app.inject({ url: `/v1/models/${done.resultModelId}`, headers: t.auth(scientist.token) })).json();
    assert.equal(model.lineage.clipping, 'per-layer');
    assert.equal(model.lineage.accountant, 'pld');
    assert.deepEqual(model.lineage.optimizer, { type: 'adam', learningRate: 0.01, betas: [0.9, 0.99], weightDecay: 0.001 });
  });

  test('an LSTM classifier: the plan gives its recurrence the lstm rule, and it trains to a model PyTorch runs', async () => {
    const recurrentId = await uploadModel('recurrent', await recurrentModel());
    const datasetId = await uploadDataset();
    const res = await create(body([datasetId], { modelId: recurrentId }));
    assert.equal(res.statusCode, 202, res.body);
    const job = res.json();
    assert.deepEqual(job.plan.gradients, [
      ...['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0'].map((w) => ({ parameter: `rnn.${w}`, rule: 'lstm', reason: '' })),
      ...['fc.weight', 'fc.bias'].map((parameter) => ({ parameter, rule: 'linear', reason: '' })),
    ]);
    assert.equal((await events(job.id)).at(-1)!.event, 'completed');
    const done = (await get(job.id)).json();
    assert.equal(done.status, 'succeeded');
    assert.equal(done.step, done.totalSteps);
    const download = await t.app.inject({ url: `/v1/models/${done.resultModelId}/content`, headers: t.auth(scientist.token) });
    assert.equal(download.statusCode, 200);
    const file = path.join(t.dataDir, 'trained-recurrent.pt');
    fs.writeFileSync(file, download.rawPayload);
    assert.deepEqual(await runInPytorch(file), { shape: [4, CLASSES], finite: true });
  });

  test('a late subscriber to a finished job gets its state and then its terminal event', async () => {
    const datasetId = await uploadDataset();
    const job = (await create(body([datasetId]))).json();
    await events(job.id);
    const again = await events(job.id);
    assert.deepEqual(
      again.map((e) => e.event),
      ['state', 'completed'],
    );
    assert.equal(JSON.parse(again[0]!.data).status, 'succeeded');
  });

  test('a non-private training on datasets that allow it is charged nothing and succeeds', async () => {
    const content = classifierDataset(256, 7);
    const form = await multipartForm({ name: 'open', privacyLimit: '1', allowNonPrivate: 'true', policy: forScientist() }, [{ content }]);
    const datasetId = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/datasets',
        payload: form.payload,
        headers: { ...form.headers, ...t.auth(owner.token) },
      })
    ).json().id;
    const { privacy: _privacy, metricsEpsilon: _metrics, ...rest } = body([datasetId]);
    const res = await create({ ...rest, private: false });
    assert.equal(res.statusCode, 202, res.body);
    const stream = await events(res.json().id);
    assert.equal(stream.at(-1)!.event, 'completed');
    const done = JSON.parse(stream.at(-1)!.data);
    assert.equal(done.epsilonSpent, null);
    assert.equal(done.totalSteps, Math.ceil(256 / 64));
    assert.equal(stream.filter((e) => e.event === 'metric').length, 1);
    assert.equal(done.metrics.length, 1);
    assert.deepEqual(
      { ...done.metrics[0], meanLoss: undefined },
      { epoch: 1, step: 4, steps: 4, meanLoss: undefined, noiseStd: 0 },
      'owners allowed non-private use: the exact mean loss',
    );
    assert.ok(done.metrics[0].meanLoss > 0 && done.metrics[0].meanLoss < 10, String(done.metrics[0].meanLoss));
    assert.deepEqual((await privacy(datasetId)).events, []);
  });
});

describe('refusals charge nothing', () => {
  test('a budget too small is 409 budget-exhausted with what the training would cost and what is left', async () => {
    const datasetId = await uploadDataset({ privacyLimit: 1 });
    const before = trainingRows();
    const res = await create(body([datasetId]));
    assert.equal(res.statusCode, 409, res.body);
    const problem = res.json();
    assert.equal(problem.type, 'urn:bastion:problem:budget-exhausted');
    assert.ok(problem.epsilon > 1 && problem.epsilon <= 3, String(problem.epsilon));
    assert.equal(problem.datasets.length, 1);
    assert.equal(problem.datasets[0].datasetId, datasetId);
    assert.equal(problem.datasets[0].privacyLimit, 1);
    assert.equal(problem.datasets[0].epsilonSpent, 0);
    assert.equal(problem.datasets[0].epsilonRemaining, 1);
    assert.ok(problem.datasets[0].epsilonAfter > 1);
    assert.match(problem.detail, /1 left/);
    assert.deepEqual((await privacy(datasetId)).events, []);
    assert.equal(trainingRows(), before);
  });

  test('datasets whose samples do not match are 422 and charge neither', async () => {
    const a = await uploadDataset();
    const b = await uploadDataset({ features: 5 });
    const res = await create(body([a, b]));
    assert.equal(res.statusCode, 422, res.body);
    assert.equal(res.json().type, 'urn:bastion:problem:unprocessable-training');
    assert.match(res.json().detail, /inputs\.0 is F32 \[5\] per sample/);
    assert.deepEqual((await privacy(a)).events, []);
    assert.deepEqual((await privacy(b)).events, []);
  });

  test("a model that cannot run on the datasets' public shapes is 422 with libtorch's own message from the pre-flight: no charge, no job", async () => {
    const narrowId = await uploadModel('narrow', await narrowModel());
    const datasetId = await uploadDataset({ features: 4 });
    const before = trainingRows();
    for (const extra of [
      {},
      { optimizer: { type: 'adam', learningRate: 0.01 }, privacy: { targetEpsilon: 3, maxGradNorm: 1, clipping: 'per-layer' } },
    ]) {
      const res = await create(body([datasetId], { modelId: narrowId, ...extra }));
      assert.equal(res.statusCode, 422, res.body);
      const problem = res.json();
      assert.equal(problem.type, 'urn:bastion:problem:unprocessable-training');
      assert.match(
        problem.detail,
        /^The model cannot be trained on these datasets as asked: it fails on synthetic inputs \(a batch of 32 zeros of the datasets' public/,
      );
      assert.match(problem.detail, /RuntimeError: mat1 and mat2 shapes cannot be multiplied \(2x4 and 5x16\)$/);
      assert.deepEqual(problem.preflight, { samples: 32, code: 'INVALID_ARGUMENT' });
    }
    assert.deepEqual((await privacy(datasetId)).events, [], 'the ledger has no event');
    assert.equal(trainingRows(), before, 'no training was created');
    // The dry run pre-flights too: the same 422, and nothing charged.
    const planned = await t.app.inject({
      method: 'POST',
      url: '/v1/trainings/plan',
      payload: body([datasetId], { modelId: narrowId }),
      headers: t.auth(scientist.token),
    });
    assert.equal(planned.statusCode, 422, planned.body);
    assert.match(planned.json().detail, /RuntimeError: mat1 and mat2 shapes cannot be multiplied \(2x4 and 5x16\)$/);
    assert.deepEqual((await privacy(datasetId)).events, []);
  });

  test('the pre-flight takes a training step, not only a forward: a model that raises in training mode is 422 with its message', async () => {
    const evalOnlyId = await uploadModel('eval-only', await evalOnlyModel());
    const content = classifierDataset(128, 9);
    const open = await multipartForm({ name: 'open', privacyLimit: '5', policy: forScientist(true) }, [{ content }]);
    const datasetId = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/datasets',
        payload: open.payload,
        headers: { ...open.headers, ...t.auth(owner.token) },
      })
    ).json().id;
    const before = trainingRows();
    const { privacy: _privacy, metricsEpsilon: _metrics, ...rest } = body([datasetId], { modelId: evalOnlyId });
    // Non-private: the trainer's creation probes in eval mode only, so only the pre-flight's step meets the raise.
    for (const payload of [{ ...rest, private: false }, body([datasetId], { modelId: evalOnlyId })]) {
      const res = await create(payload);
      assert.equal(res.statusCode, 422, res.body);
      assert.match(res.json().detail, /ValueError: this model refuses to train$/);
    }
    assert.deepEqual((await privacy(datasetId)).events, []);
    assert.equal(trainingRows(), before);
  });

  test('nesterov without momentum is 400 naming /optimizer/nesterov: no charge, no job', async () => {
    const datasetId = await uploadDataset();
    const before = trainingRows();
    const res = await create(body([datasetId], { optimizer: { type: 'sgd', learningRate: 0.5, nesterov: true } }));
    assert.equal(res.statusCode, 400, res.body);
    assert.deepEqual(
      res.json().errors.map((e: { pointer: string }) => e.pointer),
      ['/optimizer/nesterov'],
    );
    assert.deepEqual((await privacy(datasetId)).events, []);
    assert.equal(trainingRows(), before);
  });

  test('a malformed body is 400 naming the fields; an unknown model is 404', async () => {
    const datasetId = await uploadDataset();
    const bad = await create({ ...body([datasetId]), optimizer: { type: 'rmsprop', learningRate: 1 } });
    assert.equal(bad.statusCode, 400);
    assert.ok(bad.json().errors.some((e: { pointer: string }) => e.pointer === '/optimizer/type'));
    const unknown = await create(body([datasetId], { modelId: '01900000-0000-7000-8000-000000000000' }));
    assert.equal(unknown.statusCode, 404);
    assert.deepEqual((await privacy(datasetId)).events, []);
  });
});

describe('running jobs', () => {
  // 512 samples, batch 64, 1000 epochs: 8000 steps, far more than run before the job is cancelled.
  const long = (datasetId: string) => body([datasetId], { epochs: 1000 });

  test('cancel stops a running job within a step; it ends cancelled and the ledger keeps the whole plan', async () => {
    const datasetId = await uploadDataset({ seed: 3 });
    const job = (await create(long(datasetId))).json();
    const stream = await sse(job.id);
    assert.equal(stream.response.status, 200);
    assert.match(stream.response.headers.get('content-type')!, /^text\/event-stream/);
    await stream.log.next('progress');

    const inUse = await t.app.inject({ method: 'DELETE', url: `/v1/models/${modelId}`, headers: t.auth(scientist.token) });
    assert.equal(inUse.statusCode, 409, 'a model a running training reads cannot be deleted');
    assert.equal(inUse.json().type, 'urn:bastion:problem:artifact-in-use');

    const charged = (await privacy(datasetId)).epsilonSpent;
    const res = await t.app.inject({ method: 'POST', url: `/v1/trainings/${job.id}/cancel`, headers: t.auth(scientist.token) });
    assert.equal(res.statusCode, 200, res.body);
    const cancelled = res.json();
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(cancelled.step > 0 && cancelled.step < cancelled.totalSteps, String(cancelled.step));
    assert.ok(cancelled.epsilonSpent < cancelled.epsilonPlanned, 'ε of the steps run is below the plan');
    assert.equal(cancelled.resultModelId, null);
    await stream.log.whenEnded();
    assert.equal(stream.log.events.at(-1)!.event, 'cancelled');
    assert.equal((await privacy(datasetId)).epsilonSpent, charged, 'the ledger keeps the whole planned charge');

    const again = await t.app.inject({ method: 'POST', url: `/v1/trainings/${job.id}/cancel`, headers: t.auth(scientist.token) });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().type, 'urn:bastion:problem:training-finished');
  });

  test('two trainings run at once in a pool of two', async () => {
    const [a, b] = [await uploadDataset({ seed: 4 }), await uploadDataset({ seed: 5 })];
    const jobs = [(await create(long(a))).json(), (await create(long(b))).json()];
    const streams = await Promise.all(jobs.map((j) => sse(j.id)));
    await Promise.all(streams.map((s) => s.log.next('progress')));
    for (const s of streams) assert.ok(!s.log.types().some((type) => ['completed', 'failed', 'cancelled'].includes(type)));
    for (const j of jobs) assert.equal((await get(j.id)).json().status, 'running');
    for (const j of jobs)
      assert.equal(
        (await t.app.inject({ method: 'POST', url: `/v1/trainings/${j.id}/cancel`, headers: t.auth(scientist.token) })).json().status,
        'cancelled',
      );
    await Promise.all(streams.map((s) => s.log.whenEnded()));
  });

  test('a job is seen by whoever started it, the owners of its datasets and admins, and only the first sees its metrics; others get 404 and do not list it', async () => {
    const datasetId = await uploadDataset({ seed: 6 });
    const job = (await create(body([datasetId], { metricsEpsilon: 1 }))).json();
    assert.equal((await get(job.id, stranger.token)).statusCode, 404);
    assert.equal((await t.app.inject({ url: `/v1/trainings/${job.id}/events`, headers: t.auth(stranger.token) })).statusCode, 404);
    const cancel = await t.app.inject({ method: 'POST', url: `/v1/trainings/${job.id}/cancel`, headers: t.auth(stranger.token) });
    assert.equal(cancel.statusCode, 404);
    assert.equal(cancel.json().type, 'urn:bastion:problem:not-found');
    assert.deepEqual((await t.app.inject({ url: '/v1/trainings', headers: t.auth(stranger.token) })).json().items, []);
    const mine = (await t.app.inject({ url: '/v1/trainings', headers: t.auth(scientist.token) }))
      .json()
      .items.map((j: { id: string }) => j.id);
    assert.ok(mine.includes(job.id));
    assert.equal((await events(job.id)).at(-1)!.event, 'completed');

    const done = (await get(job.id)).json();
    assert.equal(done.metrics.length, 1, 'the scientist sees the released metric');
    for (const token of [owner.token, t.adminToken]) {
      assert.deepEqual((await get(job.id, token)).json(), { ...done, metrics: [] });
      const listed = (await t.app.inject({ url: '/v1/trainings', headers: t.auth(token) }))
        .json()
        .items.filter((j: { id: string }) => j.id === job.id);
      assert.deepEqual(listed, [{ ...done, metrics: [] }]);
      const stream = parseSse((await t.app.inject({ url: `/v1/trainings/${job.id}/events`, headers: t.auth(token) })).body);
      assert.deepEqual(
        stream.map((e) => e.event),
        ['state', 'completed'],
      );
      assert.deepEqual(JSON.parse(stream.at(-1)!.data).metrics, []);
      // They may cancel it: a finished job has nothing left to cancel.
      const late = await t.app.inject({ method: 'POST', url: `/v1/trainings/${job.id}/cancel`, headers: t.auth(token) });
      assert.equal(late.statusCode, 409);
      assert.equal(late.json().type, 'urn:bastion:problem:training-finished');
    }
  });
});
