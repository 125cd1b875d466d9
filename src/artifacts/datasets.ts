// Datasets: uploaded by data owners in one of three formats and checked, once, into the canonical
// named-tensor form (formats/canonical.ts) that training reads: a safetensors upload is its own
// canonical form (a layout points into it), CSV and TorchScript uploads are converted into a second
// sealed blob. The upload itself is always kept (sealed), so the owner can download exactly what they sent. A TorchScript dataset passes the same gates as a
// model (TypeScript archive check, then a disposable child process is the first to load it); CSV and
// safetensors are parsed by our own code in a pool worker. The owner's privacy limit ε and δ are
// fixed at upload: the ledger (privacy/) charges against them. Its policy (governance/policy.ts) says
// who else may see and use it; the owner alone may change it, effective for the next request.
import { randomBytes } from 'node:crypto';
import type { Static } from 'typebox';
import { BastionError, type FieldError } from '../errors.js';
import { type Action, authorize, enforce, refuseUnknown, type UseContext } from '../governance/authorize.js';
import { type DatasetPolicyInput, datasetPolicyFrom, replacePolicy, requireKnownPrincipals } from '../governance/policy.js';
import type { Principal } from '../governance/principals.js';
import { datasetTarget } from '../governance/targets.js';
import type { ExtractedTensor } from '../native.js';
import type { DatasetSchema } from '../schemas/artifacts.js';
import {
  type DatasetRow,
  deleteDatasetRow,
  findDatasetRow,
  insertDataset,
  listDatasetRows,
  updateDatasetPolicy,
} from '../store/artifacts.js';
import { DTYPES } from '../vocabulary.js';
import { openBlob, readBlob, removeBlob, type StagedBlob, type StagedUpload, stagedBlob } from './blob-store.js';
import type { ConvertOutput } from './convert.js';
import type { DatasetLayout, DatasetSummary } from './formats/canonical.js';
import { detectDatasetFormat } from './formats/detect.js';
import { checkTorchscriptArchive } from './formats/torchscript-archive.js';
import { runSandboxed } from './sandbox.js';
import type { SealedBlobReader } from './sealed-blob.js';
import { type ArtifactDeps, commitArtifact, refuseIfInUse, stageUpload } from './service.js';
import { createStreamCheck } from './stream-check.js';

export const datasetFormats = ['torchscript', 'safetensors', 'csv'] as const;
export type DatasetFormat = (typeof datasetFormats)[number];

export interface DatasetFields {
  name: string;
  description: string;
  /** Detected from the file's first bytes when absent. */
  format?: DatasetFormat;
  /** ε the owner allows over all trainings; a TorchScript file's own `privacy_limit` when absent. */
  privacyLimit?: number;
  /** δ; default min(1e-5, 1 / (10 · samples)). Must be below 1 / samples. */
  delta?: number;
  /** CSV only: the label column (default `label`, `labels`, `target` or `y`, else the last). */
  labelColumn?: string;
  /** Who else may use it, and how (the defaults: nobody, DP only, releases to the trainer). */
  policy: DatasetPolicyInput;
}

/**
 * A dataset as its viewer sees it. The file's SHA-256 and size, the commitment salt, the label classes and
 * the policy's trainers are the owner's only: a hash lets whoever knows every record but one test guesses
 * of the last, and a text file's size moves with its values' lengths.
 */
export type Dataset = Static<typeof DatasetSchema>;

/** A staged dataset upload; a safetensors file was already checked while it streamed in. */
export interface StagedDatasetUpload extends StagedUpload {
  /** The check of the upload as safetensors, run while it streamed; resolves null if it is not safetensors. */
  readonly streamCheck: Promise<ConvertOutput | null>;
}

/**
 * Streams a dataset upload into a staged blob. `declaredFormat` is the form's `format` field when it
 * came before the file part; unless it names another format, a safetensors upload is checked as it
 * arrives (stream-check.ts).
 */
export async function stageDatasetUpload(
  deps: Pick<ArtifactDeps, 'blobs' | 'onUploadBytes'>,
  source: AsyncIterable<Uint8Array>,
  declaredFormat?: string,
): Promise<StagedDatasetUpload> {
  if (declaredFormat !== undefined && declaredFormat !== 'safetensors') {
    return Object.assign(await stageUpload(deps, 'dataset', source), { streamCheck: Promise.resolve(null) });
  }
  const check = createStreamCheck();
  const staged = await stageUpload(deps, 'dataset', check.tap(source));
  return Object.assign(staged, { streamCheck: check.result() });
}

