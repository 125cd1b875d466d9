// The audit log's chain, high-water mark and listing: every way of tampering with the stored log
// (edit, delete, reorder, truncate, forge or delete the mark, another key) is reported at the right entry.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { dataLayout } from '../../src/config.js';
import { BastionError } from '../../src/errors.js';
import {
  type AuditInput,
  type AuditLog,
  type HighWaterMark,
  listAuditEntries,
  openAuditLog,
  readHighWaterMark,
  verifyAuditLog,
} from '../../src/governance/audit.js';
import { openStore, type Store } from '../../src/store/db.js';

const alice = '0190a000-0000-7000-8000-00000000000a';
const bob = '0190a000-0000-7000-8000-00000000000b';

interface Fixture {
  dir: string;
  store: Store;
  key: Buffer;
  markFile: string;
  log: AuditLog;
  problems: string[];
  marksWritten: HighWaterMark[];
  verify(key?: Buffer): ReturnType<typeof verifyAuditLog>;
}

function openFixture(): Fixture {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-audit-'));
  const store = openStore(dir);
  const key = randomBytes(32);
  const markFile = dataLayout(dir).auditHighWater;
  const problems: string[] = [];
  const marksWritten: HighWaterMark[] = [];
  const log = openAuditLog(store, key, {
    highWaterFile: markFile,
    onHighWaterProblem: (message) => problems.push(message),
    afterHighWaterWrite: (mark) => marksWritten.push(mark),
  });
  return { dir, store, key, markFile, log, problems, marksWritten, verify: (k = key) => verifyAuditLog(store, k, markFile) };
}

const entry = (principalId: string | null, action: string, extra: Partial<AuditInput> = {}): AuditInput => ({
  principalId,
  action,
  target: { kind: 'dataset', id: '0190a000-0000-7000-8000-0000000000d1' },
  outcome: 'ok',
  details: { name: 'claims-2024' },
  ...extra,
});

/**
 * Six committed entries (1: alone; 2–3: one transaction; 4: bob on alice's dataset; 5: the server;
 * 6: alice), one rolled-back entry in between, and the mark flushed at 6.
 */
function seeded(): Fixture {
  const f = openFixture();
  f.log.record(entry(alice, 'dataset.create'));
  f.store.transaction(() => {
    f.log.record(entry(alice, 'dataset.update', { details: { field: 'description' } }));
    f.log.record(entry(alice, 'model.create', { target: { kind: 'model', id: '0190a000-0000-7000-8000-0000000000e1' } }));
  });
  assert.throws(
    () =>
      f.store.transaction(() => {
        f.log.record(entry(alice, 'dataset.delete'));
        throw new Error('the change failed after its entry was written');
      }),
    /the change failed/,
  );
  f.log.record(entry(bob, 'training.create', { outcome: 'refused', subjects: [alice] }));
  const training = { kind: 'training' as const, id: '0190a000-0000-7000-8000-0000000000f1' };
  f.log.record(entry(null, 'training.resume', { target: training, subjects: [bob] }));
  f.log.record(entry(alice, 'evaluation.create', { target: null, details: {} }));
  f.log.flush();
  // Tampering happens outside the server, with the database file's own rules only.
  f.store.db.pragma('foreign_keys = OFF');
  return f;
}

function close(f: Fixture): void {
  f.log.close();
  f.store.close();
  fs.rmSync(f.dir, { recursive: true, force: true });
}

const actions = (store: Store) =>
  (store.db.prepare('SELECT action FROM audit_log ORDER BY seq').all() as { action: string }[]).map((r) => r.action);

test('an intact log verifies: committed entries are numbered 1…6 and the rolled-back one is absent', () => {
  const f = seeded();
  const expected = ['dataset.create', 'dataset.update', 'model.create', 'training.create', 'training.resume', 'evaluation.create'];
  assert.deepEqual(actions(f.store), expected);
  assert.deepEqual(f.verify(), { ok: true, entries: 6, lastSeq: 6 });
  const mark = readHighWaterMark(f.markFile, f.key);
  assert.equal(mark.kind, 'valid');
  assert.equal(mark.kind === 'valid' && mark.mark.seq, 6);
  assert.equal(fs.statSync(f.markFile).mode & 0o777, 0o600);
  assert.deepEqual(f.problems, []);
  close(f);
});

