// Models: TorchScript archives uploaded by data scientists. A model is code that will touch private
// data, so it is accepted only after three gates, in this order: the TypeScript archive check (zip
// layout, pickles walked without executing them, storage sizes, no __setstate__), a first load and
// inspection by libtorch in a disposable, limited child process, and the operator allowlist. Only
// archives that passed all three are ever committed, and so ever loaded by pool workers. Who may see
// and use a model is its policy's (governance/); a trained model is also seen by the owners of the
// datasets it was trained on, and leaves only once every approval their policies asked for is given.

import type { Static } from 'typebox';
import type { TrainingCertificate } from '../enclave/training-certificate.js';
import { BastionError } from '../errors.js';
import { type Action, authorize, enforce, type ReleaseState, refuseUnknown, type UseContext } from '../governance/authorize.js';
import { type ModelPolicyInput, modelPolicyFrom, replacePolicy, requireKnownPrincipals } from '../governance/policy.js';
import type { Principal } from '../governance/principals.js';
import { type ModelTarget, modelTarget, releaseState } from '../governance/targets.js';
import type { ModelInspection } from '../native.js';
import type { ModelApprovalsSchema, ModelLineageSchema, ModelSchema } from '../schemas/artifacts.js';
import { decideApproval, insertApproval, listApprovals } from '../store/approvals.js';
import { deleteModelRow, findModelRow, insertModel, listModelRows, type ModelRow, updateModelPolicy } from '../store/artifacts.js';
import type { Store } from '../store/db.js';
import { openBlob, readBlob, removeBlob, type StagedBlob, type StagedUpload } from './blob-store.js';
import { checkTorchscriptArchive } from './formats/torchscript-archive.js';
import { decideModelPolicy } from './operator-policy.js';
import { runSandboxed } from './sandbox.js';
import type { SealedBlobReader } from './sealed-blob.js';
import { type ArtifactDeps, commitArtifact, refuseIfInUse } from './service.js';

export interface ModelFields {
  name: string;
  description: string;
  policy: ModelPolicyInput;
}

/**
 * Where a trained model came from: the training, its source model and datasets, and every figure of
 * its DP guarantee, so a released model can be audited without the server's database.
 */
export type ModelLineage = Static<typeof ModelLineageSchema>;

export type Model = Static<typeof ModelSchema>;

/** What the model check found, as stored and returned. */
export type ModelCheck = Model['check'];

/**
 * The `details` column: the check, and the lineage and co-owners of a trained model. A trained model's
 * details also hold its signed training certificate (src/enclave/training-certificate.ts).
 */
type ModelDetails = ModelCheck & { lineage?: ModelLineage; coOwnerIds?: string[]; certificate?: TrainingCertificate };

function coOwnersOf(row: ModelRow): string[] {
  return (JSON.parse(row.details) as ModelDetails).coOwnerIds ?? [];
}

/** The facts authorize() decides on for this model. */
export function modelTargetOf(store: Store, row: ModelRow): ModelTarget {
  return modelTarget(store, row, coOwnersOf(row));
}

function toModel(row: ModelRow, target: ModelTarget, viewer: Principal): Model {
  const { lineage, coOwnerIds, certificate: _certificate, ...stored } = JSON.parse(row.details) as ModelDetails;
  const check: ModelCheck = { ...stored, inputRanks: stored.inputRanks ?? [] };
  return {
    id: row.id,
    ownerId: row.ownerId,
    name: row.name,
    description: row.description,
    format: 'torchscript',
    sha256: row.sha256,
    sizeBytes: row.sizeBytes,
    createdAt: row.createdAt,
    check,
    ...(lineage ? { lineage } : {}),
    coOwnerIds: coOwnerIds ?? [],
    release: target.release,
    ...(viewer.id === row.ownerId ? { policy: target.policy } : {}),
  };
}

function summarize(inspection: ModelInspection, inputRanks: string[]): ModelCheck {
  return {
    inputRanks,
    methods: inspection.methods,
    parameters: inspection.parameters.map(({ name, shape, dtype, requiresGrad }) => ({ name, shape, dtype, requiresGrad })),
    buffers: inspection.buffers,
    parameterCount: inspection.parameters.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0),
    operators: (inspection.forward?.operators ?? []).map((o) => o.kind).sort(),
  };
}

/**
 * Checks a staged upload and, if it passes, commits it as a model owned by `owner`. Throws
 * UNPROCESSABLE_MODEL (422) naming every problem found; the staged blob is then discarded.
 */