/** Largest TorchScript dataset loaded whole into memory (libtorch has no streaming loader). */
export const MAX_TORCHSCRIPT_DATASET_BYTES = 2 * 1024 ** 3;

/** The `details` column: what the check found, and where training finds the canonical tensors. */
interface DatasetDetails {
  summary: DatasetSummary;
  layout: DatasetLayout;
}

/** Where a dataset's canonical tensors are (for training). Throws NOT_FOUND for an unknown id. */
export function datasetLayout(deps: Pick<ArtifactDeps, 'store'>, id: string): DatasetLayout {
  const row = findDatasetRow(deps.store, id);
  if (!row) throw new BastionError('NOT_FOUND', `No dataset with id ${id}`);
  return (JSON.parse(row.details) as DatasetDetails).layout;
}

/**
 * The dataset as `viewer` (its owner or a trainer) sees it. Names, shapes, sample count and privacy
 * settings are what trainings are planned against; which label values occur is a fact about the data
 * itself (a rare diagnosis code appears or not), so it is the owner's alone, as is the list of
 * trainers. The sample count is treated as public, as DP-SGD's accounting does.
 */
function toDataset(row: DatasetRow, viewer: Principal): Dataset {
  const { summary: full } = JSON.parse(row.details) as DatasetDetails;
  const { labelClasses, ...summary } = full;
  const { trainers, ...policy } = datasetTarget(row).policy;
  const owner = viewer.id === row.ownerId;
  return {
    id: row.id,
    ownerId: row.ownerId,
    name: row.name,
    description: row.description,
    format: row.format,
    ...(owner ? { sha256: row.sha256, sizeBytes: row.sizeBytes, commitmentSalt: row.commitmentSalt } : {}),
    privacyLimit: row.privacyLimit,
    delta: row.delta,
    allowNonPrivate: policy.allowNonPrivate,
    policy: owner ? { trainers, ...policy } : policy,
    createdAt: row.createdAt,
    ...summary,
    ...(owner ? { labelClasses } : {}),
  };
}

async function detectFormat(deps: ArtifactDeps, staged: StagedUpload): Promise<DatasetFormat> {
  const reader = await openBlob(deps.blobs, staged.identity, staged.file);
  let prefix: Buffer = Buffer.alloc(0);
  for await (const chunk of reader.chunks()) {
    prefix = chunk;
    break;
  }
  const format = detectDatasetFormat(prefix);
  if (!format) {
    throw new BastionError(
      'UNPROCESSABLE_DATASET',
      'Cannot tell the dataset format from its first bytes; it is not a TorchScript archive, safetensors or CSV with a header row ' +
        '(give the format field to say which it is)',
    );
  }
  return format;
}

const datasetDtypes: ReadonlySet<string> = new Set(DTYPES);

/** BastionAI TorchScript datasets hold their tensors as parameters; they become a safetensors source. */
function tensorsFromTorchscript(tensors: ExtractedTensor[]) {
  return tensors.map((t) => {
    if (!datasetDtypes.has(t.dtype)) {
      throw new BastionError('UNPROCESSABLE_DATASET', `Tensor ${t.name} has dtype ${t.dtype}, which datasets cannot use`);
    }
    return { name: t.name, dtype: t.dtype, shape: t.shape, data: t.data };
  });
}

function resolvePrivacy(fields: DatasetFields, summary: DatasetSummary, fileLimit: number | null): { privacyLimit: number; delta: number } {
  const errors: FieldError[] = [];
  const privacyLimit = fields.privacyLimit ?? fileLimit;
  if (privacyLimit === null || privacyLimit === undefined) {
    errors.push({ pointer: '/privacyLimit', detail: 'is required: the total ε the owner allows trainings to spend on this dataset' });
  }
  const n = summary.sampleCount;
  const delta = fields.delta ?? Math.min(1e-5, 1 / (10 * n));
  if (delta >= 1 / n)
    errors.push({ pointer: '/delta', detail: `must be below 1 / samples = ${1 / n} (δ ≥ 1/n allows releasing a whole sample)` });
  if (errors.length > 0) throw new BastionError('VALIDATION_FAILED', errors.map((e) => `${e.pointer} ${e.detail}`).join('; '), { errors });
  if (!(privacyLimit! > 0 && Number.isFinite(privacyLimit))) {
    throw new BastionError('UNPROCESSABLE_DATASET', `The file's privacy_limit ${privacyLimit} is not a positive number; give privacyLimit`);
  }
  return { privacyLimit: privacyLimit!, delta };
}

/**
 * Checks a staged upload, converts it to the canonical form in a pool worker and commits both as a
 * dataset owned by `owner`. Throws UNPROCESSABLE_DATASET (422) naming the problem; nothing is kept.
 */
