// Where sealed blobs live in the data folder and how they get there. A blob is first written under
// blobs/staging/ while it streams in and is checked; commit() renames it to blobs/<kind>/<id>.sealed
// (same file system, so the rename is atomic) and fsyncs the folder; only then may its database row
// be committed. So after a crash there is either no row, or a row with its blob. What a crash can
// leave behind — staged files, or a committed blob whose row never committed — is removed by
// sweepBlobs() at start, before any upload can run.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { dataLayout } from '../config.js';
import { type KeyProvider, KeyPurpose } from '../enclave/keys.js';
import {
  type BlobIdentity,
  type BlobKind,
  createSealedBlobWriter,
  openSealedBlob,
  readSealedBlob,
  type SealedBlobReader,
  type SealingKey,
} from './sealed-blob.js';

export interface BlobStore {
  readonly blobsDir: string;
  readonly stagingDir: string;
  readonly sealingKey: SealingKey;
}

// checkpoint: a training job's latest trainer state (its artifact id is the job's id).
const kinds: readonly BlobKind[] = ['model', 'dataset', 'dataset-tensors', 'checkpoint'];

/** Opens the blob folders of a data folder (creating them, 0700) with the key provider's sealing key. */
export function openBlobStore(dataDir: string, keys: KeyProvider): BlobStore {
  const layout = dataLayout(dataDir);
  for (const dir of [layout.blobsDir, layout.stagingDir, ...kinds.map((k) => path.join(layout.blobsDir, k))]) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  return {
    blobsDir: layout.blobsDir,
    stagingDir: layout.stagingDir,
    sealingKey: { keyId: keys.keyId, key: keys.deriveKey(KeyPurpose.SEALED_BLOBS) },
  };
}

export function blobPath(blobs: Pick<BlobStore, 'blobsDir'>, identity: BlobIdentity): string {
  return path.join(blobs.blobsDir, identity.kind, `${identity.artifactId}.sealed`);
}

function stagingPath(blobs: BlobStore, identity: BlobIdentity): string {
  return path.join(blobs.stagingDir, `${identity.artifactId}.${identity.kind}.sealed`);
}

/** A blob written under staging/, not yet part of any artifact. */
export interface StagedBlob {
  readonly identity: BlobIdentity;
  /** Its file under staging/ (until commit). */
  readonly file: string;
  /** SHA-256 of the plaintext, hex; null for internal blobs staged without one (stageBlobFrom's hash: false). */
  readonly sha256: string | null;
  /** Plaintext size in bytes. */
  readonly sizeBytes: number;
  /** Moves the blob to its final place, durably. Returns the final path. */
  commit(): Promise<string>;
  /** Removes the staged file (no-op after commit or a previous discard). */
  discard(): Promise<void>;
}

/** Where a producer writes plaintext; each write resolves once the chunk is sealed (backpressure). */
export interface BlobSink {
  write(chunk: Uint8Array): Promise<void>;
}

/**
 * Seals what `produce` writes into a new blob under staging/, hashing the plaintext as it goes. When
 * `produce` fails (a client that disconnects, a size limit, a refused dataset) the partial file is
 * removed and the error re-thrown. Runs in the main thread or a pool worker alike (BlobStore is plain
 * data); a worker hands the result back as `{ sha256, sizeBytes }` and the caller rebuilds the handle
 * with stagedBlob().
 */
export async function stageBlobFrom<T>(
  blobs: BlobStore,
  identity: BlobIdentity,
  produce: (sink: BlobSink) => Promise<T>,
  options: { hash?: boolean } = {},
): Promise<{ staged: StagedBlob; result: T }> {
  const writer = await createSealedBlobWriter(stagingPath(blobs, identity), identity, blobs.sealingKey);
  // The hash identifies uploads to their owners; blobs derived on the server (canonical datasets)
  // are authenticated by their GCM tags and need none.
  const hash = options.hash === false ? null : createHash('sha256');
  let result: T;
  try {
    result = await produce({
      write: async (chunk) => {
        hash?.update(chunk);
        await writer.write(chunk);
      },
    });
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return { staged: stagedBlob(blobs, identity, { sha256: hash?.digest('hex') ?? null, sizeBytes: writer.sizeBytes }), result };
}

/** A staged upload: always hashed. */
export type StagedUpload = StagedBlob & { readonly sha256: string };

/** Streams `source` into a new staged blob, hashed (see stageBlobFrom). */
export async function stageBlob(blobs: BlobStore, identity: BlobIdentity, source: AsyncIterable<Uint8Array>): Promise<StagedUpload> {
  const { staged } = await stageBlobFrom(blobs, identity, async (sink) => {
    for await (const chunk of source) await sink.write(chunk);
  });
  return staged as StagedUpload;
}

/** The handle of a blob already sealed under staging/ (by this thread or a pool worker). */
export function stagedBlob(blobs: BlobStore, identity: BlobIdentity, facts: { sha256: string | null; sizeBytes: number }): StagedBlob {
  const file = stagingPath(blobs, identity);
  let state: 'staged' | 'committed' | 'discarded' = 'staged';
  return {
    identity,
    file,
    sha256: facts.sha256,
    sizeBytes: facts.sizeBytes,
    async commit() {
      if (state !== 'staged') throw new Error(`commit() of a blob that is ${state}`);
      const target = blobPath(blobs, identity);
      await fs.promises.rename(file, target);
      state = 'committed';
      await fsyncDir(path.dirname(target));
      return target;
    },
    async discard() {
      if (state !== 'staged') return;
      state = 'discarded';
      await fs.promises.rm(file, { force: true });
    },
  };
}

/** Opens a staged or committed blob for streaming reads. */
export function openBlob(blobs: BlobStore, identity: BlobIdentity, file = blobPath(blobs, identity)): Promise<SealedBlobReader> {
  return openSealedBlob(file, identity, blobs.sealingKey);
}

/** The whole plaintext of a staged or committed blob, in memory (models, TorchScript datasets). */
export function readBlob(blobs: BlobStore, identity: BlobIdentity, file = blobPath(blobs, identity)): Promise<Buffer> {
  return readSealedBlob(file, identity, blobs.sealingKey);
}

/** Removes a committed blob durably; a blob already gone is not an error. */
export async function removeBlob(blobs: BlobStore, identity: BlobIdentity): Promise<void> {
  const file = blobPath(blobs, identity);
  await fs.promises.rm(file, { force: true });
  await fsyncDir(path.dirname(file));
}

/**
 * Removes everything under staging/ and every committed blob whose artifact id is not in `liveIds`.
 * Call at start, before the server accepts uploads. Returns the number of files removed.
 */
export function sweepBlobs(blobs: BlobStore, liveIds: ReadonlySet<string>): number {
  let removed = 0;
  for (const name of fs.readdirSync(blobs.stagingDir)) {
    fs.rmSync(path.join(blobs.stagingDir, name), { force: true, recursive: true });
    removed += 1;
  }
  for (const kind of kinds) {
    const dir = path.join(blobs.blobsDir, kind);
    for (const name of fs.readdirSync(dir)) {
      const id = name.replace(/\.sealed$/, '');
      if (!liveIds.has(id)) {
        fs.rmSync(path.join(dir, name), { force: true, recursive: true });
        removed += 1;
      }
    }
  }
  return removed;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