export async function createModel(deps: ArtifactDeps, owner: Principal, fields: ModelFields, staged: StagedUpload): Promise<Model> {
  try {
    const bytes = await readBlob(deps.blobs, staged.identity, staged.file);
    await checkTorchscriptArchive(bytes, {
      kind: 'model',
      ...(deps.sandbox.maxInflatedBytes ? { maxInflatedBytes: deps.sandbox.maxInflatedBytes } : {}),
    });
    const inspection = await runSandboxed({ mode: 'inspect' }, bytes, { ...deps.sandbox, errorCode: 'UNPROCESSABLE_MODEL' });
    const { problems, inputRanks } = decideModelPolicy(inspection, inspection.batchAnalysis ?? undefined);
    if (problems.length > 0) {
      throw new BastionError('UNPROCESSABLE_MODEL', `The model is refused: ${problems.map((p) => p.message).join('; ')}`, {
        extensions: { problems },
      });
    }
    const policy = modelPolicyFrom(fields.policy);
    requireKnownPrincipals(deps.store, policy.readers, '/policy/readers');
    const row: ModelRow = {
      id: staged.identity.artifactId,
      ownerId: owner.id,
      name: fields.name,
      description: fields.description,
      sha256: staged.sha256,
      sizeBytes: staged.sizeBytes,
      details: JSON.stringify(summarize(inspection, inputRanks)),
      policy: JSON.stringify(policy),
      createdAt: new Date().toISOString(),
    };
    await commitArtifact(
      deps,
      [staged],
      () => {
        insertModel(deps.store, row);
        deps.audit.record({
          principalId: owner.id,
          action: 'model.create',
          target: { kind: 'model', id: row.id },
          outcome: 'ok',
          details: { name: row.name, sha256: row.sha256, sizeBytes: row.sizeBytes, policy },
        });
      },
      () => removeBlob(deps.blobs, staged.identity),
    );
    return toModel(row, modelTargetOf(deps.store, row), owner);
  } catch (err) {
    await staged.discard();
    throw err;
  }
}

/**
 * Refuses (UNPROCESSABLE_TRAINING, 422) to run `model` on inputs of these ranks (the sample dimension
 * included, one per input tensor) unless its forward was shown batch-independent at them. Uses only
 * public information (the catalogue's shapes), so it runs before anything is charged.
 */
export function requireBatchIndependence(model: Model, inputRanks: readonly number[]): void {
  const key = inputRanks.join(',');
  if (model.check.inputRanks.includes(key)) return;
  if (model.check.inputRanks.length === 0) {
    throw new BastionError(
      'UNPROCESSABLE_TRAINING',
      `Model ${model.id} was not shown to keep the samples of a batch apart (it was checked before that analysis existed, or at no ` +
        `input rank): upload it again`,
    );
  }
  throw new BastionError(
    'UNPROCESSABLE_TRAINING',
    `Model ${model.id} keeps the samples of a batch apart only for inputs of rank ${model.check.inputRanks.join(' or ')} ` +
      `(the sample dimension included); the dataset's inputs have rank ${key}`,
  );
}

export type ModelApprovals = Static<typeof ModelApprovalsSchema>;

/** A release approval a trained model needs from the owner of some of its datasets. */
export type ModelApproval = ModelApprovals['approvals'][number];

/**
 * Commits a model a training produced (staged, sealed and hashed by the pool worker) as an artifact of
 * `ownerId`: the same architecture as its source, so the source's check stands, plus its lineage, its
 * co-owners and the approvals its datasets' policies ask for (pending). `alsoInTransaction` runs in the
 * row's transaction (the training row naming its result).
 */
