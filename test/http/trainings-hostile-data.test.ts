// A legitimate model meets hostile data through the HTTP API: a plain linear model with one huge weight
// that overflows only on a record with a large feature, and a record whose label is out of range. The
// model's author must not learn whether such a record is present: the training succeeds with the same
// status, events and error either way. The dataset's owner sees, per training, how many of its samples
// were dropped and why (counts only) in the dataset's privacy ledger, and only for its own dataset in a
// training on several owners' datasets; the author sees no count anywhere.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPool, type WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { multipartForm } from '../helpers/multipart.js';
import { parseSse } from '../helpers/sse.js';
import { classifierDataset, classifierModel, FEATURES, hugeWeightModel } from '../helpers/training-fixtures.js';

let t: TestApp;
let pool: WorkerPool;
let owner: { id: string; token: string };
let scientist: { id: string; token: string };
let otherOwner: { id: string; token: string };

before(async () => {
  pool = createPool({ size: 2, torchThreads: 1 });
  t = await buildTestApp({ pool, training: { checkpointEverySteps: 5, checkpointEveryMs: 60_000 } });
  owner = t.principal('data-owner');
  scientist = t.principal('model-author');
  otherOwner = t.principal('other-data-owner');
});
after(async () => {
  await t.close();
  await pool.close();
});

const SAMPLES = 48;
const STEPS = 3;

async function uploadModel(content: Buffer): Promise<string> {
  const form = await multipartForm({ name: 'model' }, [{ content, filename: 'model.pt' }]);
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/models',
    payload: form.payload,
    headers: { ...form.headers, ...t.auth(scientist.token) },
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id;
}

/** A dataset of `by` whose policy names the model's author as a trainer. */
async function uploadDataset(edit?: (x: Float32Array, y: BigInt64Array) => void, by = owner): Promise<string> {
  const content = classifierDataset(SAMPLES, 5, FEATURES, edit);
  const form = await multipartForm({ name: 'points', privacyLimit: '50', policy: JSON.stringify({ trainers: [scientist.id] }) }, [
    { content, filename: 'points.safetensors' },
  ]);
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/datasets',
    payload: form.payload,
    headers: { ...form.headers, ...t.auth(by.token) },
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id;
}

/** Trains `modelId` on `datasetIds` with q = 1 (every record in every step) and returns what the author and the first dataset's owner see. */
async function train(modelId: string, ...datasetIds: string[]) {
  const datasetId = datasetIds[0]!;
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/trainings',
    headers: t.auth(scientist.token),
    payload: {
      modelId,
      datasetIds,
      epochs: STEPS,
      expectedBatchSize: SAMPLES * datasetIds.length,
      maxPhysicalBatchSize: 16,
      loss: 'cross_entropy',
      optimizer: { type: 'sgd', learningRate: 0.1 },
      privacy: { targetEpsilon: 20, maxGradNorm: 1.0, clipping: 'flat', accountant: 'rdp' },
      metricsEpsilon: 0,
    },
  });
  assert.equal(res.statusCode, 202, res.body);
  const id = res.json().id as string;
  const stream = parseSse((await t.app.inject({ url: `/v1/trainings/${id}/events`, headers: t.auth(scientist.token) })).body);
  const view = (await t.app.inject({ url: `/v1/trainings/${id}`, headers: t.auth(scientist.token) })).json();
  const authors = await t.app.inject({ url: `/v1/datasets/${datasetId}/privacy`, headers: t.auth(scientist.token) });
  assert.equal(authors.statusCode, 200, 'the author, a trainer, sees the ledger');
  const authorsLedger = authors.json();
  const ownersLedger = (await t.app.inject({ url: `/v1/datasets/${datasetId}/privacy`, headers: t.auth(owner.token) })).json();
  return { id, stream, view, authorsLedger, ownersLedger };
}

/** What the author's observations have in common whatever the data: statuses, event kinds, errors, steps. */
function observable(run: Awaited<ReturnType<typeof train>>) {
  return {
    status: run.view.status,
    error: run.view.error,
    step: run.view.step,
    totalSteps: run.view.totalSteps,
    keys: Object.keys(run.view).sort(),
    terminal: run.stream.at(-1)!.event,
    eventKinds: [...new Set(run.stream.map((e) => e.event))].sort(),
  };
}

