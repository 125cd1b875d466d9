// The privacy ledger: spent ε is the composition of all of a dataset's events (not a sum of ε's),
// charges are all or none across datasets, and concurrent charges never overdraw a budget.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { v7 as uuidv7 } from 'uuid';
import { BastionError } from '../../src/errors.js';
import { type AuditLog, openAuditLog } from '../../src/governance/audit.js';
import { authenticate, bootstrapAdmin, createPrincipal, type Principal } from '../../src/governance/principals.js';
import { createPldAccountant, createRdpAccountant, type PrivacyEvent } from '../../src/privacy/accountant.js';
import { chargeLedger, coalesce, composedEpsilon, datasetPrivacy, previewCharges } from '../../src/privacy/ledger.js';
import { insertDataset } from '../../src/store/artifacts.js';
import { openStore, type Store } from '../../src/store/db.js';

interface Ledger {
  store: Store;
  audit: AuditLog;
  dataDir: string;
  admin: Principal;
  /** The principal whose requests the tests' charges are. */
  scientist: Principal;
}

function newStore(): Ledger {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-ledger-'));
  const store = openStore(dataDir);
  const audit = openAuditLog(store, Buffer.alloc(32), { highWaterFile: null });
  const admin = authenticate(store, fs.readFileSync(bootstrapAdmin({ store, audit }, dataDir)!, 'utf8').trim())!;
  const scientist = createPrincipal({ store, audit }, admin, { name: 'data-scientist', role: 'member' });
  return { store, audit, dataDir, admin, scientist };
}

function addDataset({ store, audit, admin }: Ledger, privacyLimit: number, delta = 1e-5): string {
  const owner = createPrincipal({ store, audit }, admin, { name: `owner-${uuidv7()}`, role: 'member' });
  const id = uuidv7();
  insertDataset(store, {
    id,
    ownerId: owner.id,
    name: 'd',
    description: '',
    format: 'csv',
    sha256: '0'.repeat(64),
    sizeBytes: 1,
    privacyLimit,
    delta,
    sampleCount: 60000,
    details: '{}',
    policy: '{}',
    commitmentSalt: '0'.repeat(64),
    createdAt: new Date().toISOString(),
  });
  return id;
}

const training = (sampleRate: number, noiseMultiplier: number, count: number): PrivacyEvent => ({
  kind: 'poisson-gaussian',
  sampleRate,
  noiseMultiplier,
  count,
});
const rejectsBudget = (e: unknown) => e instanceof BastionError && e.code === 'BUDGET_EXHAUSTED';

test('spent ε is the composition of every event, tighter than adding up each charge’s ε', async () => {
  const ledger = newStore();
  const { store, scientist } = ledger;
  const id = addDataset(ledger, 10);
  const a = training(256 / 60000, 1.1, 1000);
  const b = training(256 / 60000, 1.1, 1343);
  await chargeLedger(ledger, { kind: 'training', id: 'job-1', principalId: scientist.id }, [{ datasetId: id, events: [a] }]);
  await chargeLedger(ledger, { kind: 'training', id: 'job-2', principalId: scientist.id }, [{ datasetId: id, events: [b] }]);
  const privacy = await datasetPrivacy({ store }, id, false);
  assert.deepEqual(
    privacy.events.map((e) => e.source.id),
    ['job-1', 'job-2'],
  );
  // Who caused each charge is in the owner's view (details) only.
  assert.ok(privacy.events.every((e) => !('principalId' in e)));
  assert.deepEqual(
    (await datasetPrivacy({ store }, id, true)).events.map((e) => e.principalId),
    [scientist.id, scientist.id],
  );
  const together = composedEpsilon([training(256 / 60000, 1.1, 2343)], 1e-5).epsilon;
  assert.ok(Math.abs(privacy.epsilonSpent - together) <= 1e-3 * together, `${privacy.epsilonSpent} vs ${together}`);
  const summed = composedEpsilon([a], 1e-5).epsilon + composedEpsilon([b], 1e-5).epsilon;
  assert.ok(privacy.epsilonSpent < summed);
  assert.equal(privacy.epsilonRemaining, 10 - privacy.epsilonSpent);
});

