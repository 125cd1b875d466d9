// The facts authorize() decides on, read from the rows: a dataset's owner and policy; a model's owner,
// policy, co-owners and release state (from its approvals); a training's owner and its datasets' owners.

import { type ApprovalRow, listApprovals } from '../store/approvals.js';
import type { DatasetRow, ModelRow } from '../store/artifacts.js';
import { findDatasetRow } from '../store/artifacts.js';
import type { Store } from '../store/db.js';
import type { TrainingRow } from '../store/trainings.js';
import type { ReleaseState, Target } from './authorize.js';
import { parseDatasetPolicy, parseModelPolicy } from './policy.js';

export type DatasetTarget = Extract<Target, { kind: 'dataset' }>;
export type ModelTarget = Extract<Target, { kind: 'model' }>;
export type JobTarget = Extract<Target, { kind: 'training' | 'evaluation' }>;

export function datasetTarget(row: DatasetRow): DatasetTarget {
  return { kind: 'dataset', id: row.id, ownerId: row.ownerId, policy: parseDatasetPolicy(row.policy) };
}

/** released: every approval given (or none asked); rejected: any rejection (final); else pending. */
export function releaseState(approvals: readonly ApprovalRow[]): ReleaseState {
  if (approvals.some((a) => a.decision === 'reject')) return 'rejected';
  return approvals.every((a) => a.decision === 'approve') ? 'released' : 'pending';
}

/** `coOwnerIds`: the owners of the datasets a trained model was trained on (stored with the model). */
export function modelTarget(store: Store, row: ModelRow, coOwnerIds: readonly string[]): ModelTarget {
  const approvals = listApprovals(store, row.id);
  return {
    kind: 'model',
    id: row.id,
    ownerId: row.ownerId,
    policy: parseModelPolicy(row.policy),
    coOwnerIds,
    release: releaseState(approvals),
    pendingApproverIds: approvals.filter((a) => a.decision === null).map((a) => a.approverId),
    approverIds: approvals.map((a) => a.approverId),
  };
}

/** Owners of the given datasets that still exist, without repeats. */
export function datasetOwners(store: Store, datasetIds: readonly string[]): string[] {
  const owners = new Set<string>();
  for (const id of datasetIds) {
    const row = findDatasetRow(store, id);
    if (row) owners.add(row.ownerId);
  }
  return [...owners];
}

export function trainingTarget(store: Store, row: TrainingRow): JobTarget {
  return {
    kind: 'training',
    id: row.id,
    ownerId: row.ownerId,
    datasetOwnerIds: datasetOwners(store, JSON.parse(row.datasetIds) as string[]),
  };
}
