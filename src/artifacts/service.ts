// What every artifact service shares: its dependencies, how an upload is staged, and the check that an
// artifact is not in use. Who may see or do what with an artifact is src/governance/authorize.ts.
import { v7 as uuidv7 } from 'uuid';
import { BastionError } from '../errors.js';
import type { AuditLog } from '../governance/audit.js';
import type { PrivacyMath } from '../privacy/ledger.js';
import type { Store } from '../store/db.js';
import { activeTrainingsUsing } from '../store/trainings.js';
import { type BlobStore, type StagedBlob, type StagedUpload, stageBlob } from './blob-store.js';
import type { ConvertInput, ConvertOutput } from './convert.js';

export interface SandboxLimits {
  /** Wall-clock limit of one disposable load of an uploaded archive. */
  timeoutMs: number;
  /** Data-segment limit (RLIMIT_DATA) of that process. */
  memoryBytes: number;
  /** Bound on what an archive's deflated entries inflate to, together (checkTorchscriptArchive's default when absent). */
  maxInflatedBytes?: number;
}

/**
 * The worker pool as the artifact services use it: a dataset's checks and conversion (convert.ts) read
 * every byte of an upload, so they run in a pool worker, never on the event loop. src/workers/pool.ts
 * implements it; the composition root (app.ts) wires it in.
 */
export interface ConversionPool {
  run(kind: 'convertDataset', input: ConvertInput): Promise<ConvertOutput>;
}

export interface ArtifactDeps {
  store: Store;
  blobs: BlobStore;
  pool: ConversionPool;
  sandbox: SandboxLimits;
  /** Where the privacy accountants run (privacy/ledger.ts); absent: on the calling thread. */
  math?: PrivacyMath;
  /** Where every state change and refused access is recorded. */
  audit: AuditLog;
  /** Told the size of each chunk of an upload's file as it arrives, accepted or not (/metrics). */
  onUploadBytes?: (kind: 'model' | 'dataset', bytes: number) => void;
}

/** Streams an upload into a staged blob of a new artifact id. */
export function stageUpload(
  deps: Pick<ArtifactDeps, 'blobs' | 'onUploadBytes'>,
  kind: 'model' | 'dataset',
  source: AsyncIterable<Uint8Array>,
): Promise<StagedUpload> {
  const count = deps.onUploadBytes;
  return stageBlob(deps.blobs, { artifactId: uuidv7(), kind }, count ? counted(source, (bytes) => count(kind, bytes)) : source);
}

/** `source`, telling `onChunk` each chunk's size as it passes. */
async function* counted(source: AsyncIterable<Uint8Array>, onChunk: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    onChunk(chunk.byteLength);
    yield chunk;
  }
}

/** A model or dataset a queued or running training reads cannot be deleted: 409 naming the trainings. */
export function refuseIfInUse(deps: Pick<ArtifactDeps, 'store'>, kind: 'model' | 'dataset', id: string): void {
  const trainings = activeTrainingsUsing(deps.store, id);
  if (trainings.length > 0) {
    throw new BastionError(
      'ARTIFACT_IN_USE',
      `The ${kind} is used by trainings that have not finished: ${trainings.join(', ')}; cancel them or wait`,
      { extensions: { trainings } },
    );
  }
}

/**
 * Commits staged blobs, then runs `insert` (the row) in one transaction. If the row cannot be
 * committed, the blobs are removed again: no blob outlives a failed upload, and no row exists
 * without its blobs.
 */
export async function commitArtifact(
  deps: Pick<ArtifactDeps, 'store'>,
  staged: StagedBlob[],
  insert: () => void,
  remove: () => Promise<void>,
): Promise<void> {
  try {
    for (const blob of staged) await blob.commit();
    deps.store.transaction(insert);
  } catch (err) {
    await Promise.all(staged.map((blob) => blob.discard()));
    await remove().catch(() => undefined);
    throw err;
  }
}