test('an edited details field is reported at that entry, and only there', () => {
  const f = seeded();
  f.store.db.prepare(`UPDATE audit_log SET details = '{"name":"other"}' WHERE seq = 3`).run();
  assert.deepEqual(f.verify(), { ok: false, entries: 2, firstBadSeq: 3, reason: 'entry 3: MAC does not match' });
  close(f);
});

test('an edited action is reported at that entry', () => {
  const f = seeded();
  f.store.db.prepare(`UPDATE audit_log SET action = 'dataset.read' WHERE seq = 2`).run();
  assert.deepEqual(f.verify(), { ok: false, entries: 1, firstBadSeq: 2, reason: 'entry 2: MAC does not match' });
  close(f);
});

test('an edited outcome (refused made ok) is reported at that entry', () => {
  const f = seeded();
  f.store.db.prepare(`UPDATE audit_log SET outcome = 'ok' WHERE seq = 4`).run();
  assert.deepEqual(f.verify(), { ok: false, entries: 3, firstBadSeq: 4, reason: 'entry 4: MAC does not match' });
  close(f);
});

test('a deleted middle entry is reported missing', () => {
  const f = seeded();
  f.store.db.prepare('DELETE FROM audit_log WHERE seq = 4').run();
  assert.deepEqual(f.verify(), { ok: false, entries: 3, firstBadSeq: 4, reason: 'entry 4 missing' });
  close(f);
});

test('a deleted entry whose successors were renumbered to close the gap breaks the MAC of the first renumbered one', () => {
  const f = seeded();
  f.store.db.prepare('DELETE FROM audit_log WHERE seq = 4').run();
  for (const seq of [5, 6]) f.store.db.prepare('UPDATE audit_log SET seq = ? WHERE seq = ?').run(seq - 1, seq);
  const result = f.verify();
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.firstBadSeq, 4);
  assert.equal(!result.ok && result.reason, 'entry 4: MAC does not match');
  close(f);
});

test('two entries swapped (every column but seq, MACs included) are reported at the first of them', () => {
  const f = seeded();
  const columns = ['time', 'principal_id', 'action', 'target_kind', 'target_id', 'outcome', 'details', 'mac'];
  const select = f.store.db.prepare(`SELECT ${columns.join(', ')} FROM audit_log WHERE seq = ?`);
  const read = (seq: number) => select.get(seq) as Record<string, unknown>;
  const [two, three] = [read(2), read(3)];
  const write = f.store.db.prepare(`UPDATE audit_log SET ${columns.map((c) => `${c} = @${c}`).join(', ')} WHERE seq = @seq`);
  write.run({ ...three, seq: 2 });
  write.run({ ...two, seq: 3 });
  assert.deepEqual(f.verify(), { ok: false, entries: 1, firstBadSeq: 2, reason: 'entry 2: MAC does not match' });
  close(f);
});

test('a truncated tail (the last two entries deleted) is caught by the high-water mark', () => {
  const f = seeded();
  f.store.db.prepare('DELETE FROM audit_log WHERE seq > 4').run();
  assert.deepEqual(f.verify(), { ok: false, entries: 4, firstBadSeq: 5, reason: 'log ends at seq 4 but the high-water mark says 6' });
  // Without the mark the shortened chain alone is valid: that is what the mark is for.
  assert.deepEqual(verifyAuditLog(f.store, f.key, null), { ok: true, entries: 4, lastSeq: 4 });
  close(f);
});

test('an emptied log with its mark left is reported as truncated from entry 1', () => {
  const f = seeded();
  f.store.db.prepare('DELETE FROM audit_log').run();
  assert.deepEqual(f.verify(), { ok: false, entries: 0, firstBadSeq: 1, reason: 'log ends at seq 0 but the high-water mark says 6' });
  close(f);
});

