// Rows of the trainings table. Data access only: what a job may do next (the queue, its lifecycle, who
// may see it) lives in src/training/jobs.ts; the plan and request are stored as JSON written there.
import type { Store } from './db.js';

export type TrainingStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const activeStatuses: readonly TrainingStatus[] = ['queued', 'running'];

export interface TrainingRow {
  id: string;
  ownerId: string;
  modelId: string;
  /** JSON array of dataset ids. */
  datasetIds: string;
  status: TrainingStatus;
  /** JSON of the accepted request. */
  request: string;
  /** JSON of the TrainingPlan. */
  plan: string;
  step: number;
  checkpointStep: number | null;
  samplesPerSec: number | null;
  error: string | null;
  resultModelId: string | null;
  /** JSON array of the released per-epoch metrics (TrainingMetric in src/training/metrics.ts). */
  metrics: string;
  /**
   * JSON of the samples a private training dropped per dataset id and reason (DroppedCounts in
   * src/training/runner.ts), null until the job recorded an outcome. Data-derived: each dataset's owner
   * may see its own entry, nobody else.
   */
  dropped: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

const columns =
  'id, owner_id AS ownerId, model_id AS modelId, dataset_ids AS datasetIds, status, request, plan, step, ' +
  'checkpoint_step AS checkpointStep, samples_per_sec AS samplesPerSec, error, result_model_id AS resultModelId, metrics, dropped, ' +
  'created_at AS createdAt, started_at AS startedAt, finished_at AS finishedAt';

export function insertTraining(store: Store, row: TrainingRow): void {
  store.db
    .prepare(
      `INSERT INTO trainings (id, owner_id, model_id, dataset_ids, status, request, plan, step, checkpoint_step, samples_per_sec,
                              error, result_model_id, metrics, dropped, created_at, started_at, finished_at)
       VALUES (@id, @ownerId, @modelId, @datasetIds, @status, @request, @plan, @step, @checkpointStep, @samplesPerSec,
               @error, @resultModelId, @metrics, @dropped, @createdAt, @startedAt, @finishedAt)`,
    )
    .run(row);
}

export function findTrainingRow(store: Store, id: string): TrainingRow | undefined {
  return store.db.prepare(`SELECT ${columns} FROM trainings WHERE id = ?`).get(id) as TrainingRow | undefined;
}

/** Every training, oldest first; who may see which is src/governance/. */
export function listTrainingRows(store: Store): TrainingRow[] {
  return store.db.prepare(`SELECT ${columns} FROM trainings ORDER BY id`).all() as TrainingRow[];
}

/** Queued or running trainings of one principal, oldest first. */
export function activeTrainingsOf(store: Store, ownerId: string): TrainingRow[] {
  return store.db
    .prepare(`SELECT ${columns} FROM trainings WHERE owner_id = ? AND status IN ('queued', 'running') ORDER BY id`)
    .all(ownerId) as TrainingRow[];
}

/** Trainings in one status, oldest first (the queue's order). */
export function listTrainingRowsByStatus(store: Store, status: TrainingStatus): TrainingRow[] {
  return store.db.prepare(`SELECT ${columns} FROM trainings WHERE status = ? ORDER BY id`).all(status) as TrainingRow[];
}

type Patch = Partial<
  Pick<
    TrainingRow,
    'status' | 'step' | 'checkpointStep' | 'samplesPerSec' | 'error' | 'resultModelId' | 'metrics' | 'dropped' | 'startedAt' | 'finishedAt'
  >
>;

const patchColumns: Record<keyof Patch, string> = {
  status: 'status',
  step: 'step',
  checkpointStep: 'checkpoint_step',
  samplesPerSec: 'samples_per_sec',
  error: 'error',
  resultModelId: 'result_model_id',
  metrics: 'metrics',
  dropped: 'dropped',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
};

export function updateTraining(store: Store, id: string, patch: Patch): void {
  const keys = (Object.keys(patch) as (keyof Patch)[]).filter((k) => patch[k] !== undefined);
  if (keys.length === 0) return;
  store.db.prepare(`UPDATE trainings SET ${keys.map((k) => `${patchColumns[k]} = @${k}`).join(', ')} WHERE id = @id`).run({ ...patch, id });
}

/** Ids of queued or running trainings that use this model or dataset. */
export function activeTrainingsUsing(store: Store, artifactId: string): string[] {
  const rows = store.db
    .prepare(
      `SELECT id FROM trainings WHERE status IN ('queued', 'running')
         AND (model_id = @id OR EXISTS (SELECT 1 FROM json_each(trainings.dataset_ids) WHERE value = @id)) ORDER BY id`,
    )
    .all({ id: artifactId }) as { id: string }[];
  return rows.map((r) => r.id);
}

/** Ids of queued or running trainings: their checkpoints are live blobs. */
export function activeTrainingIds(store: Store): string[] {
  return (store.db.prepare(`SELECT id FROM trainings WHERE status IN ('queued', 'running')`).all() as { id: string }[]).map((r) => r.id);
}
