// The audit log: every state change (principals, artifacts, policies, trainings, evaluations, approvals,
// ledger charges) and every refused access, as one entry {seq, time, principalId, action, target,
// outcome, details}. Entries are chained by HMAC-SHA256 under the key provider's "audit" key: each
// entry's MAC covers the previous entry's MAC and its own fields, so editing, removing or reordering
// an entry breaks every MAC after it. An entry is written in the same store transaction as the change
// it records, so there is never a change without its entry, nor an entry without its change.
//
// A chain alone cannot show that its tail was cut off: the first k entries of a valid chain are a valid
// chain. So the newest entry's seq and MAC are also kept outside the database, in the high-water mark
// file, under a tag only the key holder can compute; verifyAuditLog fails when the log no longer
// reaches the mark. The mark trails the log by at most one event-loop turn (it is written after the
// transaction commits), so only entries committed in the turn before a crash escape this check.
import { createHmac, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import { BastionError } from '../errors.js';
import type { AuditEntrySchema, AuditTargetSchema } from '../schemas/audit.js';
import { type AuditRow, findAuditRow, insertAuditRow, iterateAuditRows, lastAuditRow, listAuditRows } from '../store/audit.js';
import type { Store } from '../store/db.js';
import { writeFileAtomic } from '../store/files.js';
import type { Role } from '../store/principals.js';
import { authorize } from './authorize.js';

export type AuditTarget = Static<typeof AuditTargetSchema>;
export type AuditTargetKind = AuditTarget['kind'];
export type AuditEntry = Static<typeof AuditEntrySchema>;
export type AuditOutcome = AuditEntry['outcome'];

export interface AuditInput {
  /** Who acted; null for the server itself (resuming, cancelling a revoked principal's jobs). */
  principalId: string | null;
  /** What was done, `<noun>.<verb>`: `dataset.create`, `training.cancel`, `ledger.charge`, … */
  action: string;
  target: AuditTarget | null;
  outcome: AuditOutcome;
  /** Facts of the change, never data values, tokens or keys. */
  details?: Record<string, unknown>;
  /** Principals besides the actor whom the entry concerns (the target's owners): they may read it. */
  subjects?: readonly string[];
}

export interface AuditLog {
  /**
   * Appends one entry and returns its seq. Called inside a store transaction, it commits or rolls back
   * with the change it records; called outside one, it is its own transaction.
   */
  record(entry: AuditInput): number;
  /** Writes the high-water mark of the newest committed entry now, synchronously (no-op without a mark file). */
  flush(): void;
  /** Cancels the pending mark write and flushes; call at shutdown, before the store closes. */
  close(): void;
}

/** What services need of the log: they record; the composition root flushes and closes. */
export type AuditRecorder = Pick<AuditLog, 'record'>;

/** The MAC of the entry before the first. */
export const GENESIS_MAC = Buffer.alloc(32);

/** HMAC-SHA256 over the previous MAC and the entry's fields (as stored: details is its JSON text). */
export function entryMac(key: Buffer, previous: Buffer, row: Omit<AuditRow, 'mac'>): Buffer {
  const fields = JSON.stringify([row.seq, row.time, row.principalId, row.action, row.targetKind, row.targetId, row.outcome, row.details]);
  return createHmac('sha256', key).update(previous).update(fields, 'utf8').digest();
}

export function toAuditEntry(row: AuditRow): AuditEntry {
  return {
    seq: row.seq,
    time: row.time,
    principalId: row.principalId,
    action: row.action,
    target: row.targetKind !== null && row.targetId !== null ? { kind: row.targetKind as AuditTargetKind, id: row.targetId } : null,
    outcome: row.outcome,
    details: JSON.parse(row.details) as Record<string, unknown>,
  };
}

// ---- The high-water mark ----------------------------------------------------------------------------

const hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });

/** The mark file's content: the newest entry's seq (≥ 1) and MAC (hex), and a tag over both (hex). */
const HighWaterMarkSchema = Type.Object(
  { seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), mac: hex64, tag: hex64 },
  { additionalProperties: false },
);
export type HighWaterMark = Static<typeof HighWaterMarkSchema>;

