// Every /v1 route against every kind of caller, from one table: who may do what (src/governance/
// authorize.ts). Each cell runs in a fresh world of principals and artifacts, so a cell that deletes or
// cancels cannot change another's answer. A route served without a row here fails the last test.
//
// The world (per cell):
//   alice  owns dataset D — policy: trainers [bob], release "approval"
//   carol  owns dataset D2 — policy: trainers [bob], release "trainer"
//   bob    data scientist: owns model M (readers [dave]) and model M2; trained T from M on D and D2
//          (training J0, succeeded; T awaits alice's approval); training J (queued) runs M2 on D2
//   dave   may use model M (a reader), nothing else
//   eve    another member, named by nothing
//   admin  the operator
// So for datasets alice is the owner and bob the permitted trainer; for models and trainings bob is the
// owner, alice and carol the co-owners (owners of the data), dave the permitted reader.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { parse } from 'yaml';
import { OPENAPI_FILE } from '../../scripts/openapi.js';
import { stageBlob } from '../../src/artifacts/blob-store.js';
import { encodeSafetensors } from '../../src/artifacts/formats/safetensors.js';
import type { CreatedPrincipal } from '../../src/governance/principals.js';
import { insertApproval } from '../../src/store/approvals.js';
import { insertDataset } from '../../src/store/artifacts.js';
import { insertTraining, type TrainingRow } from '../../src/store/trainings.js';
import type { WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, idlePool, inlineMath, insertModelRow, type TestApp, unusedArtifacts } from '../helpers/app.js';
import { multipartForm } from '../helpers/multipart.js';
import { testdataPath } from '../helpers/testdata.js';

/** Datasets whose evaluations the stub holds until the test lets them go. */
const held = new Map<string, () => void>();

/**
 * Answers pre-flights and evaluations as a model that gets everything right would (an evaluation on a
 * held dataset only once released); nothing else.
 */
const stubPool: WorkerPool = {
  ...idlePool,
  run: (async (kind: string, input: { labels?: { shape: number[] }; dataset?: { id: string } }) => {
    if (kind === 'preflight') return { samples: input.labels!.shape[0] };
    if (kind === 'evaluateModel') {
      if (held.has(input.dataset!.id)) await new Promise<void>((resolve) => held.set(input.dataset!.id, resolve));
      return { samples: SAMPLES, accuracy: 1, meanLoss: 0.1, outputsPerSample: 1 };
    }
    return idlePool.run(kind as never, input as never);
  }) as WorkerPool['run'],
};

const SAMPLES = 400;
const callers = ['anonymous', 'alice', 'bob', 'carol', 'dave', 'eve', 'admin'] as const;
type Caller = (typeof callers)[number];

interface World {
  p: Record<Exclude<Caller, 'anonymous' | 'admin'>, CreatedPrincipal> & { spare: CreatedPrincipal };
  /** An evaluation in flight: bob's of M on carol's D2 (started by the cell that needs it). */
  E?: { id: string; done: Promise<unknown>; release(): void };
  D: string;
  D2: string;
  M: string;
  M2: string;
  T: string;
  J0: string;
  J: string;
}

interface Row {
  /** The request, in the world of this cell. */
  request(
    w: World,
  ): Promise<{ method: 'GET' | 'POST' | 'PUT' | 'DELETE'; url: string; payload?: unknown; headers?: Record<string, string> }>;
  expect: Record<Caller, number>;
}

let t: TestApp;
let modelFile: Buffer;
/** A plan as the planner writes it (the first test computes it once), stored with every inserted training. */
let planJson = '';

before(async () => {
  t = await buildTestApp({ pool: stubPool, privacyMath: inlineMath });
  modelFile = fs.readFileSync(testdataPath('torchscript', 'torch-1.13', 'mlp.script.pt'));
});
after(() => t.close());

const checkOf = (inputRanks: string[]) => ({
  methods: ['forward'],
  parameters: [{ name: 'fc.weight', shape: [3, 4], dtype: 'F32', requiresGrad: true }],
  buffers: [],
  parameterCount: 12,
  operators: ['aten::linear'],
  inputRanks,
});

async function sealed(id: string, kind: 'model' | 'dataset', bytes: Uint8Array): Promise<void> {
  const staged = await stageBlob(
    t.blobs,
    { artifactId: id, kind },
    (async function* () {
      yield bytes;
    })(),
  );
  await staged.commit();
}

