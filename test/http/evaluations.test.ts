// POST /v1/evaluations with a real pool: exact only where the owner allows, otherwise a DP release of
// the accuracy whose ε is charged to the dataset first; the noise is real (an exact discrete Gaussian on
// the correct count) and its std is reported.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { discreteGaussianDelta } from '../../src/privacy/analysis/discrete-gaussian.js';
import { composedEpsilon, datasetPrivacy } from '../../src/privacy/ledger.js';
import { createPool, type WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { multipartForm } from '../helpers/multipart.js';
import { classifierDataset, classifierModel, narrowModel } from '../helpers/training-fixtures.js';

let t: TestApp;
let pool: WorkerPool;
let scientist: string;
let scientistId: string;
let owner: string;
let modelId: string;
let openId: string;
let closedId: string;

const forScientist = () => JSON.stringify({ trainers: [scientistId] });

async function upload(url: string, fields: Record<string, string>, content: Buffer, token: string): Promise<string> {
  const form = await multipartForm(fields, [{ content }]);
  const res = await t.app.inject({ method: 'POST', url, payload: form.payload, headers: { ...form.headers, ...t.auth(token) } });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id as string;
}

before(async () => {
  pool = createPool({ size: 1, torchThreads: 1 });
  t = await buildTestApp({ pool });
  ({ token: scientist, id: scientistId } = t.principal('data-scientist'));
  owner = t.principal('hospital').token;
  modelId = await upload('/v1/models', { name: 'classifier' }, await classifierModel(), scientist);
  // The hospital's datasets name the scientist as a trainer; one allows non-private use.
  openId = await upload(
    '/v1/datasets',
    { name: 'open', privacyLimit: '5', allowNonPrivate: 'true', policy: forScientist() },
    classifierDataset(400, 3),
    owner,
  );
  closedId = await upload('/v1/datasets', { name: 'closed', privacyLimit: '5', policy: forScientist() }, classifierDataset(400, 4), owner);
});
after(async () => {
  await t.close();
  await pool.close();
});

const evaluate = (body: Record<string, unknown>, token = scientist) =>
  t.app.inject({ method: 'POST', url: '/v1/evaluations', payload: body, headers: t.auth(token) });

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
  assert.equal(res.json().rule, 'dataset.policy.allowNonPrivate');
  assert.equal(res.json().detail, `The policy of dataset ${closedId} does not allow non-private use: give epsilon for a DP evaluation`);
  assert.deepEqual((await datasetPrivacy({ store: t.store }, closedId)).events, []);
});

test('a DP evaluation charges the ledger the discrete Gaussian it releases: an integer count plus N_Z(0, σ²), (ε, δ) as the response says', async () => {
  const exact = (await evaluate({ modelId, datasetId: openId, loss: 'cross_entropy' })).json();
  const released: number[] = [];
  const responses: { id: string; epsilon: number; delta: number; noiseMultiplier: number }[] = [];
  for (let i = 0; i < 5; i += 1) {
    const res = await evaluate({ modelId, datasetId: openId, loss: 'cross_entropy', epsilon: 0.5 });
    assert.equal(res.statusCode, 200, res.body);
    const e = res.json();
    assert.equal(e.private, true);
    assert.equal(e.loss, null);
    assert.equal(e.epsilon, 0.5);
    assert.ok(e.noiseMultiplier > 0);
    // The noise is an integer on the count of 400 correct-or-not samples: the release is k/400.
    assert.ok(Math.abs(e.accuracy * 400 - Math.round(e.accuracy * 400)) < 1e-9, `${e.accuracy} is not a count over 400`);
    // Var[N_Z(0, σ²)] < σ², and at σ ≈ 7 the two agree to far better than 1%.
    assert.ok(e.accuracyNoiseStd <= e.noiseMultiplier / 400 && e.accuracyNoiseStd > 0.99 * (e.noiseMultiplier / 400));
    // Within 6 standard deviations of the exact value (a failure here has probability < 1e-8).
    assert.ok(Math.abs(e.accuracy - exact.accuracy) <= 6 * e.accuracyNoiseStd + 1 / 400, `${e.accuracy} vs ${exact.accuracy}`);
    released.push(e.accuracy);
    responses.push(e);
  }
  assert.ok(new Set(released).size > 1, 'the noise differs between releases');
  const ledger = await datasetPrivacy({ store: t.store }, openId);
  assert.equal(ledger.events.length, 5);
  for (const e of responses) {
    const entry = ledger.events.find((item) => item.source.kind === 'evaluation' && item.source.id === e.id);
    assert.ok(entry, `no ledger entry for evaluation ${e.id}`);
    const event = entry.event;
    assert.equal(event.kind, 'discrete-gaussian');
    if (event.kind !== 'discrete-gaussian') return;
    assert.equal(event.sensitivity, 1);
    assert.equal(event.count, 1);
    assert.equal(Math.sqrt(event.sigmaSquared), e.noiseMultiplier);
    assert.equal(e.delta, ledger.delta);
    // The recorded mechanism is (ε, δ)-DP at the response's figures, by its exact δ(ε) …
    assert.ok(discreteGaussianDelta({ sigmaSquared: event.sigmaSquared, sensitivity: 1, epsilon: e.epsilon }) <= e.delta);
    // … and the ledger's own (pessimistic PLD) figure for it is that ε, up to the PLD grid.
    const charged = composedEpsilon([event], ledger.delta).epsilon;
    assert.ok(Math.abs(charged - e.epsilon) < 2e-4, `the ledger charges ε = ${charged} for a release reported as ε = ${e.epsilon}`);
  }
  assert.equal(
    ledger.epsilonSpent,
    composedEpsilon(
      ledger.events.map((entry) => entry.event),
      ledger.delta,
    ).epsilon,
  );
});