/** What is in a mark file: nothing, something that is not an authentic mark (and why), or a mark. */
export type HighWaterReading = { kind: 'missing' } | { kind: 'invalid'; reason: string } | { kind: 'valid'; mark: HighWaterMark };

// The tag is an HMAC under a key of its own, derived from the audit key, so that a mark tag and an
// entry MAC can never stand in for each other; the host, without the key, cannot tag a lower seq to
// hide a truncation.
function highWaterTag(key: Buffer, seq: number, macHex: string): string {
  const markKey = createHmac('sha256', key).update('bastion/audit/high-water-mark').digest();
  return createHmac('sha256', markKey)
    .update(JSON.stringify([seq, macHex]), 'utf8')
    .digest('hex');
}

function sealHighWaterMark(key: Buffer, row: Pick<AuditRow, 'seq' | 'mac'>): HighWaterMark {
  const mac = row.mac.toString('hex');
  return { seq: row.seq, mac, tag: highWaterTag(key, row.seq, mac) };
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Reads and authenticates the mark in `file`. Throws only on I/O errors other than a missing file. */
export function readHighWaterMark(file: string, key: Buffer): HighWaterReading {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'invalid', reason: 'is not JSON' };
  }
  if (!Value.Check(HighWaterMarkSchema, value)) {
    return { kind: 'invalid', reason: 'is not {seq, mac, tag} with a positive seq and hex MAC and tag' };
  }
  const expected = Buffer.from(highWaterTag(key, value.seq, value.mac), 'hex');
  if (!sameBytes(expected, Buffer.from(value.tag, 'hex'))) {
    return { kind: 'invalid', reason: 'has a tag that does not match (forged, or written under another key)' };
  }
  return { kind: 'valid', mark: value };
}

/**
 * Keeps the mark file at the newest committed entry. A write is scheduled with setImmediate after a
 * record (better-sqlite3 transactions are synchronous, so by then the caller's transaction has
 * committed or rolled back) and reads the newest row itself, so any number of records in one turn
 * cost one write, and a rolled-back entry is never marked.
 *
 * At open: a missing mark is written for the newest entry (a fresh or just-upgraded folder has an
 * empty log and nothing to write; a non-empty log without a mark means a crash within one turn of the
 * first entries, or a deleted mark, so it is reported through `onProblem`). An existing mark that is
 * not authentic, or that the log does not reach with the same MAC, is evidence of tampering or of a
 * rolled-back database: the writer never overwrites it ("pinned"), so `bastion audit verify` keeps
 * failing until an operator has looked and removed the file.
 */