function datasetFile(): Buffer {
  return encodeSafetensors([
    { name: 'inputs', dtype: 'F32', shape: [SAMPLES, 4], data: new Uint8Array(new Float32Array(SAMPLES * 4).fill(0.25).buffer) },
    { name: 'labels', dtype: 'I64', shape: [SAMPLES], data: new Uint8Array(new BigInt64Array(SAMPLES).fill(1n).buffer) },
  ]);
}

async function addDataset(ownerId: string, policy: object): Promise<string> {
  const id = uuidv7();
  const summary = {
    sampleCount: SAMPLES,
    inputs: [{ name: 'inputs.0', dtype: 'F32', shape: [SAMPLES, 4] }],
    labels: { name: 'labels', dtype: 'I64', shape: [SAMPLES] },
    labelClasses: [0, 1, 2],
  };
  const file = datasetFile();
  await sealed(id, 'dataset', file);
  insertDataset(t.store, {
    id,
    ownerId,
    name: 'd',
    description: '',
    format: 'safetensors',
    sha256: '0'.repeat(64),
    sizeBytes: file.length,
    privacyLimit: 50,
    delta: 1e-5,
    sampleCount: SAMPLES,
    details: JSON.stringify({
      summary,
      layout: { blob: 'dataset', tensors: [{ name: 'labels', dtype: 'I64', shape: [SAMPLES], offsetBytes: 0, sizeBytes: SAMPLES * 8 }] },
    }),
    policy: JSON.stringify({ trainers: [], allowEvaluation: true, allowNonPrivate: false, release: 'trainer', ...policy }),
    commitmentSalt: '0'.repeat(64),
    createdAt: new Date().toISOString(),
  });
  return id;
}

async function addModel(
  ownerId: string,
  readers: string[],
  extra: { lineage?: object; coOwnerIds?: string[]; certificate?: object } = {},
  id = uuidv7(),
): Promise<string> {
  await sealed(id, 'model', Buffer.from('not parsed: only downloaded'));
  insertModelRow(t.store, { id, ownerId, details: { ...checkOf(['2']), ...extra }, readers, sizeBytes: 27 });
  return id;
}

function addTraining(
  ownerId: string,
  modelId: string,
  datasetIds: string[],
  status: TrainingRow['status'],
  resultModelId: string | null = null,
): string {
  const id = uuidv7();
  const now = new Date().toISOString();
  insertTraining(t.store, {
    id,
    ownerId,
    modelId,
    datasetIds: JSON.stringify(datasetIds),
    status,
    request: JSON.stringify(trainingBody(modelId, datasetIds)),
    plan: planJson,
    step: status === 'succeeded' ? 10 : 0,
    checkpointStep: null,
    samplesPerSec: null,
    error: null,
    resultModelId,
    metrics: '[{"epoch":1,"step":10,"steps":10,"meanLoss":0.5,"noiseStd":0.1}]',
    dropped: null,
    createdAt: now,
    startedAt: status === 'queued' ? null : now,
    finishedAt: status === 'succeeded' ? now : null,
  });
  return id;
}

const trainingBody = (modelId: string, datasetIds: string[]) => ({
  modelId,
  datasetIds,
  epochs: 1,
  expectedBatchSize: 40,
  loss: 'cross_entropy',
  optimizer: { type: 'sgd', learningRate: 0.1 },
  privacy: { targetEpsilon: 1, maxGradNorm: 1, accountant: 'rdp' },
});