test('a DP evaluation the budget cannot pay for is refused with 409 before the model runs', async () => {
  const res = await evaluate({ modelId, datasetId: closedId, loss: 'cross_entropy', epsilon: 50 });
  assert.equal(res.statusCode, 409);
  assert.equal(res.json().type, 'urn:bastion:problem:budget-exhausted');
  assert.deepEqual((await datasetPrivacy({ store: t.store }, closedId)).events, []);
});

test("someone else's model and a dataset whose policy does not name the caller are 404, and regression losses have no DP release (422)", async () => {
  assert.equal((await evaluate({ modelId, datasetId: openId, loss: 'cross_entropy' }, owner)).statusCode, 404);
  const unshared = await upload(
    '/v1/datasets',
    { name: 'unshared', privacyLimit: '5', allowNonPrivate: 'true' },
    classifierDataset(100, 6),
    owner,
  );
  for (const body of [{}, { epsilon: 1 }]) {
    const hidden = await evaluate({ modelId, datasetId: unshared, loss: 'cross_entropy', ...body });
    assert.equal(hidden.statusCode, 404, hidden.body);
    assert.equal(hidden.json().detail, `No dataset with id ${unshared}`);
  }
  assert.deepEqual((await datasetPrivacy({ store: t.store }, unshared)).events, []);
  const res = await evaluate({ modelId, datasetId: closedId, loss: 'mse', epsilon: 1 });
  assert.equal(res.statusCode, 422);
  assert.deepEqual((await datasetPrivacy({ store: t.store }, closedId)).events, []);
});

test("a model that cannot run on the dataset's public shapes is 422 with libtorch's own message from the pre-flight, and nothing is charged", async () => {
  const narrowId = await upload('/v1/models', { name: 'narrow' }, await narrowModel(), scientist);
  const fourId = await upload(
    '/v1/datasets',
    { name: 'four features', privacyLimit: '5', allowNonPrivate: 'true', policy: forScientist() },
    classifierDataset(300, 5, 4),
    owner,
  );
  for (const body of [{ epsilon: 1 }, {}]) {
    const res = await evaluate({ modelId: narrowId, datasetId: fourId, loss: 'cross_entropy', ...body });
    assert.equal(res.statusCode, 422, res.body);
    const problem = res.json();
    assert.equal(problem.type, 'urn:bastion:problem:unprocessable-training');
    assert.match(
      problem.detail,
      /^The model cannot be evaluated on this dataset: it fails on synthetic inputs \(a batch of 256 zeros of the dataset's public/,
    );
    assert.match(problem.detail, /RuntimeError: mat1 and mat2 shapes cannot be multiplied \(2x4 and 5x16\)$/);
  }
  const ledger = await t.app.inject({ url: `/v1/datasets/${fourId}/privacy`, headers: t.auth(owner) });
  assert.equal(ledger.statusCode, 200, ledger.body);
  assert.deepEqual(ledger.json().events, [], "the owner's ledger has no event");
  // The classifier of 8 features still evaluates on its datasets (the tests above), pre-flight included.
});
