// POST /v1/trainings/plan and GET /v1/datasets/:id/privacy: σ is calibrated to the target ε at the
// smallest δ, q and steps follow from the pooled datasets, and every inconsistency is a 4xx.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { createRdpAccountant } from '../../src/privacy/accountant.js';
import { calibrateNoiseMultiplier, calibrateTrainingNoise } from '../../src/privacy/calibration.js';
import { chargeLedger, composedEpsilon, datasetPrivacy, type PrivacyMath } from '../../src/privacy/ledger.js';
import { insertDataset } from '../../src/store/artifacts.js';
import { buildTestApp, inlineMath, insertModelRow, preflightPassingPool, type TestApp } from '../helpers/app.js';

let t: TestApp;
let scientist: { id: string; token: string };
let other: { id: string; token: string };

before(async () => {
  // Its models are catalogue rows without bytes: POST /v1/trainings's pre-flight is answered as passed.
  t = await buildTestApp({ pool: preflightPassingPool, privacyMath: inlineMath });
  scientist = t.principal('data-scientist');
  other = t.principal('someone-else');
});
after(() => t.close());

function addModel(ownerId: string, app: TestApp = t, inputRanks: string[] | null = ['2']): string {
  const id = uuidv7();
  const check = {
    methods: ['forward'],
    parameters: [
      { name: 'fc1.weight', shape: [8, 4], dtype: 'F32', requiresGrad: true },
      { name: 'fc1.bias', shape: [8], dtype: 'F32', requiresGrad: true },
      { name: 'fc2.weight', shape: [3, 8], dtype: 'F32', requiresGrad: true },
    ],
    buffers: [],
    parameterCount: 67,
    operators: ['aten::linear'],
    ...(inputRanks ? { inputRanks } : {}),
  };
  insertModelRow(app.store, { id, ownerId, details: check });
  return id;
}

/**
 * A dataset of a fresh owner, whose policy names `trainers` (default: the scientist of `app`'s tests;
 * pass them for another app).
 */
function addDataset(
  options: {
    samples: number;
    features?: number[];
    labels?: 'I64' | 'F32';
    delta?: number;
    limit?: number;
    allowNonPrivate?: boolean;
    trainers?: string[] | 'everyone';
  },
  app: TestApp = t,
): string {
  const owner = app.principal(`owner-${uuidv7()}`);
  const id = uuidv7();
  const n = options.samples;
  const summary = {
    sampleCount: n,
    inputs: [{ name: 'inputs.0', dtype: 'F32', shape: [n, ...(options.features ?? [4])] }],
    labels: { name: 'labels', dtype: options.labels ?? 'I64', shape: [n] },
    labelClasses: [0, 1, 2],
  };
  insertDataset(app.store, {
    id,
    ownerId: owner.id,
    name: 'd',
    description: '',
    format: 'safetensors',
    sha256: '0'.repeat(64),
    sizeBytes: 1,
    privacyLimit: options.limit ?? 10,
    delta: options.delta ?? 1e-5,
    sampleCount: n,
    details: JSON.stringify({ summary, layout: { blob: 'dataset', tensors: [] } }),
    policy: JSON.stringify({ trainers: options.trainers ?? [scientist.id], allowNonPrivate: options.allowNonPrivate ?? false }),
    commitmentSalt: '0'.repeat(64),
    createdAt: new Date().toISOString(),
  });
  return id;
}

const body = (modelId: string, datasetIds: string[], extra: Record<string, unknown> = {}) => ({
  modelId,
  datasetIds,
  epochs: 3,
  expectedBatchSize: 256,
  maxPhysicalBatchSize: 128,
  loss: 'cross_entropy',
  optimizer: { type: 'sgd', learningRate: 0.5, momentum: 0.9 },
  privacy: { targetEpsilon: 3, maxGradNorm: 1.0, clipping: 'flat', accountant: 'rdp' },
  metricsEpsilon: 0,
  ...extra,
});

const plan = (payload: unknown, token = scientist.token) =>
  t.app.inject({ method: 'POST', url: '/v1/trainings/plan', payload: payload as object, headers: t.auth(token) });

