// A change and its audit entry commit together or not at all: a process killed between writing both
// and the commit leaves neither, and the chain still verifies (test/fixtures/audit-fault-child.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { dataLayout } from '../../src/config.js';
import { KeyPurpose, openDevKeyProvider } from '../../src/enclave/keys.js';
import { openAuditLog, verifyAuditLog } from '../../src/governance/audit.js';
import { openStore, type Store } from '../../src/store/db.js';
import { repoRoot } from '../helpers/testdata.js';

const run = promisify(execFile);
const child = path.join(repoRoot, 'test', 'fixtures', 'audit-fault-child.ts');

async function runChild(dataDir: string, mode: 'crash' | 'commit', name: string): Promise<number> {
  try {
    await run(process.execPath, ['--import', 'tsx', child, dataDir, mode, name], { cwd: repoRoot });
    return 0;
  } catch (err) {
    return (err as { code: number }).code;
  }
}

/** A data folder whose log already holds two entries (the crash must not disturb them either). */
function dataFolder(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-audit-fault-'));
  const store = openStore(dir);
  const log = openAuditLog(store, openDevKeyProvider(dir).deriveKey(KeyPurpose.AUDIT), { highWaterFile: dataLayout(dir).auditHighWater });
  log.record({ principalId: null, action: 'server.start', target: null, outcome: 'ok' });
  log.record({ principalId: null, action: 'server.start', target: null, outcome: 'ok' });
  log.close();
  store.close();
  return dir;
}

const principalsNamed = (store: Store, name: string) =>
  store.db.prepare('SELECT id FROM principals WHERE name = ?').all(name) as { id: string }[];
type Row = { seq: number; action: string; targetId: string | null };
const entries = (store: Store) => store.db.prepare('SELECT seq, action, target_id AS targetId FROM audit_log ORDER BY seq').all() as Row[];
const verify = (store: Store, dir: string) =>
  verifyAuditLog(store, openDevKeyProvider(dir).deriveKey(KeyPurpose.AUDIT), dataLayout(dir).auditHighWater);

test('a process killed after writing a change and its entry, before the commit, leaves neither; the chain verifies', async () => {
  const dir = dataFolder();
  assert.equal(await runChild(dir, 'crash', 'crash-victim'), 137, 'the child died in the afterAppend hook');
  const store = openStore(dir);
  assert.deepEqual(principalsNamed(store, 'crash-victim'), []);
  assert.deepEqual(
    entries(store).map((e) => e.seq),
    [1, 2],
  );
  assert.deepEqual(verify(store, dir), { ok: true, entries: 2, lastSeq: 2 });
  store.close();
  // The next process continues the chain at 3, with no hole where the lost entry was.
  assert.equal(await runChild(dir, 'commit', 'after-crash'), 0);
  const after = openStore(dir);
  assert.deepEqual(
    entries(after).map((e) => e.seq),
    [1, 2, 3],
  );
  assert.deepEqual(verify(after, dir), { ok: true, entries: 3, lastSeq: 3 });
  after.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('without the fault the change and its entry are both there, and the mark covers the entry', async () => {
  const dir = dataFolder();
  assert.equal(await runChild(dir, 'commit', 'committed'), 0);
  const store = openStore(dir);
  const [principal] = principalsNamed(store, 'committed');
  assert.ok(principal, 'the principal row committed');
  assert.deepEqual(entries(store).at(-1), { seq: 3, action: 'principal.create', targetId: principal.id });
  assert.deepEqual(verify(store, dir), { ok: true, entries: 3, lastSeq: 3 });
  assert.equal((JSON.parse(fs.readFileSync(dataLayout(dir).auditHighWater, 'utf8')) as { seq: number }).seq, 3);
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