export async function createDataset(
  deps: ArtifactDeps,
  owner: Principal,
  fields: DatasetFields,
  staged: StagedUpload | StagedDatasetUpload,
): Promise<Dataset> {
  const canonicalIdentity = { artifactId: staged.identity.artifactId, kind: 'dataset-tensors' as const };
  let canonical: StagedBlob | undefined;
  try {
    if (staged.sizeBytes === 0) throw new BastionError('UNPROCESSABLE_DATASET', 'The uploaded file is empty');
    const format = fields.format ?? (await detectFormat(deps, staged));
    if (format !== 'csv' && fields.labelColumn !== undefined) {
      throw new BastionError('VALIDATION_FAILED', '/labelColumn applies to CSV datasets only', {
        errors: [{ pointer: '/labelColumn', detail: 'applies to CSV datasets only' }],
      });
    }
    let fileLimit: number | null = null;
    let converted: ConvertOutput;
    if (format === 'torchscript') {
      if (staged.sizeBytes > MAX_TORCHSCRIPT_DATASET_BYTES) {
        throw new BastionError(
          'UNPROCESSABLE_DATASET',
          `TorchScript datasets are loaded whole; this one exceeds ${MAX_TORCHSCRIPT_DATASET_BYTES} bytes: upload it as safetensors`,
        );
      }
      const bytes = await readBlob(deps.blobs, staged.identity, staged.file);
      await checkTorchscriptArchive(bytes, {
        kind: 'dataset',
        ...(deps.sandbox.maxInflatedBytes ? { maxInflatedBytes: deps.sandbox.maxInflatedBytes } : {}),
      });
      const tensors = (await runSandboxed({ mode: 'extract', maxBytes: MAX_TORCHSCRIPT_DATASET_BYTES }, bytes, {
        ...deps.sandbox,
        errorCode: 'UNPROCESSABLE_DATASET',
      })) as ExtractedTensor[];
      converted = await deps.pool.run('convertDataset', {
        blobs: deps.blobs,
        target: canonicalIdentity,
        source: { kind: 'tensors', tensors: tensorsFromTorchscript(tensors) },
      });
    } else {
      // A safetensors file checked while it was uploaded has nothing to read again.
      const checked = format === 'safetensors' && 'streamCheck' in staged ? await staged.streamCheck : null;
      converted =
        checked ??
        (await deps.pool.run('convertDataset', {
          blobs: deps.blobs,
          target: canonicalIdentity,
          source: {
            kind: format,
            identity: staged.identity,
            file: staged.file,
            sizeBytes: staged.sizeBytes,
            ...(fields.labelColumn !== undefined ? { labelColumn: fields.labelColumn } : {}),
          },
        }));
    }
    if (converted.converted) canonical = stagedBlob(deps.blobs, canonicalIdentity, converted.converted);
    fileLimit = converted.privacyLimit;
    const { privacyLimit, delta } = resolvePrivacy(fields, converted.summary, fileLimit);
    const policy = datasetPolicyFrom(fields.policy);
    requireKnownPrincipals(deps.store, policy.trainers, '/policy/trainers');
    const row: DatasetRow = {
      id: staged.identity.artifactId,
      ownerId: owner.id,
      name: fields.name,
      description: fields.description,
      format,
      sha256: staged.sha256,
      sizeBytes: staged.sizeBytes,
      privacyLimit,
      delta,
      sampleCount: converted.summary.sampleCount,
      details: JSON.stringify({ summary: converted.summary, layout: converted.layout } satisfies DatasetDetails),
      policy: JSON.stringify(policy),
      commitmentSalt: randomBytes(32).toString('hex'),
      createdAt: new Date().toISOString(),
    };
    await commitArtifact(
      deps,
      canonical ? [staged, canonical] : [staged],
      () => {
        insertDataset(deps.store, row);
        deps.audit.record({
          principalId: owner.id,
          action: 'dataset.create',
          target: { kind: 'dataset', id: row.id },
          outcome: 'ok',
          // No file hash: admins read every entry, and a hash lets whoever knows all records but one test guesses.
          details: { name: row.name, format, sizeBytes: row.sizeBytes, privacyLimit, delta, policy },
        });
      },
      () => removeDatasetBlobs(deps, row.id),
    );
    return toDataset(row, owner);
  } catch (err) {
    await staged.discard();
    await canonical?.discard();
    throw err;
  }
}

async function removeDatasetBlobs(deps: ArtifactDeps, id: string): Promise<void> {
  await removeBlob(deps.blobs, { artifactId: id, kind: 'dataset' });
  await removeBlob(deps.blobs, { artifactId: id, kind: 'dataset-tensors' });
}

