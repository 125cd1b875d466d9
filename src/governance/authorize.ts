// The one policy decision: authorize(principal, action, target) says whether a principal may do an
// action on a target, and if not, whether it may know the target exists (404) or may see it but not do
// this (403, naming the rule). It is pure: the facts it needs (owners, policies, release state) come
// with the target. Every route and service asks it; none has a check of its own. enforce() is the form
// services call: it records a refusal in the audit log and throws the problem.
//
// The rules, in words:
// - A dataset is seen by its owner and the trainers its policy names; they may train and evaluate on it
//   within its policy (ε per training, non-private use, evaluation). Its content, ledger details,
//   policy and deletion are the owner's.
// - A model is seen by its owner, the readers its policy names and, for a trained model, the owners of
//   the datasets it was trained on (co-owners: metadata, lineage and approvals only). Owner and readers
//   may train and evaluate with it. Only the owner may download it, and a trained model only once every
//   approval its datasets' policies asked for was given; until then it may be evaluated only with DP and
//   not trained further.
// - A training is seen and may be cancelled by whoever started it, the owners of the datasets it reads,
//   and admins; only whoever started it sees its released results (metrics).
// - Admins manage principals, read the whole audit log and the server's metrics (operational figures
//   only: counts, sizes, timing). They own nothing they did not upload and have no other right on
//   anyone's datasets or models.
import { BastionError } from '../errors.js';
import type { Store } from '../store/db.js';
import type { AuditInput, AuditLog, AuditTargetKind } from './audit.js';
import type { DatasetPolicy, ModelPolicy } from './policy.js';
import type { Principal } from './principals.js';

export type ReleaseState = 'released' | 'pending' | 'rejected';

export type Target =
  | { kind: 'dataset'; id: string; ownerId: string; policy: DatasetPolicy }
  | {
      kind: 'model';
      id: string;
      ownerId: string;
      policy: ModelPolicy;
      /** Owners of the datasets a trained model was trained on; empty for an uploaded model. */
      coOwnerIds: readonly string[];
      release: ReleaseState;
      /** Approvers still to decide (for the refusal's detail). */
      pendingApproverIds: readonly string[];
      /** The approvers this model's datasets asked for. */
      approverIds: readonly string[];
    }
  | { kind: 'training'; id: string; ownerId: string; datasetOwnerIds: readonly string[] }
  | { kind: 'evaluation'; id: string; ownerId: string; datasetOwnerIds: readonly string[] }
  | { kind: 'principals' }
  | { kind: 'audit' }
  | { kind: 'metrics' };

/** What a use of data asks for: whether it is private, and the ε it spends. */
export interface UseContext {
  private: boolean;
  /** ε the training (metrics included) or evaluation spends; null when not private. */
  epsilon: number | null;
}

export type Action =
  | 'dataset.read'
  | 'dataset.readContent'
  | 'dataset.readLedgerDetails'
  | 'dataset.setPolicy'
  | 'dataset.delete'
  | 'dataset.train'
  | 'dataset.evaluate'
  | 'model.read'
  | 'model.readContent'
  | 'model.setPolicy'
  | 'model.delete'
  | 'model.train'
  | 'model.evaluate'
  | 'model.decideRelease'
  | 'job.read'
  | 'job.readResults'
  | 'job.cancel'
  | 'principals.manage'
  | 'audit.readAll'
  | 'metrics.read';

/** What a decision needs to know of the principal. */
type Viewer = Pick<Principal, 'id' | 'role'>;

export type Decision = { allowed: true } | { allowed: false; status: 403 | 404; rule: string; detail: string };

const allow: Decision = { allowed: true };
const hidden = (rule: string, detail: string): Decision => ({ allowed: false, status: 404, rule, detail });
const forbid = (rule: string, detail: string): Decision => ({ allowed: false, status: 403, rule, detail });

const fmt = (x: number): string => String(Number(x.toPrecision(4)));

function datasetVisible(p: Viewer, t: Extract<Target, { kind: 'dataset' }>): boolean {
  return p.id === t.ownerId || t.policy.trainers === 'everyone' || t.policy.trainers.includes(p.id);
}

