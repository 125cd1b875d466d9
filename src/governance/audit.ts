// The audit log: every state change (principals, artifacts, policies, trainings, evaluations, approvals,
// ledger charges) and every refused access, as one entry {seq, time, principalId, action, target,
// outcome, details}. Entries are chained by HMAC-SHA256 under the key provider's "audit" key: each
// entry's MAC covers the previous entry's MAC and its own fields, so editing, removing or reordering
// an entry breaks every MAC after it. An entry is written in the same store transaction as the change
// it records, so there is never a change without its entry, nor an entry without its change.
import { createHmac } from 'node:crypto';
import type { Store } from '../store/db.js';
import { insertAuditRow, lastAuditRow, type AuditRow } from '../store/audit.js';

export type AuditTargetKind = 'principal' | 'dataset' | 'model' | 'training' | 'evaluation';

export interface AuditTarget {
  kind: AuditTargetKind;
  id: string;
}

export type AuditOutcome = 'ok' | 'refused';

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

export interface AuditEntry {
  seq: number;
  time: string;
  principalId: string | null;
  action: string;
  target: AuditTarget | null;
  outcome: AuditOutcome;
  details: Record<string, unknown>;
}

export interface AuditLog {
  /**
   * Appends one entry and returns its seq. Called inside a store transaction, it commits or rolls back
   * with the change it records; called outside one, it is its own transaction.
   */
  record(entry: AuditInput): number;
}

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

export interface AuditLogOptions {
  highWaterFile?: string | null;
  /** Test hook: runs after the entry is written, before the transaction commits (a crash there must lose both). */
  afterAppend?: (seq: number) => void;
}

/** The audit log of `store`, chained under `key` (KeyProvider.deriveKey(KeyPurpose.AUDIT)). */
export function openAuditLog(store: Store, key: Buffer, options: AuditLogOptions = {}): AuditLog {
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
  return {
    record: (entry) => (store.db.inTransaction ? append(entry) : store.transaction(() => append(entry))),
  };
}
