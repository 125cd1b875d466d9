// Sealed blobs: how every artifact's bytes rest on disk. AES-256-GCM in fixed-size segments, the STREAM
// construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption and its
// Nonce-Reuse Misuse-Resistance", CRYPTO 2015, §7): segment i is sealed under nonce (i, last?) with the
// blob's header as associated data. So a blob of any size is written and read in bounded memory, and
// every way of damaging one fails authentication before a byte of it is returned: flipped bits,
// truncation (even at a segment boundary: the new last segment was not sealed as last), reordered or
// dropped segments, and a blob copied over another artifact's (the header binds artifact id and kind).
//
// Layout: an 80-byte header, then ⌈n / S⌉ segments (at least one, the last possibly empty) of
// ciphertext + 16-byte tag, S = segment size in plaintext bytes.
//   header: magic "BSTNSEAL" | version u8 | reserved 3 | S u32 BE | key id 8 | artifact id 16 |
//           salt 16 | kind, ASCII, zero-padded to 24
// Each blob has its own key, HKDF-SHA256(sealing key, salt, info "bastion sealed blob v1" | id | kind),
// with a fresh random salt, so nonces (a counter) never repeat under a key even if an id is reused.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { parse as parseUuid, stringify as stringifyUuid } from 'uuid';
import { BastionError } from '../errors.js';

/** What the bytes of a blob are; bound into the blob so one kind cannot stand in for another. */
export type BlobKind = 'model' | 'dataset' | 'dataset-tensors' | 'checkpoint';

export interface BlobIdentity {
  /** UUID of the artifact the blob belongs to. */
  artifactId: string;
  kind: BlobKind;
}

/** The sealing key (KeyProvider.deriveKey(KeyPurpose.SEALED_BLOBS)) and its root key's id. */
export interface SealingKey {
  keyId: string;
  key: Buffer;
}

const MAGIC = Buffer.from('BSTNSEAL', 'ascii');
const VERSION = 1;
export const HEADER_BYTES = 80;
const TAG_BYTES = 16;
const KIND_BYTES = 24;
/** Plaintext bytes per segment: 64 KiB, as age and Tink's streaming AEAD use. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024;
const MAX_SEGMENT_BYTES = 16 * 1024 * 1024;
/** Ciphertext is written to disk in batches of about this size (one writev per batch). */
const WRITE_BATCH_BYTES = 1024 * 1024;
/**
 * A data sync is started in the background after every this many bytes, so the disk writes back
 * while the blob streams in and the fsync that makes it durable at the end has little left to do.
 */
const SYNC_EVERY_BYTES = 32 * 1024 * 1024;

interface Header {
  bytes: Buffer;
  segmentBytes: number;
  keyId: string;
  identity: BlobIdentity;
  salt: Buffer;
}

function encodeHeader(identity: BlobIdentity, keyId: string, segmentBytes: number, salt: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt8(VERSION, 8);
  header.writeUInt32BE(segmentBytes, 12);
  Buffer.from(keyId, 'hex').copy(header, 16, 0, 8);
  Buffer.from(parseUuid(identity.artifactId)).copy(header, 24);
  salt.copy(header, 40);
  header.write(identity.kind, 56, KIND_BYTES, 'ascii');
  return header;
}

function corrupt(identity: BlobIdentity, problem: string): BastionError {
  return new BastionError('SEALED_BLOB_CORRUPT', `The sealed ${identity.kind} blob of ${identity.artifactId} ${problem}`);
}

function decodeHeader(bytes: Buffer, expected: BlobIdentity, key: SealingKey): Header {
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, 8).equals(MAGIC)) throw corrupt(expected, 'has no sealed-blob header');
  const version = bytes.readUInt8(8);
  if (version !== VERSION) throw corrupt(expected, `has format version ${version}, which this server does not read`);
  const segmentBytes = bytes.readUInt32BE(12);
  if (segmentBytes < 1 || segmentBytes > MAX_SEGMENT_BYTES) throw corrupt(expected, 'has an invalid segment size');
  const keyId = bytes.subarray(16, 24).toString('hex');
  if (keyId !== key.keyId) throw corrupt(expected, `was sealed under another root key (${keyId}, not ${key.keyId})`);
  const artifactId = stringifyUuid(bytes.subarray(24, 40));
  const kind = bytes
    .subarray(56, 56 + KIND_BYTES)
    .toString('ascii')
    .replace(/\0+$/, '');
  if (artifactId !== expected.artifactId || kind !== expected.kind) {
    throw corrupt(expected, `holds the ${kind} blob of ${artifactId} instead`);
  }
  return {
    bytes: Buffer.from(bytes.subarray(0, HEADER_BYTES)),
    segmentBytes,
    keyId,
    identity: expected,
    salt: Buffer.from(bytes.subarray(40, 56)),
  };
}

