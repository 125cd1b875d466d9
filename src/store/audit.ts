// Rows of the audit log (audit_log) and its subject index (audit_subjects). Data access only: how an
// entry is chained and verified lives in src/governance/audit.ts.
import type { Store } from './db.js';

/** The schema version (src/store/migrations.ts) that created audit_log and audit_subjects. */
export const AUDIT_LOG_SCHEMA_VERSION = 7;

export interface AuditRow {
  seq: number;
  time: string;
  principalId: string | null;
  action: string;
  targetKind: string | null;
  targetId: string | null;
  outcome: 'ok' | 'refused';
  /** JSON object, exactly as MACed. */
  details: string;
  mac: Buffer;
}

const columns = 'seq, time, principal_id AS principalId, action, target_kind AS targetKind, target_id AS targetId, outcome, details, mac';

export function insertAuditRow(store: Store, row: AuditRow, subjects: readonly string[]): void {
  store.db
    .prepare(
      `INSERT INTO audit_log (seq, time, principal_id, action, target_kind, target_id, outcome, details, mac)
       VALUES (@seq, @time, @principalId, @action, @targetKind, @targetId, @outcome, @details, @mac)`,
    )
    .run(row);
  const subject = store.db.prepare('INSERT OR IGNORE INTO audit_subjects (principal_id, seq) VALUES (?, ?)');
  for (const id of subjects) subject.run(id, row.seq);
}

/** The newest entry, or undefined for an empty log. */
export function lastAuditRow(store: Store): AuditRow | undefined {
  return store.db.prepare(`SELECT ${columns} FROM audit_log ORDER BY seq DESC LIMIT 1`).get() as AuditRow | undefined;
}

export function findAuditRow(store: Store, seq: number): AuditRow | undefined {
  return store.db.prepare(`SELECT ${columns} FROM audit_log WHERE seq = ?`).get(seq) as AuditRow | undefined;
}

/** Entries after `afterSeq`, in order, at most `limit` (every entry when `subject` is null, else those about it). */
export function listAuditRows(store: Store, options: { afterSeq: number; limit: number; subject: string | null }): AuditRow[] {
  if (options.subject === null) {
    return store.db
      .prepare(`SELECT ${columns} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`)
      .all(options.afterSeq, options.limit) as AuditRow[];
  }
  return store.db
    .prepare(
      `SELECT ${columns.replace(/(^|, )(\w+)/g, '$1a.$2')} FROM audit_subjects s JOIN audit_log a ON a.seq = s.seq
       WHERE s.principal_id = ? AND s.seq > ? ORDER BY s.seq LIMIT ?`,
    )
    .all(options.subject, options.afterSeq, options.limit) as AuditRow[];
}

/** Every entry in seq order, one at a time (for verification of a log of any length). */
export function iterateAuditRows(store: Store): IterableIterator<AuditRow> {
  return store.db.prepare(`SELECT ${columns} FROM audit_log ORDER BY seq`).iterate() as IterableIterator<AuditRow>;
}