async function buildWorld(): Promise<World> {
  const name = (who: string) => `${who}-${uuidv7()}`;
  const p = {
    alice: t.principal(name('alice')),
    bob: t.principal(name('bob')),
    carol: t.principal(name('carol')),
    dave: t.principal(name('dave')),
    eve: t.principal(name('eve')),
    spare: t.principal(name('spare')),
  };
  const D = await addDataset(p.alice.id, { trainers: [p.bob.id], release: 'approval' });
  const D2 = await addDataset(p.carol.id, { trainers: [p.bob.id] });
  const M = await addModel(p.bob.id, [p.dave.id]);
  const M2 = await addModel(p.bob.id, []);
  const J0 = uuidv7();
  const lineage = {
    trainingId: J0,
    sourceModelId: M,
    datasetIds: [D, D2],
    private: true,
    noiseMultiplier: 5,
    sampleRate: 0.1,
    steps: 10,
    epochs: 1,
    expectedBatchSize: 40,
    epsilon: 1,
    delta: 1e-5,
    accountant: 'rdp',
    maxGradNorm: 1,
    clipping: 'flat',
    loss: 'cross_entropy',
    optimizer: { type: 'sgd', learningRate: 0.1 },
    codeVersion: '0',
  };
  const T0 = uuidv7();
  const certificate = unusedArtifacts.certificates.sign({
    modelId: T0,
    trainingId: J0,
    modelSha256: '0'.repeat(64),
    sourceModelId: M,
    sourceModelSha256: '0'.repeat(64),
    datasets: [
      { id: D, commitment: '1'.repeat(64) },
      { id: D2, commitment: '2'.repeat(64) },
    ],
    private: true,
    noiseMultiplier: 5,
    sampleRate: 0.1,
    steps: 10,
    epsilon: 1,
    delta: 1e-5,
    accountant: 'rdp',
    maxGradNorm: 1,
    clipping: 'flat',
    codeVersion: '0',
    finishedAt: new Date().toISOString(),
  });
  const T = await addModel(p.bob.id, [], { lineage, coOwnerIds: [p.alice.id, p.carol.id], certificate }, T0);
  insertApproval(t.store, {
    modelId: T,
    approverId: p.alice.id,
    datasetIds: JSON.stringify([D]),
    decision: null,
    reason: null,
    decidedAt: null,
  });
  if (planJson === '') return { p, D, D2, M, M2, T, J0, J: '' };
  const j0 = addTraining(p.bob.id, M, [D, D2], 'succeeded', T);
  t.store.db.prepare('UPDATE trainings SET id = ? WHERE id = ?').run(J0, j0);
  const J = addTraining(p.bob.id, M2, [D2], 'queued');
  return { p, D, D2, M, M2, T, J0, J };
}