/** The datasets `viewer` may see (its own, and those whose policy names it), oldest first. */
export function listDatasets(deps: Pick<ArtifactDeps, 'store'>, viewer: Principal): Dataset[] {
  return listDatasetRows(deps.store)
    .filter((row) => authorize(viewer, 'dataset.read', datasetTarget(row)).allowed)
    .map((row) => toDataset(row, viewer));
}

/**
 * The dataset row, once `principal` may do `action` on it (with `use` for a training or evaluation):
 * NOT_FOUND for an id it may not know, FORBIDDEN naming the policy rule otherwise; refusals are audited.
 */
export function authorizedDatasetRow(
  deps: Pick<ArtifactDeps, 'store' | 'audit'>,
  principal: Principal,
  id: string,
  action: Action,
  use?: UseContext,
): DatasetRow {
  const row = findDatasetRow(deps.store, id);
  if (!row) refuseUnknown(deps, principal, action, 'dataset', id);
  enforce(deps, principal, action, datasetTarget(row), use);
  return row;
}

export function getDataset(deps: Pick<ArtifactDeps, 'store' | 'audit'>, viewer: Principal, id: string): Dataset {
  return toDataset(authorizedDatasetRow(deps, viewer, id, 'dataset.read'), viewer);
}

/**
 * Checks that `principal` may train on (or evaluate with) the dataset as `use` says: its policy's
 * trainers, non-private use, ε per training, evaluations. Throws as authorizedDatasetRow.
 */
export function requireDatasetUse(
  deps: Pick<ArtifactDeps, 'store' | 'audit'>,
  principal: Principal,
  id: string,
  what: 'train' | 'evaluate',
  use: UseContext,
): void {
  authorizedDatasetRow(deps, principal, id, what === 'train' ? 'dataset.train' : 'dataset.evaluate', use);
}

/** The uploaded file, decrypted as it streams, for the dataset's owner only (each download is audited). */
export async function openDatasetContent(
  deps: ArtifactDeps,
  principal: Principal,
  id: string,
): Promise<{ dataset: Dataset; content: SealedBlobReader }> {
  const dataset = toDataset(authorizedDatasetRow(deps, principal, id, 'dataset.readContent'), principal);
  const content = await openBlob(deps.blobs, { artifactId: id, kind: 'dataset' });
  deps.audit.record({ principalId: principal.id, action: 'dataset.download', target: { kind: 'dataset', id }, outcome: 'ok' });
  return { dataset, content };
}

/**
 * Replaces the dataset's policy (the owner only; omitted fields take their defaults). Takes effect for
 * the next request: trainings already accepted keep running, and their charges stand.
 */
export function setDatasetPolicy(
  deps: Pick<ArtifactDeps, 'store' | 'audit'>,
  principal: Principal,
  id: string,
  input: DatasetPolicyInput,
): Dataset {
  authorizedDatasetRow(deps, principal, id, 'dataset.setPolicy');
  const policy = datasetPolicyFrom(input);
  requireKnownPrincipals(deps.store, policy.trainers, '/trainers');
  const row = replacePolicy(deps, {
    principalId: principal.id,
    target: { kind: 'dataset', id },
    policy,
    find: () => findDatasetRow(deps.store, id),
    write: (json) => updateDatasetPolicy(deps.store, id, json),
  });
  return toDataset(row, principal);
}

/**
 * Deletes the owner's dataset: row first, then both blobs (the sweep at start removes blobs a crash
 * left behind). Those who may see it but do not own it: 403.
 */
export async function deleteDataset(deps: ArtifactDeps, principal: Principal, id: string): Promise<void> {
  authorizedDatasetRow(deps, principal, id, 'dataset.delete');
  deps.store.transaction(() => {
    if (!findDatasetRow(deps.store, id)) throw new BastionError('NOT_FOUND', `No dataset with id ${id}`);
    refuseIfInUse(deps, 'dataset', id);
    deleteDatasetRow(deps.store, id);
    deps.audit.record({ principalId: principal.id, action: 'dataset.delete', target: { kind: 'dataset', id }, outcome: 'ok' });
  });
  await removeDatasetBlobs(deps, id);
}

/** The dataset as its owner sees it, for the server's own use (a job that already passed its checks); no access check. */
export function storedDataset(deps: Pick<ArtifactDeps, 'store'>, id: string): Dataset {
  const row = findDatasetRow(deps.store, id);
  if (!row) throw new BastionError('NOT_FOUND', `No dataset with id ${id}`);
  return toDataset(row, { id: row.ownerId } as Principal);
}