test('a mark forged to hide a truncation (seq and MAC lowered, tag kept or made under another key) is refused', () => {
  const f = seeded();
  f.store.db.prepare('DELETE FROM audit_log WHERE seq > 4').run();
  const real = JSON.parse(fs.readFileSync(f.markFile, 'utf8')) as HighWaterMark;
  const row4 = f.store.db.prepare('SELECT mac FROM audit_log WHERE seq = 4').get() as { mac: Buffer };
  fs.writeFileSync(f.markFile, JSON.stringify({ seq: 4, mac: row4.mac.toString('hex'), tag: real.tag }));
  const kept = f.verify();
  assert.equal(kept.ok, false);
  assert.equal(!kept.ok && kept.firstBadSeq, null);
  assert.match(!kept.ok ? kept.reason : '', /^high-water mark .* has a tag that does not match/);

  // A mark made by a log under another key (what a host could produce) is just as forged.
  const otherDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-audit-other-'));
  const otherStore = openStore(otherDir);
  const otherLog = openAuditLog(otherStore, randomBytes(32), { highWaterFile: dataLayout(otherDir).auditHighWater });
  for (let i = 0; i < 4; i++) otherLog.record(entry(alice, 'dataset.create'));
  otherLog.close();
  fs.copyFileSync(dataLayout(otherDir).auditHighWater, f.markFile);
  const other = f.verify();
  assert.equal(!other.ok && other.firstBadSeq, null);
  assert.match(!other.ok ? other.reason : '', /has a tag that does not match/);
  otherStore.close();
  fs.rmSync(otherDir, { recursive: true, force: true });

  fs.writeFileSync(f.markFile, '{"seq": 4');
  assert.match((f.verify() as { reason: string }).reason, /^high-water mark .* is not JSON$/);
  close(f);
});

test('a deleted mark is a failure on a non-empty log and not on an empty one', () => {
  const f = seeded();
  fs.rmSync(f.markFile);
  const result = f.verify();
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.firstBadSeq, null);
  assert.equal(!result.ok && result.entries, 6);
  assert.match(!result.ok ? result.reason : '', /^high-water mark missing: .* the log has 6 entries$/);
  close(f);

  const empty = openFixture();
  assert.equal(fs.existsSync(empty.markFile), false, 'an empty log writes no mark');
  assert.deepEqual(empty.verify(), { ok: true, entries: 0, lastSeq: 0 });
  close(empty);
});

test('another key fails at entry 1', () => {
  const f = seeded();
  assert.deepEqual(f.verify(randomBytes(32)), { ok: false, entries: 0, firstBadSeq: 1, reason: 'entry 1: MAC does not match' });
  close(f);
});

test('a log rolled back and rewritten by the key holder (a restored backup the server appended to) disagrees with the mark', () => {
  const f = seeded();
  f.log.close();
  f.store.db.prepare('DELETE FROM audit_log WHERE seq > 4').run();
  // Appended without the mark (as a server without one would): a valid chain again up to 6.
  const rewriter = openAuditLog(f.store, f.key, { highWaterFile: null });
  rewriter.record(entry(bob, 'dataset.create'));
  rewriter.record(entry(bob, 'dataset.create'));
  assert.deepEqual(verifyAuditLog(f.store, f.key, null), { ok: true, entries: 6, lastSeq: 6 });
  const result = f.verify();
  assert.equal(!result.ok && result.firstBadSeq, 6);
  assert.match(!result.ok ? result.reason : '', /^entry 6: differs from the entry the high-water mark records/);
  close(f);
});

test('a server opened on a truncated log keeps the mark as evidence: reported, never overwritten, verify keeps failing', async () => {
  const f = seeded();
  f.log.close();
  f.store.db.prepare('DELETE FROM audit_log WHERE seq > 4').run();
  const before = fs.readFileSync(f.markFile, 'utf8');
  const problems: string[] = [];
  const reopened = openAuditLog(f.store, f.key, { highWaterFile: f.markFile, onHighWaterProblem: (m) => problems.push(m) });
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /does not reach its high-water mark \(seq 6\)/);
  for (let i = 0; i < 3; i++) reopened.record(entry(alice, 'dataset.create'));
  await new Promise((resolve) => setImmediate(resolve));
  reopened.flush();
  assert.equal(fs.readFileSync(f.markFile, 'utf8'), before);
  const result = f.verify();
  assert.equal(result.ok, false, 'the rewritten entries 5 and 6 do not carry the marked MAC');
  assert.equal(!result.ok && result.firstBadSeq, 6);
  reopened.close();
  close(f);
});

test('a server opened on a log whose mark is missing writes it anew and reports that it was missing', () => {
  const f = seeded();
  f.log.close();
  fs.rmSync(f.markFile);
  const problems: string[] = [];
  const reopened = openAuditLog(f.store, f.key, { highWaterFile: f.markFile, onHighWaterProblem: (m) => problems.push(m) });
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /was missing on a non-empty log/);
  assert.deepEqual(f.verify(), { ok: true, entries: 6, lastSeq: 6 });
  reopened.close();
  close(f);
});