function useOfDataset(
  p: Viewer,
  t: Extract<Target, { kind: 'dataset' }>,
  use: UseContext | undefined,
  what: 'training' | 'evaluation',
): Decision {
  if (what === 'evaluation' && p.id !== t.ownerId && !t.policy.allowEvaluation) {
    return forbid('dataset.policy.allowEvaluation', `The policy of dataset ${t.id} does not allow evaluations`);
  }
  if (use && !use.private && !t.policy.allowNonPrivate) {
    return forbid(
      'dataset.policy.allowNonPrivate',
      what === 'training'
        ? `Non-private training needs every owner's consent; the policy of dataset ${t.id} does not allow it`
        : `The policy of dataset ${t.id} does not allow non-private use: give epsilon for a DP evaluation`,
    );
  }
  const max = t.policy.maxEpsilonPerTraining;
  if (use && use.epsilon !== null && max !== undefined && use.epsilon > max) {
    return forbid(
      'dataset.policy.maxEpsilonPerTraining',
      `This ${what} would spend ε = ${fmt(use.epsilon)}; the policy of dataset ${t.id} allows at ` +
        `most ε = ${max} per ${what === 'training' ? 'training' : 'evaluation'}`,
    );
  }
  return allow;
}

function decideDataset(p: Viewer, action: Action, t: Extract<Target, { kind: 'dataset' }>, use?: UseContext): Decision {
  if (!datasetVisible(p, t)) return hidden('dataset.policy.trainers', `No dataset with id ${t.id}`);
  const owner = p.id === t.ownerId;
  switch (action) {
    case 'dataset.read':
      return allow;
    case 'dataset.readContent':
      return owner ? allow : forbid('dataset.owner', `Only the owner of dataset ${t.id} may download its content`);
    case 'dataset.readLedgerDetails':
      return owner ? allow : forbid('dataset.owner', `Only the owner of dataset ${t.id} sees who caused each charge`);
    case 'dataset.setPolicy':
      return owner ? allow : forbid('dataset.owner', `Only the owner of dataset ${t.id} may change its policy`);
    case 'dataset.delete':
      return owner ? allow : forbid('dataset.owner', `Only the owner of dataset ${t.id} may delete it`);
    case 'dataset.train':
      return useOfDataset(p, t, use, 'training');
    case 'dataset.evaluate':
      return useOfDataset(p, t, use, 'evaluation');
    default:
      return forbid('action', `${action} does not apply to a dataset`);
  }
}

function decideModel(p: Viewer, action: Action, t: Extract<Target, { kind: 'model' }>, use?: UseContext): Decision {
  const owner = p.id === t.ownerId;
  const reader = owner || t.policy.readers.includes(p.id);
  if (!reader && !t.coOwnerIds.includes(p.id)) return hidden('model.policy.readers', `No model with id ${t.id}`);
  const unreleased =
    t.release === 'rejected'
      ? `the release of model ${t.id} was rejected`
      : `model ${t.id} awaits the release approval of ${t.pendingApproverIds.join(', ')}`;
  switch (action) {
    case 'model.read':
      return allow;
    case 'model.readContent':
      if (!owner) return forbid('model.owner', `Only the owner of model ${t.id} may download it`);
      return t.release === 'released' ? allow : forbid(`model.release.${t.release}`, `The model cannot be downloaded: ${unreleased}`);
    case 'model.setPolicy':
      return owner ? allow : forbid('model.owner', `Only the owner of model ${t.id} may change its policy`);
    case 'model.delete':
      return owner ? allow : forbid('model.owner', `Only the owner of model ${t.id} may delete it`);
    case 'model.train':
      if (!reader) return forbid('model.policy.readers', `Model ${t.id} is not shared with this principal for training`);
      return t.release === 'released' ? allow : forbid(`model.release.${t.release}`, `The model cannot be trained further: ${unreleased}`);
    case 'model.evaluate':
      if (!reader) return forbid('model.policy.readers', `Model ${t.id} is not shared with this principal for evaluation`);
      if (t.release !== 'released' && use && !use.private) {
        return forbid(`model.release.${t.release}`, `Only a DP evaluation may use this model: ${unreleased}`);
      }
      return allow;
    case 'model.decideRelease':
      return t.approverIds.includes(p.id)
        ? allow
        : forbid(
            'model.release.approvers',
            `Only the owners of datasets whose policy asks for approval decide the release of model ${t.id}`,
          );
    default:
      return forbid('action', `${action} does not apply to a model`);
  }
}