test('a model shown batch-independent only at other input ranks, or checked before that analysis, is refused with 422 at planning', async () => {
  const dataset = addDataset({ samples: 1000, delta: 1e-5 });
  const conv = addModel(scientist.id, t, ['4']);
  const res = await plan(body(conv, [dataset], { expectedBatchSize: 100 }));
  assert.equal(res.statusCode, 422, res.body);
  assert.match(
    res.json().detail,
    /keeps the samples of a batch apart only for inputs of rank 4 \(the sample dimension included\); the dataset's inputs have rank 2/,
  );
  const legacy = addModel(scientist.id, t, null);
  const old = await plan(body(legacy, [dataset], { expectedBatchSize: 100 }));
  assert.equal(old.statusCode, 422, old.body);
  assert.match(old.json().detail, /checked before that analysis existed.*upload it again/);
});

test('a PLD plan at ε = 1000 is calibrated with RDP (PLD would pass its work bound) and says so; ε meets the target', async () => {
  const model = addModel(scientist.id);
  const dataset = addDataset({ samples: 60000, limit: 1000 });
  const res = await plan(body(model, [dataset], { privacy: { targetEpsilon: 1000, maxGradNorm: 1.0, accountant: 'pld' } }));
  assert.equal(res.statusCode, 200, res.body);
  const p = res.json();
  assert.equal(p.accountant, 'rdp');
  const events = [{ kind: 'poisson-gaussian' as const, sampleRate: p.sampleRate, noiseMultiplier: p.noiseMultiplier, count: p.steps }];
  assert.ok(createRdpAccountant().epsilon(events, { delta: 1e-5 }) <= 1000);
  assert.ok(p.epsilon <= 1000 && p.epsilon > 999, `ε ${p.epsilon}`);
  assert.equal(p.allowed, true);
});

test('a plan pools the datasets: q = B / N, steps = ⌈epochs / q⌉, σ calibrated to the target ε at the smallest δ', async () => {
  const model = addModel(scientist.id);
  const a = addDataset({ samples: 40000, delta: 1e-5 });
  const b = addDataset({ samples: 20000, delta: 1e-6 });
  const res = await plan(body(model, [a, b]));
  assert.equal(res.statusCode, 200, res.body);
  const p = res.json();
  assert.equal(p.sampleCount, 60000);
  assert.equal(p.sampleRate, 256 / 60000);
  assert.equal(p.steps, Math.ceil(3 / (256 / 60000)));
  assert.equal(p.delta, 1e-6);
  const rdp = createRdpAccountant();
  const expected = calibrateNoiseMultiplier({ accountant: rdp, targetEpsilon: 3, delta: 1e-6, sampleRate: 256 / 60000, steps: p.steps });
  assert.equal(p.noiseMultiplier, expected);
  assert.ok(
    rdp.epsilon([{ kind: 'poisson-gaussian', sampleRate: p.sampleRate, noiseMultiplier: p.noiseMultiplier, count: p.steps }], {
      delta: 1e-6,
    }) > 2.99,
    'σ is the smallest RDP allows',
  );
  assert.equal(
    p.epsilon,
    composedEpsilon([{ kind: 'poisson-gaussian', sampleRate: p.sampleRate, noiseMultiplier: p.noiseMultiplier, count: p.steps }], 1e-6)
      .epsilon,
    'ε as the ledger composes it',
  );
  assert.ok(p.epsilon <= 3, `ε ${p.epsilon}`);
  assert.equal(p.allowed, true);
  assert.deepEqual(
    p.datasets.map((d: { datasetId: string }) => d.datasetId),
    [a, b],
  );
  for (const d of p.datasets) {
    assert.equal(d.epsilonSpent, 0);
    assert.ok(d.epsilonAfter <= 3 + 1e-9);
    assert.equal(d.allowed, true);
  }
});