function blobKey(key: SealingKey, identity: BlobIdentity, salt: Buffer): Buffer {
  const info = Buffer.from(`bastion sealed blob v1\0${identity.artifactId}\0${identity.kind}`, 'utf8');
  return Buffer.from(hkdfSync('sha256', key.key, salt, info, 32));
}

/** STREAM nonce: 3 zero bytes, the segment counter (u64 BE), the last-segment flag. */
function nonce(index: number, last: boolean): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeBigUInt64BE(BigInt(index), 3);
  iv.writeUInt8(last ? 1 : 0, 11);
  return iv;
}

/** Writes one sealed blob. Use write() for each chunk, then finish(); abort() on any failure. */
export interface SealedBlobWriter {
  /** Plaintext bytes written so far. */
  readonly sizeBytes: number;
  write(chunk: Uint8Array): Promise<void>;
  /** Seals the last segment, fsyncs and closes the file. */
  finish(): Promise<{ sizeBytes: number; sealedBytes: number }>;
  /** Closes and removes the file; safe to call more than once, and after finish(). */
  abort(): Promise<void>;
}

/**
 * Creates `file` (which must not exist; mode 0600) and returns a writer that seals what it is given.
 * Memory held is one segment plus one write batch, whatever the blob's size.
 */
export async function createSealedBlobWriter(
  file: string,
  identity: BlobIdentity,
  key: SealingKey,
  options: { segmentBytes?: number } = {},
): Promise<SealedBlobWriter> {
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (!Number.isInteger(segmentBytes) || segmentBytes < 1 || segmentBytes > MAX_SEGMENT_BYTES) {
    throw new RangeError(`Expected integer between 1 and ${MAX_SEGMENT_BYTES} for segmentBytes but received ${segmentBytes}`);
  }
  const salt = randomBytes(16);
  const header = encodeHeader(identity, key.keyId, segmentBytes, salt);
  const segmentKey = blobKey(key, identity, salt);
  const handle = await fs.promises.open(file, 'wx', 0o600);

  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let batch: Buffer[] = [header];
  let batchBytes = header.length;
  let index = 0;
  let sizeBytes = 0;
  let sealedBytes = 0;
  let unsyncedBytes = 0;
  let syncing: Promise<void> | null = null;
  let syncFailure: unknown = null;
  let state: 'open' | 'finished' | 'aborted' = 'open';

  const seal = (plaintext: Buffer, last: boolean) => {
    const cipher = createCipheriv('aes-256-gcm', segmentKey, nonce(index, last));
    cipher.setAAD(header);
    const body = cipher.update(plaintext);
    cipher.final();
    const tag = cipher.getAuthTag();
    batch.push(body, tag);
    batchBytes += body.length + tag.length;
    index += 1;
  };
  const flush = async () => {
    if (batchBytes === 0) return;
    const buffers = batch;
    batch = [];
    batchBytes = 0;
    let written = 0;
    const total = buffers.reduce((n, b) => n + b.length, 0);
    while (written < total) {
      // writev may write less than asked; continue from where it stopped.
      const rest = written === 0 ? buffers : [Buffer.concat(buffers).subarray(written)];
      const { bytesWritten } = await handle.writev(rest);
      written += bytesWritten;
    }
    sealedBytes += total;
    unsyncedBytes += total;
    if (unsyncedBytes >= SYNC_EVERY_BYTES) {
      unsyncedBytes = 0;
      await syncing; // at most one background sync at a time
      if (syncFailure) throw syncFailure;
      syncing = handle.datasync().catch((err: unknown) => {
        syncFailure = err;
      });
    }
  };
  const takeSegment = (): Buffer => {
    const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    const segment = joined.subarray(0, segmentBytes);
    const rest = joined.subarray(segmentBytes);
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
    return segment;
  };

  return {
    get sizeBytes() {
      return sizeBytes;
    },
    async write(chunk) {
      if (state !== 'open') throw new Error(`write() on a sealed blob writer that is ${state}`);
      if (chunk.length === 0) return;
      // Copy: the caller (a stream) may reuse its buffer once this resolves.
      pending.push(Buffer.from(chunk));
      pendingBytes += chunk.length;
      sizeBytes += chunk.length;
      // Keep at least one byte back: only finish() knows which segment is the last.
      while (pendingBytes > segmentBytes) seal(takeSegment(), false);
      if (batchBytes >= WRITE_BATCH_BYTES) await flush();
    },
    async finish() {
      if (state !== 'open') throw new Error(`finish() on a sealed blob writer that is ${state}`);
      state = 'finished';
      try {
        seal(pendingBytes > 0 ? takeSegment() : Buffer.alloc(0), true);
        await flush();
        await syncing;
        if (syncFailure) throw syncFailure;
        await handle.sync();
      } finally {
        await handle.close();
      }
      return { sizeBytes, sealedBytes };
    },
    async abort() {
      const wasOpen = state === 'open';
      state = 'aborted';
      if (wasOpen) {
        await syncing;
        await handle.close().catch(() => undefined);
      }
      await fs.promises.rm(file, { force: true });
    },
  };
}