function droppedOf(run: Awaited<ReturnType<typeof train>>) {
  const events = run.ownersLedger.events.filter((e: { source: { id: string } }) => e.source.id === run.id);
  assert.equal(events.length, 1);
  return events[0].dropped;
}

function assertAuthorSeesNoCount(run: Awaited<ReturnType<typeof train>>) {
  const seen = JSON.stringify([run.view, run.stream, run.authorsLedger]);
  assert.doesNotMatch(seen, /dropped|nonFinite|exception/i, 'the author gets no drop count');
}

test('a huge weight that overflows only on one record: the training succeeds alike with and without it; only the owner sees the drops', async () => {
  const modelId = await uploadModel(await hugeWeightModel());
  const cleanId = await uploadDataset();
  const hostileId = await uploadDataset((x) => void (x[7 * FEATURES] = 1e4));
  const clean = await train(modelId, cleanId);
  const hostile = await train(modelId, hostileId);
  assert.equal(clean.view.status, 'succeeded', clean.view.error);
  assert.deepEqual(observable(hostile), observable(clean));
  assert.deepEqual(droppedOf(clean), { exception: 0, nonFiniteLoss: 0, nonFiniteGradient: 0 });
  assert.deepEqual(droppedOf(hostile), { exception: 0, nonFiniteLoss: STEPS, nonFiniteGradient: 0 }, 'q = 1: the record is in every step');
  assertAuthorSeesNoCount(clean);
  assertAuthorSeesNoCount(hostile);
});

test('a label out of range: the training succeeds alike with and without it; only the owner sees the drops', async () => {
  const modelId = await uploadModel(await classifierModel());
  const cleanId = await uploadDataset();
  const hostileId = await uploadDataset((_x, y) => void (y[11] = 7n));
  const clean = await train(modelId, cleanId);
  const hostile = await train(modelId, hostileId);
  assert.equal(clean.view.status, 'succeeded', clean.view.error);
  assert.deepEqual(observable(hostile), observable(clean));
  assert.deepEqual(droppedOf(clean), { exception: 0, nonFiniteLoss: 0, nonFiniteGradient: 0 });
  assert.deepEqual(droppedOf(hostile), { exception: STEPS, nonFiniteLoss: 0, nonFiniteGradient: 0 });
  assertAuthorSeesNoCount(hostile);
});

test("a training on two owners' datasets: each owner sees only its own dataset's drops", async () => {
  const modelId = await uploadModel(await classifierModel());
  const hostileId = await uploadDataset((_x, y) => void (y[0] = 9n));
  const othersId = await uploadDataset(undefined, otherOwner);
  const run = await train(modelId, hostileId, othersId);
  assert.equal(run.view.status, 'succeeded', run.view.error);
  assert.deepEqual(droppedOf(run), { exception: STEPS, nonFiniteLoss: 0, nonFiniteGradient: 0 });
  const others = (await t.app.inject({ url: `/v1/datasets/${othersId}/privacy`, headers: t.auth(otherOwner.token) })).json();
  const event = others.events.find((e: { source: { id: string } }) => e.source.id === run.id);
  assert.deepEqual(
    event.dropped,
    { exception: 0, nonFiniteLoss: 0, nonFiniteGradient: 0 },
    'the other owner learns nothing of the first dataset',
  );
  // The first dataset is not shared with the other owner: its ledger is 404 to it, and the training,
  // which the other owner sees as the owner of one of its datasets, carries no count.
  const crossed = await t.app.inject({ url: `/v1/datasets/${hostileId}/privacy`, headers: t.auth(otherOwner.token) });
  assert.equal(crossed.statusCode, 404);
  assert.doesNotMatch(crossed.body, /dropped/);
  const othersView = await t.app.inject({ url: `/v1/trainings/${run.id}`, headers: t.auth(otherOwner.token) });
  assert.equal(othersView.statusCode, 200);
  const othersStream = (await t.app.inject({ url: `/v1/trainings/${run.id}/events`, headers: t.auth(otherOwner.token) })).body;
  assert.doesNotMatch(
    othersView.body + othersStream,
    /dropped|nonFinite|exception/i,
    'the other owner gets no drop count from the training',
  );
  assertAuthorSeesNoCount(run);
});