test('a budget too small for the plan is reported with what the training would spend and what is left', async () => {
  const model = addModel(scientist.id);
  const ds = addDataset({ samples: 60000, limit: 2 });
  await chargeLedger(t.governance, { kind: 'training', id: 'earlier-job', principalId: scientist.id }, [
    { datasetId: ds, events: [{ kind: 'poisson-gaussian', sampleRate: 256 / 60000, noiseMultiplier: 1.1, count: 2000 }] },
  ]);
  const p = (await plan(body(model, [ds]))).json();
  assert.equal(p.allowed, false);
  assert.ok(p.datasets[0].epsilonSpent > 0.5, String(p.datasets[0].epsilonSpent));
  assert.ok(p.datasets[0].epsilonAfter > 2);
  assert.equal(p.datasets[0].epsilonRemainingAfter, 0);
});

test('DP training-loss metrics add metricsEpsilon to the charge: training and metrics are charged as one mechanism of ε target + metricsEpsilon', async () => {
  const model = addModel(scientist.id);
  const ds = addDataset({ samples: 60000 });
  const res = await plan(body(model, [ds], { metricsEpsilon: 0.5, metricsLossBound: 3 }));
  assert.equal(res.statusCode, 200, res.body);
  const p = res.json();
  const without = (await plan(body(model, [ds]))).json();
  assert.equal(without.metrics, null);
  assert.equal(without.epsilonTotal, without.epsilon);
  assert.equal(p.noiseMultiplier, without.noiseMultiplier, "the model's own noise is as without metrics");
  assert.equal(p.epsilon, without.epsilon);

  const rdp = createRdpAccountant();
  const joint = calibrateNoiseMultiplier({
    accountant: rdp,
    targetEpsilon: 3.5,
    delta: 1e-5,
    sampleRate: p.sampleRate,
    steps: p.steps,
    initialNoiseMultiplier: p.noiseMultiplier,
  });
  assert.ok(
    Math.abs(1 / Math.sqrt(p.noiseMultiplier ** -2 + p.metrics.noiseMultiplier ** -2) - joint) < 1e-12,
    'σ_m makes the calibrated joint σ',
  );
  assert.ok(
    rdp.epsilon([{ kind: 'poisson-gaussian', sampleRate: p.sampleRate, noiseMultiplier: joint, count: p.steps }], { delta: 1e-5 }) > 3.49,
    'the joint σ is the smallest RDP allows',
  );
  assert.equal(
    p.epsilonTotal,
    composedEpsilon([{ kind: 'poisson-gaussian', sampleRate: p.sampleRate, noiseMultiplier: joint, count: p.steps }], 1e-5).epsilon,
    'ε as the ledger composes it',
  );
  assert.ok(p.epsilonTotal <= 3.5, String(p.epsilonTotal));
  assert.deepEqual(p.metrics, {
    epsilon: p.epsilonTotal - p.epsilon,
    noiseMultiplier: p.metrics.noiseMultiplier,
    lossBound: 3,
    releases: 3,
  });
  assert.ok(p.metrics.noiseMultiplier > p.noiseMultiplier);
  assert.ok(
    p.datasets[0].epsilonAfter <= p.epsilonTotal + 1e-9 && p.datasets[0].epsilonAfter > without.datasets[0].epsilonAfter,
    'the ledger preview composes the joint event (under the tighter of PLD and RDP)',
  );

  assert.equal((await plan(body(model, [ds], { metricsEpsilon: 0.5 }))).json().metrics.lossBound, 5, 'L defaults to 5');
  const stray = await plan(body(model, [ds], { metricsLossBound: 3 }));
  assert.equal(stray.statusCode, 400);
  assert.deepEqual(
    stray.json().errors.map((e: { pointer: string }) => e.pointer),
    ['/metricsLossBound'],
  );
  const tiny = await plan(body(model, [ds], { metricsEpsilon: 1e-9 }));
  assert.equal(tiny.statusCode, 422, tiny.body);
  assert.deepEqual(
    tiny.json().errors.map((e: { pointer: string }) => e.pointer),
    ['/metricsEpsilon'],
  );
});