/** Plaintext size of a sealed blob, from its file size alone (no key needed). */
export function plaintextSizeOf(sealedBytes: number, segmentBytes: number): number | null {
  const body = sealedBytes - HEADER_BYTES;
  const stride = segmentBytes + TAG_BYTES;
  if (body < TAG_BYTES) return null;
  const segments = Math.ceil(body / stride);
  const lastBytes = body - (segments - 1) * stride;
  if (lastBytes < TAG_BYTES) return null; // a last segment shorter than its tag cannot exist
  return body - segments * TAG_BYTES;
}

export interface SealedBlobReader {
  /** Plaintext size in bytes. */
  sizeBytes: number;
  /** The plaintext, authenticated segment by segment. Throws SEALED_BLOB_CORRUPT on any damage. */
  chunks(): AsyncGenerator<Buffer>;
}

/**
 * Opens a sealed blob for reading and checks its header against the expected identity and key. A
 * segment is returned only after its tag verified, so a damaged blob never yields wrong bytes; it
 * throws SEALED_BLOB_CORRUPT at the first bad segment (bytes before it were genuine).
 */
export async function openSealedBlob(file: string, identity: BlobIdentity, key: SealingKey): Promise<SealedBlobReader> {
  const { header, size } = await withHandle(file, identity, async (handle) => {
    const { size } = await handle.stat();
    const headerBytes = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(headerBytes, 0, HEADER_BYTES, 0);
    return { header: decodeHeader(headerBytes.subarray(0, bytesRead), identity, key), size };
  });
  const sizeBytes = plaintextSizeOf(size, header.segmentBytes);
  if (sizeBytes === null) throw corrupt(identity, 'is truncated');
  const stride = header.segmentBytes + TAG_BYTES;
  const segments = Math.max(1, Math.ceil((size - HEADER_BYTES) / stride));
  const segmentKey = blobKey(key, identity, header.salt);

  async function* chunks(): AsyncGenerator<Buffer> {
    // The file is opened again here, so a reader that is never iterated holds no descriptor. The
    // header read above is the associated data: a header changed since then fails authentication.
    const handle = await withHandle(file, identity, async (h) => h, { keepOpen: true });
    // Read several segments per call to keep syscalls few; memory stays at one read batch.
    const perRead = Math.max(1, Math.floor(WRITE_BATCH_BYTES / stride));
    const buffer = Buffer.alloc(perRead * stride);
    try {
      for (let first = 0; first < segments; first += perRead) {
        const count = Math.min(perRead, segments - first);
        const position = HEADER_BYTES + first * stride;
        const want = Math.min(count * stride, size - position);
        const { bytesRead: got } = await handle.read(buffer, 0, want, position);
        if (got !== want) throw corrupt(identity, 'changed size while it was read');
        for (let i = 0; i < count; i += 1) {
          const index = first + i;
          const start = i * stride;
          const sealed = buffer.subarray(start, Math.min(start + stride, want));
          const decipher = createDecipheriv('aes-256-gcm', segmentKey, nonce(index, index === segments - 1));
          decipher.setAAD(header.bytes);
          decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
          const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
          try {
            decipher.final();
          } catch {
            throw corrupt(identity, `failed authentication at segment ${index} of ${segments}: it was tampered with, truncated or damaged`);
          }
          yield plain;
        }
      }
    } finally {
      await handle.close().catch(() => undefined);
    }
  }
  return { sizeBytes, chunks };
}

async function withHandle<T>(
  file: string,
  identity: BlobIdentity,
  use: (handle: FileHandle) => Promise<T>,
  options: { keepOpen?: boolean } = {},
): Promise<T> {
  let handle: FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw corrupt(identity, 'is missing from the data folder');
    throw err;
  }
  try {
    return await use(handle);
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  } finally {
    if (!options.keepOpen) await handle.close().catch(() => undefined);
  }
}

/** The whole plaintext of a sealed blob in memory; for blobs known to be small enough. */
export async function readSealedBlob(file: string, identity: BlobIdentity, key: SealingKey): Promise<Buffer> {
  const reader = await openSealedBlob(file, identity, key);
  const parts: Buffer[] = [];
  for await (const chunk of reader.chunks()) parts.push(chunk);
  return Buffer.concat(parts, reader.sizeBytes);
}