test('records in one event-loop turn cost one mark write, after the commit, at the newest committed entry', async () => {
  const f = openFixture();
  for (let i = 0; i < 5; i++) f.log.record(entry(alice, 'dataset.create'));
  f.store.transaction(() => {
    f.log.record(entry(alice, 'dataset.update'));
  });
  assert.throws(() =>
    f.store.transaction(() => {
      f.log.record(entry(alice, 'dataset.delete'));
      throw new Error('rolled back');
    }),
  );
  assert.equal(fs.existsSync(f.markFile), false, 'nothing is written inside the turn');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(
    f.marksWritten.map((m) => m.seq),
    [6],
  );
  f.log.record(entry(bob, 'model.create'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(
    f.marksWritten.map((m) => m.seq),
    [6, 7],
  );
  // flush with nothing new writes nothing; close after a record writes at once.
  f.log.flush();
  f.log.record(entry(bob, 'model.delete'));
  f.log.close();
  assert.deepEqual(
    f.marksWritten.map((m) => m.seq),
    [6, 7, 8],
  );
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(f.marksWritten.length, 3, 'the write scheduled before close does not run after it');
  assert.deepEqual(f.verify(), { ok: true, entries: 8, lastSeq: 8 });
  close(f);
});

test('admins list every entry; members only those they made or are subjects of', () => {
  const f = seeded();
  const seqs = (viewer: { id: string; role: 'admin' | 'member' }) => listAuditEntries(f.store, viewer).items.map((e) => e.seq);
  assert.deepEqual(seqs({ id: bob, role: 'admin' }), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(seqs({ id: alice, role: 'member' }), [1, 2, 3, 4, 6]);
  assert.deepEqual(seqs({ id: bob, role: 'member' }), [4, 5]);
  assert.deepEqual(seqs({ id: '0190a000-0000-7000-8000-0000000000cc', role: 'member' }), []);
  const refused = listAuditEntries(f.store, { id: bob, role: 'member' }).items[0]!;
  assert.deepEqual(refused, {
    seq: 4,
    time: refused.time,
    principalId: bob,
    action: 'training.create',
    target: { kind: 'dataset', id: '0190a000-0000-7000-8000-0000000000d1' },
    outcome: 'refused',
    details: { name: 'claims-2024' },
  });
  close(f);
});

test('pages follow the cursor to the end, and the last page has no next even when it is full', () => {
  const f = seeded();
  const admin = { id: alice, role: 'admin' as const };
  const first = listAuditEntries(f.store, admin, { limit: 4 });
  assert.deepEqual(
    first.items.map((e) => e.seq),
    [1, 2, 3, 4],
  );
  assert.equal(first.next, 4);
  const second = listAuditEntries(f.store, admin, { after: first.next!, limit: 4 });
  assert.deepEqual(
    second.items.map((e) => e.seq),
    [5, 6],
  );
  assert.equal(second.next, null);
  assert.equal(listAuditEntries(f.store, admin, { limit: 3 }).next, 3);
  assert.equal(listAuditEntries(f.store, admin, { after: 3, limit: 3 }).next, null);
  const member = listAuditEntries(f.store, { id: alice, role: 'member' }, { after: 2, limit: 2 });
  assert.deepEqual(
    member.items.map((e) => e.seq),
    [3, 4],
  );
  assert.equal(member.next, 4);
  const last = listAuditEntries(f.store, { id: alice, role: 'member' }, { after: 4, limit: 2 });
  assert.deepEqual([last.items.map((e) => e.seq), last.next], [[6], null], 'entry 5 is not alice’s; 6 is her last');
  close(f);
});

test('page parameters out of range are refused naming the parameter', () => {
  const f = seeded();
  const cases = [
    [{ limit: 0 }, 'limit'],
    [{ limit: 1001 }, 'limit'],
    [{ limit: 2.5 }, 'limit'],
    [{ after: -1 }, 'after'],
  ] as const;
  for (const [options, parameter] of cases) {
    assert.throws(
      () => listAuditEntries(f.store, { id: alice, role: 'admin' }, options),
      (e: unknown) => e instanceof BastionError && e.code === 'VALIDATION_FAILED' && e.details.errors?.[0]?.parameter === parameter,
    );
  }
  assert.equal(listAuditEntries(f.store, { id: alice, role: 'admin' }, { limit: 1000 }).items.length, 6);
  close(f);
});
