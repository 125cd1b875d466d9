// `bastion audit verify`: the compiled CLI on a data folder made here, read-only, with its exit codes
// (0 intact, 1 broken naming the first bad entry, 2 not checked); `bastion audit list` against an app
// listening on a free port.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { dataLayout } from '../../src/config.js';
import { KeyPurpose, openDevKeyProvider } from '../../src/enclave/keys.js';
import { openAuditLog } from '../../src/governance/audit.js';
import { openStore } from '../../src/store/db.js';
import { migrations } from '../../src/store/migrations.js';
import { buildTestApp } from '../helpers/app.js';
import { repoRoot } from '../helpers/server.js';

const run = promisify(execFile);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function bastion(args: string[]): Promise<CliResult> {
  const env = { ...process.env };
  delete env.BASTION_DATA_DIR;
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(repoRoot, 'bin', 'bastion.mjs'), ...args], { cwd: repoRoot, env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const folders: string[] = [];
after(() => {
  for (const dir of folders) fs.rmSync(dir, { recursive: true, force: true });
});

/** A data folder with `count` entries under its own development key, and its mark written. */
function dataFolderWithLog(count: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-audit-cli-'));
  folders.push(dir);
  const store = openStore(dir);
  const log = openAuditLog(store, openDevKeyProvider(dir).deriveKey(KeyPurpose.AUDIT), { highWaterFile: dataLayout(dir).auditHighWater });
  for (let i = 1; i <= count; i++) {
    const target = { kind: 'dataset' as const, id: `d${i}` };
    log.record({ principalId: null, action: 'dataset.create', target, outcome: 'ok', details: { index: i } });
  }
  log.close();
  store.close();
  return dir;
}

/** Runs `sql` on the folder's database as someone with the file would. */
function tamper(dir: string, sql: string): void {
  const store = openStore(dir);
  store.db.pragma('foreign_keys = OFF');
  store.db.exec(sql);
  store.close();
}

test('an intact log: exit 0, one JSON object, and a sentence without --json; the database is not changed', async () => {
  const dir = dataFolderWithLog(5);
  const before = fs.readFileSync(dataLayout(dir).database);
  const json = await bastion(['audit', 'verify', '--data-dir', dir, '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), { ok: true, entries: 5, lastSeq: 5 });
  const human = await bastion(['audit', 'verify', '--data-dir', dir]);
  assert.equal(human.code, 0);
  assert.equal(human.stdout, 'audit log intact: 5 entries, last seq 5\n');
  assert.deepEqual(fs.readFileSync(dataLayout(dir).database), before);
});

test('verification reads a log while another connection holds it open (a running server)', async () => {
  const dir = dataFolderWithLog(3);
  const store = openStore(dir);
  const log = openAuditLog(store, openDevKeyProvider(dir).deriveKey(KeyPurpose.AUDIT), { highWaterFile: dataLayout(dir).auditHighWater });
  log.record({ principalId: null, action: 'training.resume', target: null, outcome: 'ok' });
  log.flush();
  const result = await bastion(['audit', 'verify', '--data-dir', dir, '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { ok: true, entries: 4, lastSeq: 4 });
  log.close();
  store.close();
});

test('an edited entry: exit 1 naming it, in JSON and in the sentence', async () => {
  const dir = dataFolderWithLog(5);
  tamper(dir, `UPDATE audit_log SET details = '{"index":99}' WHERE seq = 3`);
  const json = await bastion(['audit', 'verify', '--data-dir', dir, '--json']);
  assert.equal(json.code, 1);
  assert.deepEqual(JSON.parse(json.stdout), { ok: false, entries: 2, firstBadSeq: 3, reason: 'entry 3: MAC does not match' });
  const human = await bastion(['audit', 'verify', '--data-dir', dir]);
  assert.equal(human.code, 1);
  assert.equal(human.stdout, 'audit log BROKEN at entry 3: entry 3: MAC does not match (2 entries verified before it)\n');
});

test('a truncated tail: exit 1, caught by the high-water mark', async () => {
  const dir = dataFolderWithLog(5);
  tamper(dir, 'DELETE FROM audit_log WHERE seq > 3');
  const result = await bastion(['audit', 'verify', '--data-dir', dir, '--json']);
  assert.equal(result.code, 1);
  const reason = 'log ends at seq 3 but the high-water mark says 5';
  assert.deepEqual(JSON.parse(result.stdout), { ok: false, entries: 3, firstBadSeq: 4, reason });
});

test('what cannot be checked exits 2 with a message: no database, a schema before the audit log, no key, no --data-dir', async () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-audit-cli-'));
  folders.push(empty);
  const none = await bastion(['audit', 'verify', '--data-dir', empty]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /No database at .*bastion\.db/);

  const old = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-audit-cli-'));
  folders.push(old);
  openStore(
    old,
    migrations.filter((m) => m.version < 7),
  ).close();
  const tooOld = await bastion(['audit', 'verify', '--data-dir', old, '--json']);
  assert.equal(tooOld.code, 2);
  assert.equal(tooOld.stdout, '');
  assert.match(tooOld.stderr, /schema version 6, older than the audit log \(version 7\); start the server once to migrate it/);
  const reopened = openStore(
    old,
    migrations.filter((m) => m.version < 7),
  );
  assert.equal(reopened.db.pragma('user_version', { simple: true }), 6, 'verify did not migrate it');
  reopened.close();

  const keyless = dataFolderWithLog(2);
  fs.rmSync(dataLayout(keyless).devRootKey);
  const noKey = await bastion(['audit', 'verify', '--data-dir', keyless]);
  assert.equal(noKey.code, 2);
  assert.match(noKey.stderr, /No key file .*dev-root\.key/);
  assert.equal(fs.existsSync(dataLayout(keyless).devRootKey), false, 'verify does not create a key');

  const usage = await bastion(['audit', 'verify']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /required option '--data-dir <dir>' not specified/);
});

test('audit list prints the page as a table (server for a null principal) with the next cursor, and --json the page itself', async () => {
  const t = await buildTestApp();
  try {
    const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const log = openAuditLog(t.store, randomBytes(32), { highWaterFile: null });
    log.record({ principalId: null, action: 'training.resume', target: { kind: 'training', id: 't1' }, outcome: 'ok' });
    log.record({ principalId: 'p1', action: 'dataset.read', target: null, outcome: 'refused' });
    const common = ['audit', 'list', '--url', url, '--token', t.adminToken];
    // Entry 1 is the first admin's creation; the two above are 2 and 3.
    const first = await bastion([...common, '--after', '1', '--limit', '1']);
    assert.equal(first.code, 0, first.stderr);
    const lines = first.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^SEQ\s+TIME\s+PRINCIPAL\s+ACTION\s+TARGET\s+OUTCOME$/);
    assert.match(lines[1]!, /^2\s+\S+\s+server\s+training\.resume\s+training t1\s+ok$/);
    assert.equal(lines[2], 'more: bastion audit list --after 2');
    const json = await bastion([...common, '--after', '2', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const page = JSON.parse(json.stdout);
    assert.deepEqual([page.items.map((e: { seq: number; outcome: string }) => [e.seq, e.outcome]), page.next], [[[3, 'refused']], null]);
    const bad = await bastion([...common, '--limit', '0']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /limit/);
  } finally {
    await t.close();
  }
});