function openHighWaterWriter(
  store: Store,
  key: Buffer,
  file: string,
  hooks: { onProblem: (message: string) => void; afterWrite: ((mark: HighWaterMark) => void) | undefined },
) {
  const { onProblem, afterWrite } = hooks;
  let written: { seq: number; mac: Buffer } | null = null;
  let pending: NodeJS.Immediate | null = null;
  let pinned = false;
  let closed = false;

  const writeNewest = () => {
    if (pinned) return;
    const last = lastAuditRow(store);
    if (last === undefined || (written !== null && written.seq === last.seq && written.mac.equals(last.mac))) return;
    const mark = sealHighWaterMark(key, last);
    writeFileAtomic(file, `${JSON.stringify(mark)}\n`);
    written = { seq: last.seq, mac: last.mac };
    afterWrite?.(mark);
  };

  const scheduled = () => {
    pending = null;
    if (closed || !store.db.open) return;
    // A transaction spanning turns (explicit BEGIN) is still open: its entries are not committed yet.
    if (store.db.inTransaction) return schedule();
    try {
      writeNewest();
    } catch (err) {
      onProblem(`could not write the audit high-water mark ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  function schedule(): void {
    if (pending === null && !pinned && !closed) pending = setImmediate(scheduled);
  }

  const reading = readHighWaterMark(file, key);
  if (reading.kind === 'invalid') {
    pinned = true;
    onProblem(`the audit high-water mark ${file} ${reading.reason}; it is kept as evidence and not updated: run bastion audit verify`);
  } else if (reading.kind === 'valid') {
    const row = findAuditRow(store, reading.mark.seq);
    if (row === undefined || row.mac.toString('hex') !== reading.mark.mac) {
      pinned = true;
      onProblem(
        `the audit log does not reach its high-water mark (seq ${reading.mark.seq}); the mark is kept as evidence and not updated: ` +
          'run bastion audit verify',
      );
    } else {
      written = { seq: row.seq, mac: row.mac };
    }
  } else if (lastAuditRow(store) !== undefined) {
    onProblem(
      `the audit high-water mark ${file} was missing on a non-empty log; writing it anew ` +
        '(if the server did not crash just after its first entries, it was deleted)',
    );
  }
  writeNewest();

  return {
    schedule,
    flush: () => {
      if (pending !== null) clearImmediate(pending);
      pending = null;
      writeNewest();
    },
    close: () => {
      if (pending !== null) clearImmediate(pending);
      pending = null;
      if (!closed && store.db.open) writeNewest();
      closed = true;
    },
  };
}

// ---- Appending ----------------------------------------------------------------------------------------

export interface AuditLogOptions {
  /**
   * Where the high-water mark lives (dataLayout(dataDir).auditHighWater), or null for none (tests of
   * the chain alone). Required, so that a server cannot run without a mark by omission.
   */
  highWaterFile: string | null;
  /**
   * Problems with the mark that must not stop the server (a failed write, a tampered mark kept as
   * evidence, a missing one written anew); default: a process warning. Messages hold paths and seqs only.
   */
  onHighWaterProblem?: (message: string) => void;
  /** Test hook: runs after the entry is written, before the transaction commits (a crash there must lose both). */
  afterAppend?: (seq: number) => void;
  /** Test hook: runs after each write of the mark file. */
  afterHighWaterWrite?: (mark: HighWaterMark) => void;
}

/**
 * The audit log of `store`, chained under `key` (KeyProvider.deriveKey(KeyPurpose.AUDIT), 32 bytes).
 * With a mark file, reads it now and writes it when it lags the log (or is missing); throws on I/O
 * errors there. Later write failures go to `onHighWaterProblem`; flush() and close() throw them.
 */
export function openAuditLog(store: Store, key: Buffer, options: AuditLogOptions): AuditLog {
  const macKey = Buffer.from(key);
  const append = (entry: AuditInput): number => {
    const last = lastAuditRow(store);
    const row: Omit<AuditRow, 'mac'> = {
      seq: (last?.seq ?? 0) + 1,
      time: new Date().toISOString(),
      principalId: entry.principalId,
      action: entry.action,
      targetKind: entry.target?.kind ?? null,
      targetId: entry.target?.id ?? null,
      outcome: entry.outcome,
      details: JSON.stringify(entry.details ?? {}),
    };
    const mac = entryMac(macKey, last?.mac ?? GENESIS_MAC, row);
    const subjects = new Set<string>(entry.subjects ?? []);
    if (entry.principalId !== null) subjects.add(entry.principalId);
    insertAuditRow(store, { ...row, mac }, [...subjects]);
    options.afterAppend?.(row.seq);
    return row.seq;
  };
  const onProblem = options.onHighWaterProblem ?? ((message: string) => process.emitWarning(message, 'BastionAuditWarning'));
  const highWater = options.highWaterFile
    ? openHighWaterWriter(store, macKey, options.highWaterFile, { onProblem, afterWrite: options.afterHighWaterWrite })
    : null;
  return {
    record: (entry) => {
      const seq = store.db.inTransaction ? append(entry) : store.transaction(() => append(entry));
      highWater?.schedule();
      return seq;
    },
    flush: () => highWater?.flush(),
    close: () => highWater?.close(),
  };
}

// ---- Verification -------------------------------------------------------------------------------------

/**
 * The outcome of verifyAuditLog. `entries` counts the entries verified intact (on failure: those
 * before the first bad one). `firstBadSeq` is the first entry that is wrong or missing, or null when
 * every entry verified and what is wrong is the high-water mark itself (missing, unreadable, forged).
 */
export type AuditVerification =
  | { ok: true; entries: number; lastSeq: number }
  | { ok: false; entries: number; firstBadSeq: number | null; reason: string };

/**
 * Walks the whole log in seq order, one row at a time (bounded memory for a log of any length):
 * seq must run 1, 2, 3, … without a gap and every MAC must match the one recomputed from the previous
 * MAC under `key`. Then the high-water mark in `highWaterFile` (null: skip this check) must be
 * authentic, the log must reach its seq, and the entry at that seq must carry its MAC. A missing mark
 * is a failure only for a non-empty log. Reports the first problem found; throws only on I/O errors.
 */
export function verifyAuditLog(store: Store, key: Buffer, highWaterFile: string | null): AuditVerification {
  const reading = highWaterFile === null ? null : readHighWaterMark(highWaterFile, key);
  const mark = reading?.kind === 'valid' ? reading.mark : null;
  let previous: Buffer = GENESIS_MAC;
  let lastSeq = 0;
  const fail = (firstBadSeq: number | null, reason: string): AuditVerification => ({ ok: false, entries: lastSeq, firstBadSeq, reason });
  for (const row of iterateAuditRows(store)) {
    const expected = lastSeq + 1;
    if (row.seq > expected) {
      return fail(expected, row.seq === expected + 1 ? `entry ${expected} missing` : `entries ${expected}–${row.seq - 1} missing`);
    }
    if (row.seq < expected) return fail(row.seq, `entry ${row.seq}: seq out of range (entries start at 1)`);
    if (!Buffer.isBuffer(row.mac) || !sameBytes(entryMac(key, previous, row), row.mac)) {
      return fail(row.seq, `entry ${row.seq}: MAC does not match`);
    }
    if (mark !== null && row.seq === mark.seq && row.mac.toString('hex') !== mark.mac) {
      return fail(row.seq, `entry ${row.seq}: differs from the entry the high-water mark records (the log was rolled back and rewritten)`);
    }
    previous = row.mac;
    lastSeq = row.seq;
  }
  if (reading?.kind === 'missing' && lastSeq > 0) {
    return fail(null, `high-water mark missing: ${highWaterFile} does not exist but the log has ${lastSeq} entries`);
  }
  if (reading?.kind === 'invalid') return fail(null, `high-water mark ${highWaterFile} ${reading.reason}`);
  if (mark !== null && mark.seq > lastSeq) return fail(lastSeq + 1, `log ends at seq ${lastSeq} but the high-water mark says ${mark.seq}`);
  return { ok: true, entries: lastSeq, lastSeq };
}

// ---- Reading ------------------------------------------------------------------------------------------

export const AUDIT_PAGE_DEFAULT = 100;
export const AUDIT_PAGE_MAX = 1000;

export interface AuditPage {
  items: AuditEntry[];
  /** Pass as `after` for the next page; null when this page is the last. */
  next: number | null;
}

function pageParameter(name: string, value: number, min: number, max: number): number {
  if (Number.isSafeInteger(value) && value >= min && value <= max) return value;
  const detail = `Expected integer between ${min} and ${max} for ${name} but received ${value}`;
  throw new BastionError('VALIDATION_FAILED', detail, { errors: [{ parameter: name, detail }] });
}

/**
 * One page of the log in seq order, after seq `after` (default 0: from the start), at most `limit`
 * entries (1–1000, default 100). An admin sees every entry; a member sees the entries it is a subject
 * of (those it made and those about what it owns).
 */
export function listAuditEntries(
  store: Store,
  viewer: { id: string; role: Role },
  options: { after?: number; limit?: number } = {},
): AuditPage {
  const after = pageParameter('after', options.after ?? 0, 0, Number.MAX_SAFE_INTEGER);
  const limit = pageParameter('limit', options.limit ?? AUDIT_PAGE_DEFAULT, 1, AUDIT_PAGE_MAX);
  // One row more than asked tells whether another page follows, so `next` is null on the last page.
  // An admin reads every entry; anyone else those about its own requests and artifacts (not refused: filtered).
  const all = authorize(viewer, 'audit.readAll', { kind: 'audit' }).allowed;
  const rows = listAuditRows(store, { afterSeq: after, limit: limit + 1, subject: all ? null : viewer.id });
  const page = rows.slice(0, limit);
  return { items: page.map(toAuditEntry), next: rows.length > limit ? page[page.length - 1]!.seq : null };
}