test('repeats of one mechanism are merged before composing, which changes no figure', () => {
  const events = [training(0.01, 1.0, 300), { kind: 'gaussian', noiseMultiplier: 5, count: 2 } as PrivacyEvent, training(0.01, 1.0, 700)];
  assert.deepEqual(coalesce(events), [training(0.01, 1.0, 1000), { kind: 'gaussian', noiseMultiplier: 5, count: 2 }]);
  const rdp = createRdpAccountant();
  const direct = rdp.epsilon(events, { delta: 1e-5 });
  assert.ok(Math.abs(rdp.epsilon(coalesce(events), { delta: 1e-5 }) - direct) <= 1e-12 * direct);
});

test('the ledger takes the tighter of its two sound accountants', () => {
  const events = [training(0.01, 1.0, 1000)];
  const pld = createPldAccountant().epsilon(events, { delta: 1e-5 });
  const rdp = createRdpAccountant().epsilon(events, { delta: 1e-5 });
  const chosen = composedEpsilon(events, 1e-5);
  assert.equal(chosen.epsilon, Math.min(pld, rdp));
  assert.equal(chosen.accountant, pld <= rdp ? 'pld' : 'rdp');
});

test('a charge that would pass any one dataset’s limit charges none of them', async () => {
  const ledger = newStore();
  const { store, scientist } = ledger;
  const roomy = addDataset(ledger, 100);
  const tight = addDataset(ledger, 0.5);
  const events = [training(0.01, 1.0, 1000)];
  const [forRoomy, forTight] = await previewCharges({ store }, [
    { datasetId: roomy, events },
    { datasetId: tight, events },
  ]);
  assert.equal(forRoomy!.allowed, true);
  assert.equal(forTight!.allowed, false);
  await assert.rejects(
    chargeLedger(ledger, { kind: 'training', id: 'job', principalId: scientist.id }, [
      { datasetId: roomy, events },
      { datasetId: tight, events },
    ]),
    (e: unknown) => {
      assert.ok(rejectsBudget(e));
      assert.match((e as Error).message, new RegExp(tight));
      assert.doesNotMatch((e as Error).message, new RegExp(roomy));
      return true;
    },
  );
  assert.deepEqual((await datasetPrivacy({ store }, roomy)).events, []);
  assert.deepEqual((await datasetPrivacy({ store }, tight)).events, []);
});

test('malformed events and unknown datasets are refused before anything is written', async () => {
  const ledger = newStore();
  const { store, scientist } = ledger;
  const id = addDataset(ledger, 5);
  await assert.rejects(
    chargeLedger(ledger, { kind: 'metric', id: 'm', principalId: scientist.id }, [
      { datasetId: id, events: [{ kind: 'gaussian', noiseMultiplier: -1, count: 1 }] },
    ]),
    (e: unknown) => e instanceof BastionError && e.code === 'VALIDATION_FAILED' && /\/charges\/0\/events\/0/.test(e.message),
  );
  await assert.rejects(
    chargeLedger(ledger, { kind: 'metric', id: 'm', principalId: scientist.id }, [{ datasetId: uuidv7(), events: [training(0.1, 1, 1)] }]),
    (e: unknown) => e instanceof BastionError && e.code === 'NOT_FOUND',
  );
  assert.deepEqual((await datasetPrivacy({ store }, id)).events, []);
});

test('two processes’ worth of concurrent charges against one dataset never pass its limit', async () => {
  const ledger = newStore();
  const { store, dataDir, scientist } = ledger;
  const limit = 2;
  const datasetId = addDataset(ledger, limit);
  store.close();
  const worker = (n: number) =>
    new Promise<number>((resolve, reject) => {
      // Node 20 workers do not inherit tsx's loader hooks: boot them through tsx's tsImport.
      const script = new URL('../fixtures/ledger-worker.ts', import.meta.url).href;
      const bootstrap =
        `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => ` +
        `tsx.tsImport(${JSON.stringify(script)}, ${JSON.stringify(script)}))`;
      const w = new Worker(bootstrap, { eval: true, workerData: { dataDir, datasetId, principalId: scientist.id, worker: n } });
      w.once('message', resolve);
      w.once('error', reject);
    });
  const [one, two] = await Promise.all([worker(1), worker(2)]);
  const reopened = openStore(dataDir);
  const privacy = await datasetPrivacy({ store: reopened }, datasetId);
  assert.ok(privacy.epsilonSpent <= limit, `spent ${privacy.epsilonSpent}`);
  assert.equal(privacy.events.length, one! + two!);
  // The budget was used up, not refused early: one more charge of the same kind would not fit.
  const next = await previewCharges({ store: reopened }, [{ datasetId, events: [training(0.01, 1.0, 200)] }]);
  assert.equal(next[0]!.allowed, false);
  reopened.close();
});