/** Starts bob's evaluation of M on D2, held in the pool until released, and waits until it is in flight. */
async function evaluationInFlight(w: World): Promise<string> {
  held.set(w.D2, () => undefined);
  const done = t.app.inject({
    method: 'POST',
    url: '/v1/evaluations',
    payload: { modelId: w.M, datasetId: w.D2, loss: 'cross_entropy', epsilon: 1 },
    headers: t.auth(w.p.bob.token),
  });
  for (;;) {
    const list = (await t.app.inject({ method: 'GET', url: '/v1/evaluations', headers: t.auth(w.p.bob.token) })).json() as {
      items: { id: string; datasetId: string }[];
    };
    const run = list.items.find((e) => e.datasetId === w.D2);
    if (run) {
      w.E = { id: run.id, done, release: () => held.get(w.D2)?.() };
      return run.id;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function headersOf(w: World, caller: Caller): Record<string, string> {
  if (caller === 'anonymous') return {};
  return t.auth(caller === 'admin' ? t.adminToken : w.p[caller].token);
}

const json = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) => async () => ({
  method,
  url,
  ...(payload !== undefined ? { payload } : {}),
});

// Expected status per caller:                 anonymous alice bob carol dave eve admin
const s = (
  anonymous: number,
  alice: number,
  bob: number,
  carol: number,
  dave: number,
  eve: number,
  admin: number,
): Record<Caller, number> => ({
  anonymous,
  alice,
  bob,
  carol,
  dave,
  eve,
  admin,
});

const table: Record<string, Row> = {
  'POST /v1/datasets': {
    request: async () => {
      const form = await multipartForm({ name: 'upload', privacyLimit: '1' }, [{ content: datasetFile() }]);
      return { method: 'POST', url: '/v1/datasets', payload: form.payload, headers: form.headers };
    },
    expect: s(401, 201, 201, 201, 201, 201, 201),
  },
  'GET /v1/datasets': { request: json('GET', '/v1/datasets'), expect: s(401, 200, 200, 200, 200, 200, 200) },
  'GET /v1/datasets/{id}': { request: async (w) => json('GET', `/v1/datasets/${w.D}`)(), expect: s(401, 200, 200, 404, 404, 404, 404) },
  'DELETE /v1/datasets/{id}': {
    request: async (w) => json('DELETE', `/v1/datasets/${w.D}`)(),
    expect: s(401, 204, 403, 404, 404, 404, 404),
  },
  'GET /v1/datasets/{id}/privacy': {
    request: async (w) => json('GET', `/v1/datasets/${w.D}/privacy`)(),
    expect: s(401, 200, 200, 404, 404, 404, 404),
  },
  'GET /v1/datasets/{id}/content': {
    request: async (w) => json('GET', `/v1/datasets/${w.D}/content`)(),
    expect: s(401, 200, 403, 404, 404, 404, 404),
  },
  'PUT /v1/datasets/{id}/policy': {
    request: async (w) => json('PUT', `/v1/datasets/${w.D}/policy`, { trainers: [w.p.bob.id, w.p.dave.id], maxEpsilonPerTraining: 5 })(),
    expect: s(401, 200, 403, 404, 404, 404, 404),
  },
  'POST /v1/models': {
    request: async () => {
      const form = await multipartForm({ name: 'mlp' }, [{ content: modelFile }]);
      return { method: 'POST', url: '/v1/models', payload: form.payload, headers: form.headers };
    },
    expect: s(401, 201, 201, 201, 201, 201, 201),
  },
  'GET /v1/models': { request: json('GET', '/v1/models'), expect: s(401, 200, 200, 200, 200, 200, 200) },
  // A trained model: its owner and the owners of its data see it; a reader of the source model does not.
  'GET /v1/models/{id}': { request: async (w) => json('GET', `/v1/models/${w.T}`)(), expect: s(401, 200, 200, 200, 404, 404, 404) },
  'DELETE /v1/models/{id}': { request: async (w) => json('DELETE', `/v1/models/${w.M}`)(), expect: s(401, 404, 204, 404, 403, 404, 404) },
  // T awaits alice's approval: nobody downloads it yet, not even its owner.
  'GET /v1/models/{id}/content': {
    request: async (w) => json('GET', `/v1/models/${w.T}/content`)(),
    expect: s(401, 403, 403, 403, 404, 404, 404),
  },
  'PUT /v1/models/{id}/policy': {
    request: async (w) => json('PUT', `/v1/models/${w.M}/policy`, { readers: [w.p.eve.id] })(),
    expect: s(401, 404, 200, 404, 403, 404, 404),
  },
  // The certificate states hashes and DP parameters: whoever sees the model sees it, before release too.
  'GET /v1/models/{id}/certificate': {
    request: async (w) => json('GET', `/v1/models/${w.T}/certificate`)(),
    expect: s(401, 200, 200, 200, 404, 404, 404),
  },
  'GET /v1/models/{id}/approvals': {
    request: async (w) => json('GET', `/v1/models/${w.T}/approvals`)(),
    expect: s(401, 200, 200, 200, 404, 404, 404),
  },
  // Only alice's policy asks for approval: carol (a co-owner) and bob (the owner) see T but may not decide.
  'POST /v1/models/{id}/approvals': {
    request: async (w) => json('POST', `/v1/models/${w.T}/approvals`, { decision: 'approve' })(),
    expect: s(401, 200, 403, 403, 404, 404, 404),
  },
  'POST /v1/principals': { request: json('POST', '/v1/principals', { name: 'new-party' }), expect: s(401, 403, 403, 403, 403, 403, 201) },
  'GET /v1/principals': { request: json('GET', '/v1/principals'), expect: s(401, 403, 403, 403, 403, 403, 200) },
  'GET /v1/principals/{id}': {
    request: async (w) => json('GET', `/v1/principals/${w.p.eve.id}`)(),
    expect: s(401, 403, 403, 403, 403, 403, 200),
  },
  'DELETE /v1/principals/{id}': {
    request: async (w) => json('DELETE', `/v1/principals/${w.p.spare.id}`)(),
    expect: s(401, 403, 403, 403, 403, 403, 204),
  },
  'GET /v1/whoami': { request: json('GET', '/v1/whoami'), expect: s(401, 200, 200, 200, 200, 200, 200) },
  // M on D: bob may use both; dave may use M but not see D; alice sees D but not M.
  'POST /v1/trainings/plan': {
    request: async (w) => json('POST', '/v1/trainings/plan', trainingBody(w.M, [w.D]))(),
    expect: s(401, 404, 200, 404, 404, 404, 404),
  },
  'POST /v1/trainings': {
    request: async (w) => json('POST', '/v1/trainings', trainingBody(w.M, [w.D]))(),
    expect: s(401, 404, 202, 404, 404, 404, 404),
  },
  'GET /v1/trainings': { request: json('GET', '/v1/trainings'), expect: s(401, 200, 200, 200, 200, 200, 200) },
  // J reads carol's D2 only: carol and the operator may see and stop it; alice may not.
  'GET /v1/trainings/{id}': { request: async (w) => json('GET', `/v1/trainings/${w.J}`)(), expect: s(401, 404, 200, 200, 404, 404, 200) },
  'POST /v1/trainings/{id}/cancel': {
    request: async (w) => json('POST', `/v1/trainings/${w.J}/cancel`)(),
    expect: s(401, 404, 200, 200, 404, 404, 200),
  },
  // J0 (finished) read D and D2: the stream ends at once.
  'GET /v1/trainings/{id}/events': {
    request: async (w) => json('GET', `/v1/trainings/${w.J0}/events`)(),
    expect: s(401, 200, 200, 200, 404, 404, 200),
  },
  'POST /v1/evaluations': {
    request: async (w) => json('POST', '/v1/evaluations', { modelId: w.M, datasetId: w.D, loss: 'cross_entropy', epsilon: 1 })(),
    expect: s(401, 404, 200, 404, 404, 404, 404),
  },
  'GET /v1/evaluations': { request: json('GET', '/v1/evaluations'), expect: s(401, 200, 200, 200, 200, 200, 200) },
  // bob's evaluation in flight on carol's D2: bob, carol and the operator may stop it.
  'POST /v1/evaluations/{id}/cancel': {
    request: async (w) => json('POST', `/v1/evaluations/${await evaluationInFlight(w)}/cancel`)(),
    expect: s(401, 404, 200, 200, 404, 404, 200),
  },
  // Public (no token); this server runs outside an enclave, so there is no quote for anyone.
  'GET /v1/attestation': { request: json('GET', `/v1/attestation?nonce=${'ab'.repeat(16)}`), expect: s(503, 503, 503, 503, 503, 503, 503) },
  'GET /v1/audit': { request: json('GET', '/v1/audit'), expect: s(401, 200, 200, 200, 200, 200, 200) },
};

test('every route answers every kind of caller as the table says', async () => {
  // One plan, computed once, serves as the stored plan of the trainings inserted into each world.
  const w0 = await buildWorld();
  const planned = await t.app.inject({
    method: 'POST',
    url: '/v1/trainings/plan',
    payload: trainingBody(w0.M, [w0.D]),
    headers: t.auth(w0.p.bob.token),
  });
  assert.equal(planned.statusCode, 200, planned.body);
  planJson = JSON.stringify({
    ...planned.json(),
    events: [{ kind: 'poisson-gaussian', sampleRate: 0.1, noiseMultiplier: 5, count: 10 }],
    clipGroups: null,
  });

  const wrong: string[] = [];
  for (const [route, row] of Object.entries(table)) {
    for (const caller of callers) {
      const w = await buildWorld();
      const request = await row.request(w);
      const res = await t.app.inject({
        method: request.method,
        url: request.url,
        ...(request.payload !== undefined ? { payload: request.payload as string } : {}),
        headers: { ...request.headers, ...headersOf(w, caller) },
      });
      if (w.E) {
        w.E.release();
        await w.E.done;
        held.delete(w.D2);
      }
      if (res.statusCode !== row.expect[caller])
        wrong.push(`${route} as ${caller}: ${res.statusCode}, expected ${row.expect[caller]} (${res.body.slice(0, 200)})`);
      else if (res.statusCode === 403) {
        const problem = res.json() as { detail?: string; type: string };
        if (!problem.detail || problem.type !== 'urn:bastion:problem:forbidden')
          wrong.push(`${route} as ${caller}: a 403 must name the rule that refused`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

test('the table has a row for every /v1 operation in openapi.yaml, and no other', () => {
  const document = parse(fs.readFileSync(OPENAPI_FILE, 'utf8')) as { paths: Record<string, Record<string, unknown>> };
  const operations = Object.entries(document.paths)
    .filter(([path]) => path.startsWith('/v1/'))
    .flatMap(([path, item]) => ['get', 'post', 'put', 'patch', 'delete'].filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${path}`));
  assert.deepEqual(Object.keys(table).sort(), operations.sort());
});
