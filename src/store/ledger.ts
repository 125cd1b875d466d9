// Rows of the privacy ledger (privacy_charges). Data access only: what an event means and how events
// compose is src/privacy/; the rule that a charge is checked against every dataset's limit before
// any row is written lives in src/privacy/ledger.ts, which calls these inside one transaction.
import type { Store } from './db.js';

export type ChargeSourceKind = 'training' | 'evaluation' | 'metric';

export interface ChargeRow {
  id: string;
  datasetId: string;
  sourceKind: ChargeSourceKind;
  sourceId: string;
  /** Whose request caused it; null for charges written before schema version 7. */
  principalId: string | null;
  /** JSON of one PrivacyEvent. */
  event: string;
  createdAt: string;
}

const columns =
  'id, dataset_id AS datasetId, source_kind AS sourceKind, source_id AS sourceId, principal_id AS principalId, event, created_at AS ' +
  'createdAt';

export function insertCharge(store: Store, row: ChargeRow): void {
  store.db
    .prepare(
      `INSERT INTO privacy_charges (id, dataset_id, source_kind, source_id, principal_id, event, created_at)
       VALUES (@id, @datasetId, @sourceKind, @sourceId, @principalId, @event, @createdAt)`,
    )
    .run(row);
}

/** Every charge of a dataset, oldest first. */
export function listCharges(store: Store, datasetId: string): ChargeRow[] {
  return store.db.prepare(`SELECT ${columns} FROM privacy_charges WHERE dataset_id = ? ORDER BY id`).all(datasetId) as ChargeRow[];
}

/** Id of the dataset's newest charge (ids sort by time), or null: a version stamp of its ledger. */
export function lastChargeId(store: Store, datasetId: string): string | null {
  const row = store.db.prepare('SELECT max(id) AS id FROM privacy_charges WHERE dataset_id = ?').get(datasetId) as { id: string | null };
  return row.id;
}
