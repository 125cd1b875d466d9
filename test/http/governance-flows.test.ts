// Flow governance end to end over HTTP: eve cannot spend alice's budget in any way; a policy change
// applies to the next request while accepted trainings run on; a trained model leaves only with the
// approvals its datasets' policies ask for; dataset owners, admins and revocation stop jobs; the queue is
// fair between principals and each principal's jobs are limited. The worker pool is a stub whose
// trainings run until told to finish or until cancelled, so each step of a job's life is the test's to
// choose; everything else (routes, policies, ledger, audit) is the server's own code.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { stageBlobFrom } from '../../src/artifacts/blob-store.js';
import type { CreatedPrincipal } from '../../src/governance/principals.js';
import { insertDataset } from '../../src/store/artifacts.js';
import { createTrainingJobs } from '../../src/training/jobs.js';
import { Control, type TrainModelInput, type TrainModelOutput } from '../../src/training/runner.js';
import type { WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, idlePool, inlineMath, insertModelRow, type TestApp, unusedArtifacts } from '../helpers/app.js';

const SAMPLES = 400;

/** Jobs the test told to succeed; the stub's trainings run until then, or until cancelled or stopped. */
const finishing = new Set<string>();
const started: string[] = [];

async function stubTraining(input: TrainModelInput): Promise<TrainModelOutput> {
  started.push(input.jobId);
  const control = new Int32Array(input.control);
  for (;;) {
    const word = Atomics.load(control, 0);
    if (word === Control.CANCEL) return { outcome: 'cancelled', steps: 1, stepsPerSec: null };
    if (word === Control.STOP) return { outcome: 'stopped', steps: 1, stepsPerSec: null };
    if (finishing.has(input.jobId)) {
      const { staged } = await stageBlobFrom(input.blobs, { artifactId: input.resultModelId, kind: 'model' }, (sink) =>
        sink.write(Buffer.from('trained weights')),
      );
      return {
        outcome: 'succeeded',
        steps: input.totalSteps,
        stepsPerSec: null,
        model: { sha256: staged.sha256!, sizeBytes: staged.sizeBytes },
        metric: null,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Datasets whose evaluations the stub holds until released. */
const heldEvaluations = new Map<string, () => void>();

async function stubEvaluation(datasetId: string) {
  if (heldEvaluations.has(datasetId)) await new Promise<void>((resolve) => heldEvaluations.set(datasetId, resolve));
  return { samples: SAMPLES, accuracy: 0.75, meanLoss: 0.4, outputsPerSample: 1 };
}

const stubPool: WorkerPool = {
  ...idlePool,
  size: 2,
  run: ((kind: string, input: never) => {
    if (kind === 'preflight') return Promise.resolve({ samples: 1 });
    if (kind === 'evaluateModel') return stubEvaluation((input as { dataset: { id: string } }).dataset.id);
    if (kind === 'trainModel') return stubTraining(input as TrainModelInput);
    return idlePool.run(kind as never, input);
  }) as WorkerPool['run'],
};

let t: TestApp;
before(async () => {
  t = await buildTestApp({
    pool: stubPool,
    privacyMath: inlineMath,
    training: { checkpointEverySteps: 1000, checkpointEveryMs: 60_000, maxConcurrent: 1, maxJobsPerPrincipal: 3 },
  });
});
after(async () => {
  await t.close();
});

const name = (who: string) => `${who}-${uuidv7()}`;

function addDataset(ownerId: string, policy: object = {}, limit = 20): string {
  const id = uuidv7();
  const summary = {
    sampleCount: SAMPLES,
    inputs: [{ name: 'inputs.0', dtype: 'F32', shape: [SAMPLES, 4] }],
    labels: { name: 'labels', dtype: 'I64', shape: [SAMPLES] },
    labelClasses: [0, 1],
  };
  insertDataset(t.store, {
    id,
    ownerId,
    name: 'd',
    description: '',
    format: 'safetensors',
    sha256: '0'.repeat(64),
    sizeBytes: 1,
    privacyLimit: limit,
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

function addModel(ownerId: string, readers: string[] = []): string {
  const id = uuidv7();
  const check = {
    methods: ['forward'],
    parameters: [{ name: 'fc.weight', shape: [2, 4], dtype: 'F32', requiresGrad: true }],
    buffers: [],
    parameterCount: 8,
    operators: ['aten::linear'],
    inputRanks: ['2'],
  };
  insertModelRow(t.store, { id, ownerId, details: check, readers });
  return id;
}

const body = (modelId: string, datasetIds: string[], extra: Record<string, unknown> = {}) => ({
  modelId,
  datasetIds,
  epochs: 1,
  expectedBatchSize: 40,
  loss: 'cross_entropy',
  optimizer: { type: 'sgd', learningRate: 0.1 },
  privacy: { targetEpsilon: 1, maxGradNorm: 1, accountant: 'rdp' },
  ...extra,
});

const call = (who: CreatedPrincipal | 'admin', method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  t.app.inject({ method, url, headers: t.auth(who === 'admin' ? t.adminToken : who.token), ...(payload ? { payload } : {}) });

const spent = async (datasetId: string, owner: CreatedPrincipal) =>
  (await call(owner, 'GET', `/v1/datasets/${datasetId}/privacy`)).json() as {
    epsilonSpent: number;
    events: { principalId?: string | null }[];
  };

async function waitFor(what: string, predicate: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const statusOf = async (who: CreatedPrincipal | 'admin', id: string) =>
  ((await call(who, 'GET', `/v1/trainings/${id}`)).json() as { status: string }).status;

/** Cancels every job still active, so the next test starts with a free slot. */
async function drain(): Promise<void> {
  const list = (await call('admin', 'GET', '/v1/trainings')).json() as { items: { id: string; status: string }[] };
  for (const job of list.items)
    if (job.status === 'queued' || job.status === 'running') await call('admin', 'POST', `/v1/trainings/${job.id}/cancel`);
}

test("eve cannot spend alice's budget in any way: plan, train, evaluate, non-private or beyond the policy's ε, all refused uncharged", async () => {
  const alice = t.principal(name('alice'));
  const eve = t.principal(name('eve'));
  const bob = t.principal(name('bob'));
  const D = addDataset(alice.id, { trainers: [bob.id], maxEpsilonPerTraining: 2 });
  const evesModel = addModel(eve.id);
  // Not named by the policy: the dataset does not exist for eve.
  for (const [method, url, payload] of [
    ['POST', '/v1/trainings/plan', body(evesModel, [D])],
    ['POST', '/v1/trainings', body(evesModel, [D])],
    ['POST', '/v1/trainings', body(evesModel, [D], { private: false, privacy: undefined })],
    ['POST', '/v1/evaluations', { modelId: evesModel, datasetId: D, loss: 'cross_entropy', epsilon: 1 }],
    ['POST', '/v1/evaluations', { modelId: evesModel, datasetId: D, loss: 'cross_entropy' }],
    ['GET', `/v1/datasets/${D}/privacy`, undefined],
    ['PUT', `/v1/datasets/${D}/policy`, { trainers: 'everyone' }],
  ] as const) {
    const res = await call(eve, method, url, payload as object | undefined);
    assert.equal(res.statusCode, 404, `${method} ${url}: ${res.body}`);
  }
  // bob is named, but within the policy only: ε per training and DP are the owner's to set.
  const bobsModel = addModel(bob.id);
  const tooMuch = await call(
    bob,
    'POST',
    '/v1/trainings',
    body(bobsModel, [D], { privacy: { targetEpsilon: 3, maxGradNorm: 1, accountant: 'rdp' } }),
  );
  assert.equal(tooMuch.statusCode, 403, tooMuch.body);
  assert.match(tooMuch.json().detail, /allows at most ε = 2 per training/);
  assert.equal(tooMuch.json().rule, 'dataset.policy.maxEpsilonPerTraining');
  const exact = await call(bob, 'POST', '/v1/evaluations', { modelId: bobsModel, datasetId: D, loss: 'cross_entropy' });
  assert.equal(exact.statusCode, 403, exact.body);
  assert.equal(exact.json().rule, 'dataset.policy.allowNonPrivate');
  const bigEval = await call(bob, 'POST', '/v1/evaluations', { modelId: bobsModel, datasetId: D, loss: 'cross_entropy', epsilon: 2.5 });
  assert.equal(bigEval.statusCode, 403, bigEval.body);
  // Nothing above was charged; every refusal is in the audit log, which alice may read.
  const ledger = await spent(D, alice);
  assert.equal(ledger.epsilonSpent, 0);
  assert.equal(ledger.events.length, 0);
  const audit = (await call(alice, 'GET', '/v1/audit?limit=1000')).json() as {
    items: { principalId: string | null; outcome: string; target: { id: string } | null }[];
  };
  const refusedOnD = audit.items.filter((e) => e.outcome === 'refused' && e.target?.id === D);
  assert.ok(
    refusedOnD.some((e) => e.principalId === eve.id),
    "eve's refusals are audited for alice",
  );
  assert.ok(
    refusedOnD.some((e) => e.principalId === bob.id),
    "bob's refusals are audited for alice",
  );
});

test('a policy change applies to the next request; a training accepted before it runs on and its charge stands', async () => {
  const alice = t.principal(name('alice'));
  const bob = t.principal(name('bob'));
  const D = addDataset(alice.id, { trainers: [bob.id] });
  const M = addModel(bob.id);
  const accepted = await call(bob, 'POST', '/v1/trainings', body(M, [D]));
  assert.equal(accepted.statusCode, 202, accepted.body);
  const job = accepted.json().id as string;
  await waitFor('the job to run', async () => (await statusOf(bob, job)) === 'running');
  const charged = (await spent(D, alice)).epsilonSpent;
  assert.ok(charged > 0);

  const changed = await call(alice, 'PUT', `/v1/datasets/${D}/policy`, { trainers: [] });
  assert.equal(changed.statusCode, 200, changed.body);
  assert.deepEqual(changed.json().policy.trainers, []);
  // The next request sees the new policy …
  assert.equal((await call(bob, 'POST', '/v1/trainings/plan', body(M, [D]))).statusCode, 404);
  assert.equal((await call(bob, 'GET', `/v1/datasets/${D}`)).statusCode, 404);
  // … the accepted training is still running, and the ledger still holds its whole charge.
  assert.equal(await statusOf(bob, job), 'running');
  assert.equal((await spent(D, alice)).epsilonSpent, charged);
  // The owner can stop it: the charge stands, the audit names who stopped it.
  const stopped = await call(alice, 'POST', `/v1/trainings/${job}/cancel`);
  assert.equal(stopped.statusCode, 200, stopped.body);
  assert.equal(stopped.json().status, 'cancelled');
  assert.deepEqual(stopped.json().metrics, [], 'the owner of the data does not see what the training released to its author');
  assert.equal((await spent(D, alice)).epsilonSpent, charged);
  const audit = (await call(alice, 'GET', '/v1/audit?limit=1000')).json() as {
    items: { principalId: string | null; action: string; target: { id: string } | null; details: { before?: unknown } }[];
  };
  assert.ok(audit.items.some((e) => e.action === 'training.cancel' && e.target?.id === job && e.principalId === alice.id));
  assert.ok(audit.items.some((e) => e.action === 'dataset.setPolicy' && e.target?.id === D && e.details.before !== undefined));
  await drain();
});

test("the ledger names the principal who caused each charge, for the dataset's owner only", async () => {
  const alice = t.principal(name('alice'));
  const bob = t.principal(name('bob'));
  const D = addDataset(alice.id, { trainers: [bob.id] });
  const M = addModel(bob.id);
  const res = await call(bob, 'POST', '/v1/evaluations', { modelId: M, datasetId: D, loss: 'cross_entropy', epsilon: 0.5 });
  assert.equal(res.statusCode, 200, res.body);
  const owners = await spent(D, alice);
  assert.equal(owners.events.length, 1);
  assert.equal(owners.events[0]!.principalId, bob.id);
  const bobs = await spent(D, bob);
  assert.equal(bobs.events.length, 1);
  assert.equal(bobs.events[0]!.principalId, undefined);
});

test('a trained model leaves only once every approval its datasets ask for is given; a rejection is final', async () => {
  const alice = t.principal(name('alice')); // release: approval
  const carol = t.principal(name('carol')); // release: trainer
  const bob = t.principal(name('bob'));
  const D = addDataset(alice.id, { trainers: [bob.id], release: 'approval' });
  const D2 = addDataset(carol.id, { trainers: [bob.id] });
  const M = addModel(bob.id);

  async function train(): Promise<string> {
    const res = await call(bob, 'POST', '/v1/trainings', body(M, [D, D2]));
    assert.equal(res.statusCode, 202, res.body);
    const job = res.json().id as string;
    finishing.add(job);
    await waitFor('the job to succeed', async () => (await statusOf(bob, job)) === 'succeeded');
    return (await call(bob, 'GET', `/v1/trainings/${job}`)).json().resultModelId as string;
  }

  const T = await train();
  const model = (await call(bob, 'GET', `/v1/models/${T}`)).json();
  assert.equal(model.release, 'pending');
  assert.deepEqual([...model.coOwnerIds].sort(), [alice.id, carol.id].sort());
  const blocked = await call(bob, 'GET', `/v1/models/${T}/content`);
  assert.equal(blocked.statusCode, 403);
  assert.match(blocked.json().detail, new RegExp(`awaits the release approval of ${alice.id}`));
  // The co-owners see the model and its lineage, not its weights.
  assert.equal((await call(alice, 'GET', `/v1/models/${T}`)).json().lineage.trainingId.length, 36);
  assert.equal((await call(carol, 'GET', `/v1/models/${T}/content`)).statusCode, 403);
  // Unreleased: no further training from it, DP evaluations only.
  assert.equal((await call(bob, 'POST', '/v1/trainings/plan', body(T, [D2]))).statusCode, 403);
  const exactEval = await call(bob, 'POST', '/v1/evaluations', { modelId: T, datasetId: D2, loss: 'cross_entropy' });
  assert.equal(exactEval.statusCode, 403, exactEval.body);
  assert.equal(exactEval.json().rule, 'model.release.pending');
  // carol's policy asks for nothing: she may not decide.
  assert.equal((await call(carol, 'POST', `/v1/models/${T}/approvals`, { decision: 'approve' })).statusCode, 403);
  const pending = (await call(carol, 'GET', `/v1/models/${T}/approvals`)).json();
  assert.deepEqual(
    pending.approvals.map((a: { approverId: string; decision: unknown; datasetIds: string[] }) => [a.approverId, a.decision, a.datasetIds]),
    [[alice.id, null, [D]]],
  );

  const approved = await call(alice, 'POST', `/v1/models/${T}/approvals`, { decision: 'approve', reason: 'checked the lineage' });
  assert.equal(approved.statusCode, 200, approved.body);
  assert.equal(approved.json().release, 'released');
  assert.equal((await call(alice, 'POST', `/v1/models/${T}/approvals`, { decision: 'reject' })).statusCode, 409, 'a decision is final');
  const download = await call(bob, 'GET', `/v1/models/${T}/content`);
  assert.equal(download.statusCode, 200);
  assert.equal(download.body, 'trained weights');

  const U = await train();
  const rejected = await call(alice, 'POST', `/v1/models/${U}/approvals`, { decision: 'reject', reason: 'too close to the data' });
  assert.equal(rejected.json().release, 'rejected');
  const refused = await call(bob, 'GET', `/v1/models/${U}/content`);
  assert.equal(refused.statusCode, 403);
  assert.match(refused.json().detail, /rejected/);
  assert.equal((await call(alice, 'POST', `/v1/models/${U}/approvals`, { decision: 'approve' })).statusCode, 409);

  // A model whose datasets ask for no approval: deciding is a conflict, and it downloads at once.
  const noAsk = addDataset(carol.id, { trainers: [bob.id] });
  const V = await (async () => {
    const res = await call(bob, 'POST', '/v1/trainings', body(M, [noAsk]));
    const job = res.json().id as string;
    finishing.add(job);
    await waitFor('the job to succeed', async () => (await statusOf(bob, job)) === 'succeeded');
    return (await call(bob, 'GET', `/v1/trainings/${job}`)).json().resultModelId as string;
  })();
  assert.equal((await call(carol, 'POST', `/v1/models/${V}/approvals`, { decision: 'approve' })).statusCode, 409);
  assert.equal((await call(bob, 'GET', `/v1/models/${V}/content`)).statusCode, 200);
});

test('an admin may stop any job but sees no results and owns nothing; revoking a principal cancels its jobs at once', async () => {
  const alice = t.principal(name('alice'));
  const bob = t.principal(name('bob'));
  const D = addDataset(alice.id, { trainers: [bob.id] });
  const M = addModel(bob.id);
  // The admin sees neither the dataset nor the model.
  assert.equal((await call('admin', 'GET', `/v1/datasets/${D}`)).statusCode, 404);
  assert.equal((await call('admin', 'GET', `/v1/models/${M}`)).statusCode, 404);
  assert.equal((await call('admin', 'POST', '/v1/trainings/plan', body(M, [D]))).statusCode, 404);

  const first = (await call(bob, 'POST', '/v1/trainings', body(M, [D]))).json().id as string;
  const second = (await call(bob, 'POST', '/v1/trainings', body(M, [D]))).json().id as string;
  await waitFor('the first job to run', async () => (await statusOf(bob, first)) === 'running');
  assert.equal(await statusOf(bob, second), 'queued');
  const revoked = await call('admin', 'DELETE', `/v1/principals/${bob.id}`);
  assert.equal(revoked.statusCode, 204);
  // Both ended before the DELETE answered; the owner of the data sees them cancelled.
  assert.equal(await statusOf(alice, first), 'cancelled');
  assert.equal(await statusOf(alice, second), 'cancelled');
  await drain();
});

test("the queue is fair between principals, and one principal's queued and running jobs are limited", async () => {
  const alice = t.principal(name('alice'));
  const bob = t.principal(name('bob'));
  const carol = t.principal(name('carol'));
  const D = addDataset(alice.id, { trainers: 'everyone' }, 100);
  const bobs = addModel(bob.id);
  const carols = addModel(carol.id);
  const b1 = (await call(bob, 'POST', '/v1/trainings', body(bobs, [D]))).json().id as string;
  await waitFor("bob's first job to run", async () => (await statusOf(bob, b1)) === 'running');
  const b2 = (await call(bob, 'POST', '/v1/trainings', body(bobs, [D]))).json().id as string;
  const b3 = (await call(bob, 'POST', '/v1/trainings', body(bobs, [D]))).json().id as string;
  const limited = await call(bob, 'POST', '/v1/trainings', body(bobs, [D]));
  assert.equal(limited.statusCode, 429, limited.body);
  assert.equal(limited.json().limit, 3);
  const c1 = (await call(carol, 'POST', '/v1/trainings', body(carols, [D]))).json().id as string;

  const before = started.length;
  for (const job of [b1, c1, b2]) {
    finishing.add(job);
    await waitFor(`${job} to succeed`, async () => (await statusOf('admin', job)) === 'succeeded');
  }
  // Carol queued after bob's second and third, but ran before them: the queue takes principals in turn.
  assert.deepEqual(started.slice(before, before + 2), [c1, b2]);
  finishing.add(b3);
  await waitFor("bob's third job to succeed", async () => (await statusOf(bob, b3)) === 'succeeded');
});

test('a bad policy is refused naming the field, and changes nothing', async () => {
  const alice = t.principal(name('alice'));
  const D = addDataset(alice.id);
  const M = addModel(alice.id);
  const unknown = await call(alice, 'PUT', `/v1/datasets/${D}/policy`, { trainers: [], owners: [] });
  assert.equal(unknown.statusCode, 400, unknown.body);
  assert.match(unknown.body, /owners/);
  const wrongType = await call(alice, 'PUT', `/v1/datasets/${D}/policy`, { release: 'whenever' });
  assert.equal(wrongType.statusCode, 400, wrongType.body);
  assert.match(wrongType.body, /release/);
  const stranger = uuidv7();
  const notAPrincipal = await call(alice, 'PUT', `/v1/datasets/${D}/policy`, { trainers: [stranger] });
  assert.equal(notAPrincipal.statusCode, 422, notAPrincipal.body);
  assert.match(notAPrincipal.json().detail, new RegExp(stranger));
  const readers = await call(alice, 'PUT', `/v1/models/${M}/policy`, { readers: [stranger] });
  assert.equal(readers.statusCode, 422, readers.body);
  // The policies are as they were.
  assert.deepEqual((await call(alice, 'GET', `/v1/datasets/${D}`)).json().policy, {
    trainers: [],
    allowEvaluation: true,
    allowNonPrivate: false,
    release: 'trainer',
  });
  assert.deepEqual((await call(alice, 'GET', `/v1/models/${M}`)).json().policy, { readers: [] });
});

test('a start after a crash cancels the jobs of principals revoked meanwhile instead of resuming them', async () => {
  const alice = t.principal(name('alice'));
  const bob = t.principal(name('bob'));
  const D = addDataset(alice.id, { trainers: [bob.id] });
  const M = addModel(bob.id);
  const job = (await call(bob, 'POST', '/v1/trainings', body(M, [D]))).json().id as string;
  await waitFor('the job to run', async () => (await statusOf(bob, job)) === 'running');
  // As if the process died here: the row says running; meanwhile bob is revoked without this process.
  t.store.db.prepare('UPDATE principals SET revoked_at = ? WHERE id = ?').run(new Date().toISOString(), bob.id);
  const restarted = createTrainingJobs(
    {
      store: t.store,
      blobs: t.blobs,
      pool: stubPool,
      sandbox: { timeoutMs: 1000, memoryBytes: 1 << 30 },
      audit: t.audit,
      certificates: unusedArtifacts.certificates,
    },
    { checkpointEverySteps: 1000, checkpointEveryMs: 60_000, maxConcurrent: 1 },
  );
  restarted.start();
  assert.equal(await statusOf(alice, job), 'cancelled');
  await restarted.close();
  await drain();
});

test('the owner of the data stops an evaluation in flight: nothing is released, the charge stands', async () => {
  const alice = t.principal(name('alice'));
  const bob = t.principal(name('bob'));
  const eve = t.principal(name('eve'));
  const D = addDataset(alice.id, { trainers: [bob.id] });
  const M = addModel(bob.id);
  heldEvaluations.set(D, () => undefined);
  const pending = call(bob, 'POST', '/v1/evaluations', { modelId: M, datasetId: D, loss: 'cross_entropy', epsilon: 0.5 });
  let runId = '';
  await waitFor('the evaluation to be in flight', async () => {
    const items = (await call(alice, 'GET', '/v1/evaluations')).json().items as { id: string; datasetId: string; ownerId: string }[];
    runId = items.find((e) => e.datasetId === D)?.id ?? '';
    return runId !== '';
  });
  assert.deepEqual(
    (await call(eve, 'GET', '/v1/evaluations')).json().items.filter((e: { datasetId: string }) => e.datasetId === D),
    [],
  );
  assert.equal((await call(eve, 'POST', `/v1/evaluations/${runId}/cancel`)).statusCode, 404);
  const cancelled = await call(alice, 'POST', `/v1/evaluations/${runId}/cancel`);
  assert.equal(cancelled.statusCode, 200, cancelled.body);
  assert.equal(cancelled.json().status, 'cancelled');
  heldEvaluations.get(D)!();
  const answer = await pending;
  assert.equal(answer.statusCode, 409, answer.body);
  assert.equal(answer.json().type, 'urn:bastion:problem:evaluation-cancelled');
  assert.doesNotMatch(answer.body, /accuracy/);
  assert.ok((await spent(D, alice)).epsilonSpent > 0, 'the charge stands');
  heldEvaluations.delete(D);
});

test('a refusal in the audit log tells its actor no more than the 404 did: an unseen dataset reads like no dataset', async () => {
  const alice = t.principal(name('alice'));
  const eve = t.principal(name('eve'));
  const D = addDataset(alice.id);
  const nothing = uuidv7();
  for (const id of [D, nothing]) assert.equal((await call(eve, 'GET', `/v1/datasets/${id}`)).statusCode, 404);
  const entries = (await call(eve, 'GET', '/v1/audit?limit=1000')).json().items as {
    action: string;
    outcome: string;
    target: { id: string };
    details: unknown;
  }[];
  const about = (id: string) =>
    entries.filter((e) => e.target?.id === id).map(({ action, outcome, details }) => ({ action, outcome, details }));
  assert.equal(about(D).length, 1);
  assert.deepEqual(about(D), about(nothing));
  // The owner sees that someone tried.
  const owners = (await call(alice, 'GET', '/v1/audit?limit=1000')).json().items as {
    principalId: string;
    outcome: string;
    target: { id: string };
  }[];
  assert.ok(owners.some((e) => e.principalId === eve.id && e.outcome === 'refused' && e.target.id === D));
});