export async function createTrainedModel(
  deps: Pick<ArtifactDeps, 'store' | 'blobs' | 'audit'>,
  input: {
    ownerId: string;
    name: string;
    description: string;
    check: ModelCheck;
    lineage: ModelLineage;
    certificate: TrainingCertificate;
    coOwnerIds: string[];
    approvals: { approverId: string; datasetIds: string[] }[];
    staged: StagedBlob & { sha256: string };
  },
  alsoInTransaction: () => void,
): Promise<void> {
  const row: ModelRow = {
    id: input.staged.identity.artifactId,
    ownerId: input.ownerId,
    name: input.name,
    description: input.description,
    sha256: input.staged.sha256,
    sizeBytes: input.staged.sizeBytes,
    details: JSON.stringify({
      ...input.check,
      lineage: input.lineage,
      coOwnerIds: input.coOwnerIds,
      certificate: input.certificate,
    } satisfies ModelDetails),
    policy: JSON.stringify(modelPolicyFrom({})),
    createdAt: new Date().toISOString(),
  };
  await commitArtifact(
    deps,
    [input.staged],
    () => {
      insertModel(deps.store, row);
      for (const a of input.approvals) {
        insertApproval(deps.store, {
          modelId: row.id,
          approverId: a.approverId,
          datasetIds: JSON.stringify(a.datasetIds),
          decision: null,
          reason: null,
          decidedAt: null,
        });
      }
      deps.audit.record({
        principalId: input.ownerId,
        action: 'model.create',
        target: { kind: 'model', id: row.id },
        outcome: 'ok',
        details: {
          trainingId: input.lineage.trainingId,
          sha256: row.sha256,
          sizeBytes: row.sizeBytes,
          approvalsRequired: input.approvals.map((a) => a.approverId),
        },
        subjects: input.coOwnerIds,
      });
      alsoInTransaction();
    },
    () => removeBlob(deps.blobs, input.staged.identity),
  );
}

/** The models `viewer` may see (its own, those shared with it, trained models it co-owns), oldest first. */
export function listModels(deps: Pick<ArtifactDeps, 'store'>, viewer: Principal): Model[] {
  return listModelRows(deps.store)
    .map((row) => ({ row, target: modelTargetOf(deps.store, row) }))
    .filter(({ target }) => authorize(viewer, 'model.read', target).allowed)
    .map(({ row, target }) => toModel(row, target, viewer));
}

/**
 * The model row and its facts, once `principal` may do `action` on it (with `use` for an evaluation):
 * NOT_FOUND for an id it may not know, FORBIDDEN naming the rule otherwise; refusals are audited.
 */
function authorizedModel(
  deps: Pick<ArtifactDeps, 'store' | 'audit'>,
  principal: Principal,
  id: string,
  action: Action,
  use?: UseContext,
): { row: ModelRow; target: ModelTarget } {
  const row = findModelRow(deps.store, id);
  if (!row) refuseUnknown(deps, principal, action, 'model', id);
  const target = modelTargetOf(deps.store, row);
  enforce(deps, principal, action, target, use);
  return { row, target };
}

export function getModel(deps: Pick<ArtifactDeps, 'store' | 'audit'>, principal: Principal, id: string): Model {
  const { row, target } = authorizedModel(deps, principal, id, 'model.read');
  return toModel(row, target, principal);
}

/**
 * The model, once `principal` may train with it (`use` absent) or evaluate it as `use` says: its owner
 * or a reader, and for a trained model, released (an unreleased one: DP evaluations only).
 */
export function usableModel(
  deps: Pick<ArtifactDeps, 'store' | 'audit'>,
  principal: Principal,
  id: string,
  what: 'train' | 'evaluate',
  use?: UseContext,
): Model {
  const { row, target } = authorizedModel(deps, principal, id, what === 'train' ? 'model.train' : 'model.evaluate', use);
  return toModel(row, target, principal);
}

/** The model as stored, for the server's own use (a job that runs it); no access check. */
export function storedModel(deps: Pick<ArtifactDeps, 'store'>, id: string): Model | null {
  const row = findModelRow(deps.store, id);
  return row ? toModel(row, modelTargetOf(deps.store, row), { id: row.ownerId } as Principal) : null;
}

/** The model's TorchScript file, decrypted as it streams, for its owner once released (each download is audited). */
export async function openModelContent(
  deps: ArtifactDeps,
  principal: Principal,
  id: string,
): Promise<{ model: Model; content: SealedBlobReader }> {
  const { row, target } = authorizedModel(deps, principal, id, 'model.readContent');
  const content = await openBlob(deps.blobs, { artifactId: id, kind: 'model' });
  deps.audit.record({
    principalId: principal.id,
    action: 'model.download',
    target: { kind: 'model', id },
    outcome: 'ok',
    subjects: target.coOwnerIds,
  });
  return { model: toModel(row, target, principal), content };
}

/** Replaces the model's policy (its owner only; omitted fields take their defaults), effective for the next request. */
export function setModelPolicy(
  deps: Pick<ArtifactDeps, 'store' | 'audit'>,
  principal: Principal,
  id: string,
  input: ModelPolicyInput,
): Model {
  authorizedModel(deps, principal, id, 'model.setPolicy');
  const policy = modelPolicyFrom(input);
  requireKnownPrincipals(deps.store, policy.readers, '/readers');
  const row = replacePolicy(deps, {
    principalId: principal.id,
    target: { kind: 'model', id },
    policy,
    find: () => findModelRow(deps.store, id),
    write: (json) => updateModelPolicy(deps.store, id, json),
    subjects: coOwnersOf,
  });
  return toModel(row, modelTargetOf(deps.store, row), principal);
}

