// POST /v1/evaluations with a real pool: exact only where the owner allows, otherwise a DP release of
// the accuracy whose ε is charged to the dataset first; the noise is real and its std is reported.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPrincipal } from '../../src/governance/principals.js';
import { datasetPrivacy } from '../../src/privacy/ledger.js';
import { createPool, type WorkerPool } from '../../src/training/pool.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { multipartForm } from '../helpers/multipart.js';
import { classifierDataset, classifierModel } from '../helpers/training-fixtures.js';

let t: TestApp;
let pool: WorkerPool;
let scientist: string;
let owner: string;
let modelId: string;
let openId: string;
let closedId: string;

async function upload(url: string, fields: Record<string, string>, content: Buffer, token: string): Promise<string> {
  const form = await multipartForm(fields, [{ content }]);
  const res = await t.app.inject({ method: 'POST', url, payload: form.payload, headers: { ...form.headers, ...t.auth(token) } });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id as string;
}

before(async () => {
  pool = createPool({ size: 1, torchThreads: 1 });
  t = await buildTestApp({ pool });
  scientist = createPrincipal(t.store, { name: 'data-scientist', role: 'member' }).token;
  owner = createPrincipal(t.store, { name: 'hospital', role: 'member' }).token;
  modelId = await upload('/v1/models', { name: 'classifier' }, await classifierModel(), scientist);
  openId = await upload('/v1/datasets', { name: 'open', privacyLimit: '5', allowNonPrivate: 'true' }, classifierDataset(400, 3), owner);
  closedId = await upload('/v1/datasets', { name: 'closed', privacyLimit: '5' }, classifierDataset(400, 4), owner);
});
after(async () => {
  await t.close();
  await pool.close();
});

const evaluate = (body: Record<string, unknown>, token = scientist) => t.app.inject({ method: 'POST', url: '/v1/evaluations', payload: body, headers: t.auth(token) });

test('an exact evaluation where the owner allows it gives accuracy and loss and charges nothing', async () => {
  const res = await evaluate({ modelId, datasetId: openId, loss: 'cross_entropy' });
  assert.equal(res.statusCode, 200, res.body);
  const e = res.json();
  assert.equal(e.private, false);
  assert.equal(e.samples, 400);
  assert.ok(e.accuracy >= 0 && e.accuracy <= 1);
  assert.ok(Number.isFinite(e.loss) && e.loss > 0);
  assert.equal(e.accuracyNoiseStd, 0);
  assert.deepEqual((await datasetPrivacy({ store: t.store }, openId)).events, []);
});

test('without ε on a dataset that does not allow non-private use: 403, nothing charged', async () => {
  const res = await evaluate({ modelId, datasetId: closedId, loss: 'cross_entropy' });
  assert.equal(res.statusCode, 403);
  assert.deepEqual((await datasetPrivacy({ store: t.store }, closedId)).events, []);
});

test('a DP evaluation charges its ε as one Gaussian release and adds noise of the stated std to the accuracy', async () => {
  const exact = (await evaluate({ modelId, datasetId: openId, loss: 'cross_entropy' })).json();
  const released: number[] = [];
  for (let i = 0; i < 5; i += 1) {
    const res = await evaluate({ modelId, datasetId: openId, loss: 'cross_entropy', epsilon: 0.5 });
    assert.equal(res.statusCode, 200, res.body);
    const e = res.json();
    assert.equal(e.private, true);
    assert.equal(e.loss, null);
    assert.equal(e.epsilon, 0.5);
    assert.ok(e.noiseMultiplier > 0);
    assert.equal(e.accuracyNoiseStd, e.noiseMultiplier / 400);
    // Within 6 standard deviations of the exact value (a failure here has probability < 1e-8).
    assert.ok(Math.abs(e.accuracy - exact.accuracy) <= 6 * e.accuracyNoiseStd + 1 / 400, `${e.accuracy} vs ${exact.accuracy}`);
    released.push(e.accuracy);
  }
  assert.ok(new Set(released).size > 1, 'the noise differs between releases');
  const ledger = await datasetPrivacy({ store: t.store }, openId);
  assert.equal(ledger.events.length, 5);
  assert.ok(ledger.events.every((entry) => entry.event.kind === 'gaussian' && entry.source.kind === 'evaluation'));
});

test('a DP evaluation the budget cannot pay for is refused with 409 before the model runs', async () => {
  const res = await evaluate({ modelId, datasetId: closedId, loss: 'cross_entropy', epsilon: 50 });
  assert.equal(res.statusCode, 409);
  assert.equal(res.json().type, 'urn:bastion:problem:budget-exhausted');
  assert.deepEqual((await datasetPrivacy({ store: t.store }, closedId)).events, []);
});

test("someone else's model is 404, and regression losses have no DP release (422)", async () => {
  assert.equal((await evaluate({ modelId, datasetId: openId, loss: 'cross_entropy' }, owner)).statusCode, 404);
  const res = await evaluate({ modelId, datasetId: closedId, loss: 'mse', epsilon: 1 });
  assert.equal(res.statusCode, 422);
  assert.deepEqual((await datasetPrivacy({ store: t.store }, closedId)).events, []);
});
