// Rows of the models and datasets tables. Data access only: who may see or change an artifact, and
// how its blob is checked and sealed, live in src/artifacts/. `details` columns hold JSON written by
// the services; this module stores and returns it as text.
import type { Store } from './db.js';

export interface ModelRow {
  id: string;
  ownerId: string;
  name: string;
  description: string;
  sha256: string;
  sizeBytes: number;
  details: string;
  /** JSON ModelPolicy (src/governance/policy.ts). */
  policy: string;
  createdAt: string;
}

export interface DatasetRow {
  id: string;
  ownerId: string;
  name: string;
  description: string;
  format: 'torchscript' | 'safetensors' | 'csv';
  sha256: string;
  sizeBytes: number;
  privacyLimit: number;
  delta: number;
  sampleCount: number;
  details: string;
  /** JSON DatasetPolicy (src/governance/policy.ts). */
  policy: string;
  /** 64 hex digits: the salt of the dataset's commitment in training certificates (owner only). */
  commitmentSalt: string;
  createdAt: string;
}

const modelColumns =
  'id, owner_id AS ownerId, name, description, sha256, size_bytes AS sizeBytes, details, policy, created_at AS createdAt';
const datasetColumns =
  'id, owner_id AS ownerId, name, description, format, sha256, size_bytes AS sizeBytes, privacy_limit AS privacyLimit, ' +
  'delta, sample_count AS sampleCount, details, policy, commitment_salt AS commitmentSalt, created_at AS createdAt';

export function insertModel(store: Store, row: ModelRow): void {
  store.db
    .prepare(
      `INSERT INTO models (id, owner_id, name, description, sha256, size_bytes, details, policy, created_at)
       VALUES (@id, @ownerId, @name, @description, @sha256, @sizeBytes, @details, @policy, @createdAt)`,
    )
    .run(row);
}

export function insertDataset(store: Store, row: DatasetRow): void {
  store.db
    .prepare(
      `INSERT INTO datasets (id, owner_id, name, description, format, sha256, size_bytes, privacy_limit, delta,
                             sample_count, details, policy, commitment_salt, created_at)
       VALUES (@id, @ownerId, @name, @description, @format, @sha256, @sizeBytes, @privacyLimit, @delta,
               @sampleCount, @details, @policy, @commitmentSalt, @createdAt)`,
    )
    .run(row);
}

/** Every model, oldest first (UUID v7 ids sort by creation); who may see which is src/governance/. */
export function listModelRows(store: Store): ModelRow[] {
  return store.db.prepare(`SELECT ${modelColumns} FROM models ORDER BY id`).all() as ModelRow[];
}

export function findModelRow(store: Store, id: string): ModelRow | undefined {
  return store.db.prepare(`SELECT ${modelColumns} FROM models WHERE id = ?`).get(id) as ModelRow | undefined;
}

/** Every dataset, oldest first. */
export function listDatasetRows(store: Store): DatasetRow[] {
  return store.db.prepare(`SELECT ${datasetColumns} FROM datasets ORDER BY id`).all() as DatasetRow[];
}

export function findDatasetRow(store: Store, id: string): DatasetRow | undefined {
  return store.db.prepare(`SELECT ${datasetColumns} FROM datasets WHERE id = ?`).get(id) as DatasetRow | undefined;
}

export function updateDatasetPolicy(store: Store, id: string, policy: string): void {
  store.db.prepare('UPDATE datasets SET policy = ? WHERE id = ?').run(policy, id);
}

export function updateModelPolicy(store: Store, id: string, policy: string): void {
  store.db.prepare('UPDATE models SET policy = ? WHERE id = ?').run(policy, id);
}

export function deleteModelRow(store: Store, id: string): boolean {
  return store.db.prepare('DELETE FROM models WHERE id = ?').run(id).changes > 0;
}

export function deleteDatasetRow(store: Store, id: string): boolean {
  return store.db.prepare('DELETE FROM datasets WHERE id = ?').run(id).changes > 0;
}

/** Ids of every model and dataset, for sweeping blobs whose row never committed. */
export function allArtifactIds(store: Store): Set<string> {
  const rows = store.db.prepare('SELECT id FROM models UNION ALL SELECT id FROM datasets').all() as { id: string }[];
  return new Set(rows.map((r) => r.id));
}
