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
import { decideModelPolicy } from './operator-policy.js';
import { runSandboxed } from './sandbox.js';
import type { SealedBlobReader } from './sealed-blob.js';
import { commitArtifact, refuseIfInUse, requireOwner, type ArtifactDeps } from './service.js';

export interface ModelFields {
  name: string;
  description: string;
}

/** What the model check found, as stored and returned. */
export interface ModelCheck {
  methods: string[];
  parameters: Omit<ModelInspection['parameters'][number], 'contiguous'>[];
  buffers: ModelInspection['buffers'];
  /** Total elements of all parameters. */
  parameterCount: number;
  /** Operator kinds of the inlined forward graph, sorted. */
  operators: string[];
  /**
   * Input ranks (sample dimension included; comma-separated per forward input) at which forward was
   * shown batch-independent; empty for models checked before that analysis existed (upload again).
   */
  inputRanks: string[];
}

/**
 * Where a trained model came from: the training, its source model and datasets, and every figure of
 * its DP guarantee, so a released model can be audited without the server's database.
 */
export interface ModelLineage {
  trainingId: string;
  sourceModelId: string;
  datasetIds: string[];
  private: boolean;
  /** σ; 0 when not private. */
  noiseMultiplier: number;
  /** q; 0 when not private. */
  sampleRate: number;
  steps: number;
  epochs: number;
  expectedBatchSize: number;
  /** ε of the training at delta under accountant; null when not private. */
  epsilon: number | null;
  delta: number | null;
  accountant: 'rdp' | 'pld' | null;
  maxGradNorm: number | null;
  clipping: 'flat' | 'per-layer' | null;
  loss: string;
  /** The optimizer as requested: type, learningRate and its parameters. */
  optimizer: Record<string, unknown>;
  /** Version of the server code (package.json) that trained it. */
  codeVersion: string;
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
  /** Present on models produced by a training. */
  lineage?: ModelLineage;
}

/** The `details` column: the check, and the lineage of a trained model. */
type ModelDetails = ModelCheck & { lineage?: ModelLineage };

function toModel(row: ModelRow): Model {
  const { lineage, ...stored } = JSON.parse(row.details) as ModelDetails;
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
    await checkTorchscriptArchive(bytes, { kind: 'model', ...(deps.sandbox.maxInflatedBytes ? { maxInflatedBytes: deps.sandbox.maxInflatedBytes } : {}) });
    const inspection = await runSandboxed({ mode: 'inspect' }, bytes, { ...deps.sandbox, errorCode: 'UNPROCESSABLE_MODEL' });
    const { problems, inputRanks } = decideModelPolicy(inspection, inspection.batchAnalysis ?? undefined);
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
      details: JSON.stringify(summarize(inspection, inputRanks)),
      createdAt: new Date().toISOString(),
    };
    await commitArtifact(deps, [staged], () => insertModel(deps.store, row), () => removeBlob(deps.blobs, staged.identity));
    return toModel(row);
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
      `Model ${model.id} was not shown to keep the samples of a batch apart (it was checked before that analysis existed, or at no input rank): upload it again`,
    );
  }
  throw new BastionError(
    'UNPROCESSABLE_TRAINING',
    `Model ${model.id} keeps the samples of a batch apart only for inputs of rank ${model.check.inputRanks.join(' or ')} ` +
      `(the sample dimension included); the dataset's inputs have rank ${key}`,
  );
}

/**
 * Commits a model a training produced (staged, sealed and hashed by the pool worker) as an artifact of
 * `ownerId`: the same architecture as its source, so the source's check stands, plus its lineage.
 * `alsoInTransaction` runs in the row's transaction (the training row naming its result).
 */
export async function createTrainedModel(
  deps: ArtifactDeps,
  input: { ownerId: string; name: string; description: string; check: ModelCheck; lineage: ModelLineage; staged: StagedBlob & { sha256: string } },
  alsoInTransaction: () => void,
): Promise<Model> {
  const row: ModelRow = {
    id: input.staged.identity.artifactId,
    ownerId: input.ownerId,
    name: input.name,
    description: input.description,
    sha256: input.staged.sha256,
    sizeBytes: input.staged.sizeBytes,
    details: JSON.stringify({ ...input.check, lineage: input.lineage } satisfies ModelDetails),
    createdAt: new Date().toISOString(),
  };
  await commitArtifact(
    deps,
    [input.staged],
    () => {
      insertModel(deps.store, row);
      alsoInTransaction();
    },
    () => removeBlob(deps.blobs, input.staged.identity),
  );
  return toModel(row);
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
    refuseIfInUse(deps, 'model', id);
    deleteModelRow(deps.store, id);
  });
  await removeBlob(deps.blobs, { artifactId: id, kind: 'model' });
}

