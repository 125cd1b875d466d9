// Rows of the approvals table: the release decisions a trained model needs. Data access only; who
// must decide and what a decision allows live in src/governance/.
import type { Store } from './db.js';

export interface ApprovalRow {
  modelId: string;
  approverId: string;
  /** JSON array of the approver's datasets the model was trained on. */
  datasetIds: string;
  decision: 'approve' | 'reject' | null;
  reason: string | null;
  decidedAt: string | null;
}

const columns = 'model_id AS modelId, approver_id AS approverId, dataset_ids AS datasetIds, decision, reason, decided_at AS decidedAt';

export function insertApproval(store: Store, row: ApprovalRow): void {
  store.db
    .prepare(
      `INSERT INTO approvals (model_id, approver_id, dataset_ids, decision, reason, decided_at)
       VALUES (@modelId, @approverId, @datasetIds, @decision, @reason, @decidedAt)`,
    )
    .run(row);
}

/** The approvals of one model, by approver id. */
export function listApprovals(store: Store, modelId: string): ApprovalRow[] {
  return store.db.prepare(`SELECT ${columns} FROM approvals WHERE model_id = ? ORDER BY approver_id`).all(modelId) as ApprovalRow[];
}

/** Records a decision on a pending approval; false when there was none pending. */
export function decideApproval(
  store: Store,
  modelId: string,
  approverId: string,
  decision: 'approve' | 'reject',
  reason: string | null,
  decidedAt: string,
): boolean {
  return (
    store.db
      .prepare('UPDATE approvals SET decision = ?, reason = ?, decided_at = ? WHERE model_id = ? AND approver_id = ? AND decision IS NULL')
      .run(decision, reason, decidedAt, modelId, approverId).changes > 0
  );
}