test('σ is calibrated with PLD unless the request names RDP: at the Fashion-MNIST recipe ε = 3 costs σ ≈ 1.808 against RDP’s ≈ 1.929', async () => {
  const model = addModel(scientist.id);
  const ds = addDataset({ samples: 60000, delta: 1e-5 });
  const { accountant: _a, ...privacy } = body(model, [ds]).privacy;
  const recipe = { epochs: 40, expectedBatchSize: 2048, maxPhysicalBatchSize: 256, privacy };
  const pld = (await plan(body(model, [ds], recipe))).json();
  assert.equal(pld.sampleRate, 2048 / 60000);
  assert.equal(pld.steps, 1172);
  assert.equal(pld.accountant, 'pld');
  assert.ok(Math.abs(pld.noiseMultiplier - 1.808) < 5e-4, `PLD σ ${pld.noiseMultiplier}`);
  assert.ok(pld.epsilon <= 3 && pld.epsilon > 2.999, `PLD ε ${pld.epsilon}`);
  const rdp = (await plan(body(model, [ds], { ...recipe, privacy: { ...privacy, accountant: 'rdp' } }))).json();
  assert.equal(rdp.accountant, 'rdp');
  assert.ok(Math.abs(rdp.noiseMultiplier - 1.929) < 5e-4, `RDP σ ${rdp.noiseMultiplier}`);
});

test('the plan shows exactly what the ledger charges, with PLD (the default) and with RDP and metrics', async () => {
  const model = addModel(scientist.id);
  const recipe = { epochs: 40, expectedBatchSize: 2048, maxPhysicalBatchSize: 256 };
  const { accountant: _a, ...privacy } = body(model, []).privacy;
  for (const extra of [{ privacy }, { privacy: { ...privacy, accountant: 'rdp' }, metricsEpsilon: 0.5 }]) {
    const ds = addDataset({ samples: 60000, delta: 1e-5 });
    const shown = (await plan(body(model, [ds], { ...recipe, ...extra }))).json();
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/trainings',
      payload: body(model, [ds], { ...recipe, ...extra }),
      headers: t.auth(scientist.token),
    });
    assert.equal(res.statusCode, 202, res.body);
    const charged = (await t.app.inject({ url: `/v1/datasets/${ds}/privacy`, headers: t.auth(scientist.token) })).json();
    assert.equal(charged.epsilonSpent, shown.epsilonTotal, `${JSON.stringify(extra)}: the ledger records the plan's ε`);
    assert.equal(res.json().plan.epsilonTotal, shown.epsilonTotal);
    assert.equal(shown.datasets[0].epsilonAfter, shown.epsilonTotal);
  }
});

test('datasets whose tensors do not match are refused with 422 naming the difference', async () => {
  const model = addModel(scientist.id);
  const a = addDataset({ samples: 1000, features: [4] });
  const b = addDataset({ samples: 1000, features: [5] });
  const res = await plan(body(model, [a, b]));
  assert.equal(res.statusCode, 422);
  assert.equal(res.json().type, 'urn:bastion:problem:unprocessable-training');
  assert.match(res.json().detail, /inputs\.0 is F32 \[5\] per sample/);
});

test('a loss that does not fit the labels is refused: mse needs float labels', async () => {
  const model = addModel(scientist.id);
  const ds = addDataset({ samples: 1000 });
  const res = await plan(body(model, [ds], { loss: 'mse' }));
  assert.equal(res.statusCode, 422);
  assert.match(res.json().detail, /mse needs float labels/);
});

test('non-private training needs every owner to allow it; then no noise and no charge', async () => {
  const model = addModel(scientist.id);
  const open = addDataset({ samples: 1000, allowNonPrivate: true });
  const closed = addDataset({ samples: 1000 });
  const { privacy: _privacy, metricsEpsilon: _metrics, ...rest } = body(model, [open, closed]);
  const refused = await plan({ ...rest, private: false });
  assert.equal(refused.statusCode, 403);
  assert.equal(refused.json().rule, 'dataset.policy.allowNonPrivate');
  assert.match(refused.json().detail, new RegExp(`the policy of dataset ${closed} does not allow it`));
  const ok = await plan({ ...rest, datasetIds: [open], private: false });
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(ok.json().noiseMultiplier, 0);
  assert.equal(ok.json().steps, Math.ceil((3 * 1000) / 256));
  assert.deepEqual(ok.json().metrics, { epsilon: null, noiseMultiplier: 0, lossBound: null, releases: 3 }, 'exact per-epoch losses');
});