function decideJob(p: Viewer, action: Action, t: Extract<Target, { kind: 'training' | 'evaluation' }>): Decision {
  const owner = p.id === t.ownerId;
  const steward = owner || t.datasetOwnerIds.includes(p.id) || p.role === 'admin';
  if (!steward) return hidden(`${t.kind}.visibility`, `No ${t.kind} with id ${t.id}`);
  switch (action) {
    case 'job.read':
    case 'job.cancel':
      return allow;
    case 'job.readResults':
      return owner ? allow : forbid(`${t.kind}.owner`, `Only whoever started ${t.kind} ${t.id} sees what it released`);
    default:
      return forbid('action', `${action} does not apply to a ${t.kind}`);
  }
}

/** Whether `principal` may do `action` on `target` (with `use` for a training or evaluation on data). */
export function authorize(principal: Pick<Principal, 'id' | 'role'>, action: Action, target: Target, use?: UseContext): Decision {
  switch (target.kind) {
    case 'dataset':
      return decideDataset(principal, action, target, use);
    case 'model':
      return decideModel(principal, action, target, use);
    case 'training':
    case 'evaluation':
      return decideJob(principal, action, target);
    case 'principals':
      if (action !== 'principals.manage') return forbid('action', `${action} does not apply to principals`);
      return principal.role === 'admin' ? allow : forbid('admin', 'Only admin principals may manage principals');
    case 'audit':
      if (action !== 'audit.readAll') return forbid('action', `${action} does not apply to the audit log`);
      return principal.role === 'admin' ? allow : forbid('admin', 'Only admin principals read the whole audit log');
    case 'metrics':
      if (action !== 'metrics.read') return forbid('action', `${action} does not apply to the metrics`);
      return principal.role === 'admin' ? allow : forbid('admin', 'Only admin principals read the server metrics');
  }
}

/** Whom an entry about `target` concerns besides the actor (they may read it in the audit log). */
export function targetSubjects(target: Target): string[] {
  switch (target.kind) {
    case 'dataset':
      return [target.ownerId];
    case 'model':
      return [target.ownerId, ...target.coOwnerIds];
    case 'training':
    case 'evaluation':
      return [target.ownerId, ...target.datasetOwnerIds];
    default:
      return [];
  }
}

export interface GovernanceDeps {
  store: Store;
  audit: AuditLog;
}

/**
 * A refusal is recorded whatever happens to the request: inside a store transaction (which the refusal
 * is about to roll back), it is written once that transaction has ended.
 */
function recordRefusal(deps: GovernanceDeps, entry: AuditInput): void {
  if (deps.store.db.inTransaction) queueMicrotask(() => deps.audit.record(entry));
  else deps.audit.record(entry);
}

function auditTarget(target: Target): { kind: AuditTargetKind; id: string } | null {
  return 'id' in target ? { kind: target.kind, id: target.id } : null;
}

/**
 * authorize(), for services: returns when allowed; otherwise appends a refused entry to the audit log
 * and throws NOT_FOUND (the principal may not know the target exists) or FORBIDDEN naming the rule.
 */
export function enforce(deps: GovernanceDeps, principal: Principal, action: Action, target: Target, use?: UseContext): void {
  const decision = authorize(principal, action, target, use);
  if (decision.allowed) return;
  recordRefusal(deps, {
    principalId: principal.id,
    action,
    target: auditTarget(target),
    outcome: 'refused',
    // A 404's entry says no more than a 404 for an id that names nothing: the actor reads its own entries,
    // and the rule would tell it the target exists.
    details:
      decision.status === 404
        ? { status: 404 }
        : { status: decision.status, rule: decision.rule, ...(use ? { private: use.private, epsilon: use.epsilon } : {}) },
    subjects: targetSubjects(target),
  });
  throw new BastionError(
    decision.status === 404 ? 'NOT_FOUND' : 'FORBIDDEN',
    decision.detail,
    decision.status === 403 ? { extensions: { rule: decision.rule } } : {},
  );
}

/** A refused access to an id that names nothing (so no owner to tell): audited, then NOT_FOUND. */
export function refuseUnknown(deps: GovernanceDeps, principal: Principal, action: Action, kind: AuditTargetKind, id: string): never {
  recordRefusal(deps, { principalId: principal.id, action, target: { kind, id }, outcome: 'refused', details: { status: 404 } });
  throw new BastionError('NOT_FOUND', `No ${kind} with id ${id}`);
}
