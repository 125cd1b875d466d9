// Models: TorchScript archives uploaded by data scientists. A model is code that will touch private
// data, so it is accepted only after three gates, in this order: the TypeScript archive check (zip
// layout, pickles walked without executing them, storage sizes, no __setstate__), a first load and
// inspection by libtorch in a disposable, limited child process, and the operator allowlist. Only
// archives that passed all three are ever committed, and so ever loaded by pool workers.
import type { Principal } from '../governance/principals.js';
import { BastionError } from '../errors.js';
import type { ModelInspection } from '../native.js';
import { deleteModelRow, findModelRow, insertModel, listModelRows, type ModelRow } from '../store/artifacts.js';
import { openBlob, readBlob, removeBlob, type StagedBlob, type StagedUpload } from './blob-store.js';
import { checkTorchscriptArchive } from './formats/torchscript-archive.js';
import { checkModelPolicy } from './operator-policy.js';
import { runSandboxed } from './sandbox.js';
import type { SealedBlobReader } from './sealed-blob.js';
import { commitArtifact, requireOwner, type ArtifactDeps } from './service.js';

export interface ModelFields {
  name: string;
  description: string;
}

/** What the model check found, as stored and returned. */
export interface ModelCheck {
  methods: string[];
  parameters: ModelInspection['parameters'];
  buffers: ModelInspection['buffers'];
  /** Total elements of all parameters. */
  parameterCount: number;
  /** Operator kinds of the inlined forward graph, sorted. */
  operators: string[];
}

export interface Model {
  id: string;
  ownerId: string;
  name: string;
  description: string;
  format: 'torchscript';
  sha256: string;
  sizeBytes: number;
  createdAt: string;
  check: ModelCheck;
}

function toModel(row: ModelRow): Model {
  return {
    id: row.id,
    ownerId: row.ownerId,
    name: row.name,
    description: row.description,
    format: 'torchscript',
    sha256: row.sha256,
    sizeBytes: row.sizeBytes,
    createdAt: row.createdAt,
    check: JSON.parse(row.details) as ModelCheck,
  };
}

function summarize(inspection: ModelInspection): ModelCheck {
  return {
    methods: inspection.methods,
    parameters: inspection.parameters,
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
    await checkTorchscriptArchive(bytes, { kind: 'model' });
    const inspection = (await runSandboxed({ mode: 'inspect' }, bytes, { ...deps.sandbox, errorCode: 'UNPROCESSABLE_MODEL' })) as ModelInspection;
    const problems = checkModelPolicy(inspection);
    if (problems.length > 0) {
      throw new BastionError('UNPROCESSABLE_MODEL', `The model is refused: ${problems.map((p) => p.message).join('; ')}`, {
        extensions: { problems },
      });
    }
    const row: ModelRow = {
      id: staged.identity.artifactId,
      ownerId: owner.id,
      name: fields.name,
      description: fields.description,
      sha256: staged.sha256,
      sizeBytes: staged.sizeBytes,
      details: JSON.stringify(summarize(inspection)),
      createdAt: new Date().toISOString(),
    };
    await commitArtifact(deps, [staged], () => insertModel(deps.store, row), () => removeBlob(deps.blobs, staged.identity));
    return toModel(row);
  } catch (err) {
    await staged.discard();
    throw err;
  }
}

/** The caller's own models, oldest first. */
export function listModels(deps: Pick<ArtifactDeps, 'store'>, principal: Principal): Model[] {
  return listModelRows(deps.store, principal.id).map(toModel);
}

export function getModel(deps: Pick<ArtifactDeps, 'store'>, principal: Principal, id: string): Model {
  return toModel(requireOwner(findModelRow(deps.store, id), principal, 'model', id));
}

/** The model's TorchScript file, decrypted as it streams, for its owner. */
export async function openModelContent(deps: ArtifactDeps, principal: Principal, id: string): Promise<{ model: Model; content: SealedBlobReader }> {
  const model = getModel(deps, principal, id);
  const content = await openBlob(deps.blobs, { artifactId: id, kind: 'model' });
  return { model, content };
}

/**
 * Deletes the owner's model: the row first (so nothing can start using it), then the blob. A crash
 * between the two leaves an orphan blob, which the sweep at the next start removes.
 */
export async function deleteModel(deps: ArtifactDeps, principal: Principal, id: string): Promise<void> {
  deps.store.transaction(() => {
    requireOwner(findModelRow(deps.store, id), principal, 'model', id);
    deleteModelRow(deps.store, id);
  });
  await removeBlob(deps.blobs, { artifactId: id, kind: 'model' });
}