test("someone else's model, unknown datasets and datasets whose policy does not name the caller are 404; a malformed body is 400 naming the fields", async () => {
  const mine = addModel(scientist.id);
  const ds = addDataset({ samples: 1000 });
  assert.equal((await plan(body(mine, [ds]), other.token)).statusCode, 404);
  assert.equal((await plan(body(mine, [uuidv7()]))).statusCode, 404);
  const unnamed = addDataset({ samples: 1000, trainers: [other.id] });
  const hidden = await plan(body(mine, [ds, unnamed]));
  assert.equal(hidden.statusCode, 404, hidden.body);
  assert.equal(hidden.json().detail, `No dataset with id ${unnamed}`);
  const theirs = addModel(other.id);
  assert.equal((await plan(body(theirs, [unnamed]), other.token)).statusCode, 200, 'the trainer it names may');
  const { privacy: _p, ...noPrivacy } = body(mine, [ds]);
  const missing = await plan(noPrivacy);
  assert.equal(missing.statusCode, 400);
  assert.deepEqual(
    missing.json().errors.map((e: { pointer: string }) => e.pointer),
    ['/privacy'],
  );
  const bad = await plan({ ...body(mine, [ds]), epochs: 0, surprise: 1 });
  assert.equal(bad.statusCode, 400);
  assert.deepEqual(
    bad
      .json()
      .errors.map((e: { pointer: string }) => e.pointer)
      .sort(),
    ['/epochs', '/surprise'],
  );
  const tooBig = await plan(body(mine, [ds], { expectedBatchSize: 5000 }));
  assert.equal(tooBig.statusCode, 400);
  assert.deepEqual(
    tooBig.json().errors.map((e: { pointer: string }) => e.pointer),
    ['/expectedBatchSize'],
  );
});

test('optimizer settings that cannot work are 400 naming the field, at /plan and at POST /v1/trainings, before anything is charged', async () => {
  const mine = addModel(scientist.id);
  const ds = addDataset({ samples: 1000 });
  const cases: [Record<string, unknown>, string[]][] = [
    [{ type: 'sgd', learningRate: 0.1, nesterov: true }, ['/optimizer/nesterov']],
    [{ type: 'sgd', learningRate: 0.1, momentum: 0, nesterov: true }, ['/optimizer/nesterov']],
    [{ type: 'sgd', learningRate: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true }, ['/optimizer/dampening']],
    [{ type: 'adam', learningRate: 0.1, momentum: 0.9 }, ['/optimizer/momentum']],
    [{ type: 'sgd', learningRate: 0.1, betas: [0.9, 0.99], eps: 1e-6 }, ['/optimizer/betas', '/optimizer/eps']],
    // betas is a pair: exactly two numbers in [0, 1).
    [{ type: 'adam', learningRate: 0.1, betas: [0.9] }, ['/optimizer/betas']],
    [{ type: 'adam', learningRate: 0.1, betas: [0.9, 0.99, 0.999] }, ['/optimizer/betas']],
    [{ type: 'adam', learningRate: 0.1, betas: [0.9, 1] }, ['/optimizer/betas/1']],
  ];
  for (const [optimizer, pointers] of cases) {
    for (const url of ['/v1/trainings/plan', '/v1/trainings']) {
      const res = await t.app.inject({ method: 'POST', url, payload: body(mine, [ds], { optimizer }), headers: t.auth(scientist.token) });
      assert.equal(res.statusCode, 400, `${url} ${JSON.stringify(optimizer)}: ${res.body}`);
      assert.equal(res.json().type, 'urn:bastion:problem:validation-failed');
      assert.deepEqual(
        res.json().errors.map((e: { pointer: string }) => e.pointer),
        pointers,
        `${url} ${JSON.stringify(optimizer)}`,
      );
    }
  }
  assert.deepEqual((await datasetPrivacy({ store: t.store }, ds)).events, [], 'nothing was charged');
  assert.equal(
    (await t.app.inject({ url: '/v1/trainings', headers: t.auth(scientist.token) }))
      .json()
      .items.filter((x: { datasetIds: string[] }) => x.datasetIds.includes(ds)).length,
    0,
    'no training was created',
  );
  // Nesterov with momentum and no dampening is fine.
  const ok = await plan(body(mine, [ds], { optimizer: { type: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true } }));
  assert.equal(ok.statusCode, 200, ok.body);
});