/**
 * Deletes the owner's model: the row first (so nothing can start using it), then the blob. A crash
 * between the two leaves an orphan blob, which the sweep at the next start removes.
 */
export async function deleteModel(deps: ArtifactDeps, principal: Principal, id: string): Promise<void> {
  const { target } = authorizedModel(deps, principal, id, 'model.delete');
  deps.store.transaction(() => {
    if (!findModelRow(deps.store, id)) throw new BastionError('NOT_FOUND', `No model with id ${id}`);
    refuseIfInUse(deps, 'model', id);
    deleteModelRow(deps.store, id);
    deps.audit.record({
      principalId: principal.id,
      action: 'model.delete',
      target: { kind: 'model', id },
      outcome: 'ok',
      subjects: target.coOwnerIds,
    });
  });
  await removeBlob(deps.blobs, { artifactId: id, kind: 'model' });
}

function approvalsOf(store: Store, id: string, release: ReleaseState): ModelApprovals {
  const approvals = listApprovals(store, id).map((a) => ({
    approverId: a.approverId,
    datasetIds: JSON.parse(a.datasetIds) as string[],
    decision: a.decision,
    reason: a.reason,
    decidedAt: a.decidedAt,
  }));
  return { modelId: id, release, approvals };
}

/**
 * The signed training certificate of a trained model, for whoever may see the model (it states hashes and
 * DP parameters, not weights). NOT_FOUND for an uploaded model, or one trained before certificates.
 */
export function getModelCertificate(deps: Pick<ArtifactDeps, 'store' | 'audit'>, principal: Principal, id: string): TrainingCertificate {
  const { row } = authorizedModel(deps, principal, id, 'model.read');
  const { certificate, lineage } = JSON.parse(row.details) as ModelDetails;
  if (!certificate) {
    throw new BastionError(
      'NOT_FOUND',
      lineage
        ? `Model ${id} was trained before this server signed training certificates`
        : `Model ${id} was uploaded, not trained here: it has no training certificate`,
    );
  }
  return certificate;
}

/** What release approvals the model needs, and which were given (anyone who may see the model). */
export function getModelApprovals(deps: Pick<ArtifactDeps, 'store' | 'audit'>, principal: Principal, id: string): ModelApprovals {
  const { target } = authorizedModel(deps, principal, id, 'model.read');
  return approvalsOf(deps.store, id, target.release);
}

/**
 * Records the decision of one approver: APPROVAL_CONFLICT (409) when the model needs no approval or
 * this approver already decided (a decision is final); FORBIDDEN for anyone else who sees the model.
 */
export function decideModelRelease(
  deps: Pick<ArtifactDeps, 'store' | 'audit'>,
  principal: Principal,
  id: string,
  input: { decision: 'approve' | 'reject'; reason?: string },
): ModelApprovals {
  const { target } = authorizedModel(deps, principal, id, 'model.read');
  if (target.approverIds.length === 0) {
    throw new BastionError('APPROVAL_CONFLICT', `Model ${id} needs no release approval: none of its datasets' policies asks for one`);
  }
  enforce(deps, principal, 'model.decideRelease', target);
  return deps.store.transaction(() => {
    const pending = listApprovals(deps.store, id).find((a) => a.approverId === principal.id);
    if (!pending || pending.decision !== null) {
      throw new BastionError(
        'APPROVAL_CONFLICT',
        `This principal already decided the release of model ${id} (${pending?.decision ?? 'unknown'}); a decision is final`,
      );
    }
    const reason = input.reason ?? null;
    decideApproval(deps.store, id, principal.id, input.decision, reason, new Date().toISOString());
    const release = releaseState(listApprovals(deps.store, id));
    deps.audit.record({
      principalId: principal.id,
      action: input.decision === 'approve' ? 'model.approveRelease' : 'model.rejectRelease',
      target: { kind: 'model', id },
      outcome: 'ok',
      details: { release, ...(reason !== null ? { reason } : {}) },
      subjects: [target.ownerId, ...target.coOwnerIds],
    });
    return approvalsOf(deps.store, id, release);
  });
}