test('GET /v1/datasets/:id/privacy shows a trainer the limit, δ, the composed ε spent and remaining, and each release; others get 404', async () => {
  const ds = addDataset({ samples: 60000, limit: 8, trainers: [other.id] });
  const empty = (await t.app.inject({ url: `/v1/datasets/${ds}/privacy`, headers: t.auth(other.token) })).json();
  assert.deepEqual(
    { ...empty, accountant: undefined },
    { datasetId: ds, privacyLimit: 8, delta: 1e-5, epsilonSpent: 0, epsilonRemaining: 8, accountant: undefined, events: [] },
  );
  await chargeLedger(t.governance, { kind: 'training', id: 'job-7', principalId: other.id }, [
    { datasetId: ds, events: [{ kind: 'poisson-gaussian', sampleRate: 256 / 60000, noiseMultiplier: 1.1, count: 2343 }] },
  ]);
  const res = await t.app.inject({ url: `/v1/datasets/${ds}/privacy`, headers: t.auth(other.token) });
  assert.equal(res.statusCode, 200);
  const privacy = res.json();
  // PLD's bound for these 2343 steps (about 0.92) is far below RDP's (about 2.0): the ledger takes it.
  assert.ok(privacy.epsilonSpent > 0.5 && privacy.epsilonSpent < 2, String(privacy.epsilonSpent));
  assert.equal(privacy.epsilonRemaining, 8 - privacy.epsilonSpent);
  assert.ok(['pld', 'rdp'].includes(privacy.accountant));
  assert.deepEqual(
    privacy.events.map((e: { source: { id: string } }) => e.source.id),
    ['job-7'],
  );
  assert.equal(privacy.events[0].principalId, undefined, 'who caused a charge is for the owner only');
  assert.equal(
    (await t.app.inject({ url: `/v1/datasets/${ds}/privacy`, headers: t.auth(scientist.token) })).statusCode,
    404,
    'a member the policy does not name',
  );
  assert.equal(
    (await t.app.inject({ url: `/v1/datasets/${ds}/privacy`, headers: t.auth() })).statusCode,
    404,
    'an admin has no right on datasets',
  );
  assert.equal((await t.app.inject({ url: `/v1/datasets/${uuidv7()}/privacy`, headers: t.auth() })).statusCode, 404);
});

test('the server hands every accountant computation of planning and budgets to its PrivacyMath (the pool in production)', async () => {
  const calls: string[] = [];
  const math: PrivacyMath = {
    composedEpsilon: async (events, delta) => {
      calls.push('composedEpsilon');
      return composedEpsilon(events, delta);
    },
    calibrateTrainingNoise: async (options) => {
      calls.push('calibrateTrainingNoise');
      return calibrateTrainingNoise(options);
    },
  };
  const spied = await buildTestApp({ pool: preflightPassingPool, privacyMath: math });
  try {
    const user = spied.principal('spied');
    const modelId = addModel(user.id, spied);
    const ds = addDataset({ samples: 5000, limit: 7.25, trainers: [user.id] }, spied);
    const res = await spied.app.inject({
      method: 'POST',
      url: '/v1/trainings/plan',
      payload: body(modelId, [ds], { epochs: 1.5 }),
      headers: spied.auth(user.token),
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.ok(calls.includes('calibrateTrainingNoise') && calls.includes('composedEpsilon'), calls.join(','));
    calls.length = 0;
    assert.equal((await spied.app.inject({ url: `/v1/datasets/${ds}/privacy`, headers: spied.auth(user.token) })).statusCode, 200);
    assert.deepEqual(calls, [], 'an empty ledger composes nothing');
  } finally {
    await spied.close();
  }
});
