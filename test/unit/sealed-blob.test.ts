import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { v7 as uuidv7 } from 'uuid';
import {
  type BlobIdentity,
  createSealedBlobWriter,
  HEADER_BYTES,
  openSealedBlob,
  plaintextSizeOf,
  readSealedBlob,
  type SealingKey,
} from '../../src/artifacts/sealed-blob.js';
import { BastionError } from '../../src/errors.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-sealed-'));
const key: SealingKey = { keyId: '0123456789abcdef', key: randomBytes(32) };
let counter = 0;
const freshFile = () => path.join(dir, `blob-${(counter += 1)}.sealed`);

async function seal(content: Buffer, identity: BlobIdentity, options: { segmentBytes?: number; chunkBytes?: number } = {}) {
  const file = freshFile();
  const writer = await createSealedBlobWriter(file, identity, key, options);
  const step = options.chunkBytes ?? 10_000;
  for (let at = 0; at < content.length; at += step) await writer.write(content.subarray(at, at + step));
  const result = await writer.finish();
  return { file, ...result };
}

const isCorrupt = (pattern: RegExp) => (e: unknown) =>
  e instanceof BastionError && e.code === 'SEALED_BLOB_CORRUPT' && pattern.test(e.message);

test('what is sealed reads back byte-identical, for empty, one-segment, exact-multiple and multi-segment contents', async () => {
  for (const size of [0, 1, 100, 4096, 4097, 3 * 4096, 50_000]) {
    const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'model' };
    const content = randomBytes(size);
    const { file, sizeBytes, sealedBytes } = await seal(content, identity, { segmentBytes: 4096, chunkBytes: 777 });
    assert.equal(sizeBytes, size);
    assert.equal(fs.statSync(file).size, sealedBytes);
    const reader = await openSealedBlob(file, identity, key);
    assert.equal(reader.sizeBytes, size);
    assert.deepEqual(await readSealedBlob(file, identity, key), content, `size ${size}`);
  }
});

test('the file holds no plaintext and is mode 0600', async () => {
  const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'dataset' };
  const content = Buffer.from('patient-id,diagnosis\n'.repeat(500));
  const { file } = await seal(content, identity);
  const raw = fs.readFileSync(file);
  assert.equal(raw.indexOf('patient-id'), -1);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
});

test('plaintext size follows from the file size for any content length', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1, max: 70_000 }), (n, s) => {
      const segments = Math.max(1, Math.ceil(n / s));
      return plaintextSizeOf(HEADER_BYTES + n + 16 * segments, s) === n;
    }),
  );
});

test('a flipped bit anywhere in the file fails to decrypt and yields no wrong bytes', async () => {
  const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'model' };
  const content = randomBytes(20_000);
  const { file } = await seal(content, identity, { segmentBytes: 4096 });
  const original = fs.readFileSync(file);
  for (const position of [0, 9, 30, 50, 60, HEADER_BYTES, HEADER_BYTES + 4096 + 3, original.length - 1]) {
    const tampered = Buffer.from(original);
    tampered[position]! ^= 0x01;
    fs.writeFileSync(file, tampered);
    const received: Buffer[] = [];
    await assert.rejects(
      (async () => {
        const reader = await openSealedBlob(file, identity, key);
        for await (const chunk of reader.chunks()) received.push(chunk);
      })(),
      (e: unknown) => e instanceof BastionError && e.code === 'SEALED_BLOB_CORRUPT',
      `flip at ${position}`,
    );
    // Whatever came out before the failure is a genuine prefix of the content.
    const prefix = Buffer.concat(received);
    assert.deepEqual(prefix, content.subarray(0, prefix.length));
  }
});

test('truncation fails, also exactly at a segment boundary', async () => {
  const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'dataset' };
  const { file } = await seal(randomBytes(3 * 4096 + 10), identity, { segmentBytes: 4096 });
  const original = fs.readFileSync(file);
  const stride = 4096 + 16;
  for (const length of [original.length - 1, HEADER_BYTES + 2 * stride, HEADER_BYTES + stride, HEADER_BYTES + 5, HEADER_BYTES, 20]) {
    fs.writeFileSync(file, original.subarray(0, length));
    await assert.rejects(readSealedBlob(file, identity, key), isCorrupt(/truncated|failed authentication|header/), `length ${length}`);
  }
});

test('swapped segments fail authentication', async () => {
  const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'dataset' };
  const { file } = await seal(randomBytes(3 * 4096), identity, { segmentBytes: 4096 });
  const original = fs.readFileSync(file);
  const stride = 4096 + 16;
  const a = original.subarray(HEADER_BYTES, HEADER_BYTES + stride);
  const b = original.subarray(HEADER_BYTES + stride, HEADER_BYTES + 2 * stride);
  fs.writeFileSync(file, Buffer.concat([original.subarray(0, HEADER_BYTES), b, a, original.subarray(HEADER_BYTES + 2 * stride)]));
  await assert.rejects(readSealedBlob(file, identity, key), isCorrupt(/failed authentication at segment 0/));
});

test("a blob copied over another artifact's, or read as another kind, is refused by its header", async () => {
  const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'model' };
  const { file } = await seal(randomBytes(100), identity);
  await assert.rejects(readSealedBlob(file, { artifactId: uuidv7(), kind: 'model' }, key), isCorrupt(/holds the model blob of/));
  await assert.rejects(readSealedBlob(file, { ...identity, kind: 'dataset' }, key), isCorrupt(/holds the model blob of/));
  // Rewriting the header to claim the other id breaks the associated data of every segment.
  const other = uuidv7();
  const raw = fs.readFileSync(file);
  Buffer.from(other.replaceAll('-', ''), 'hex').copy(raw, 24);
  fs.writeFileSync(file, raw);
  await assert.rejects(readSealedBlob(file, { artifactId: other, kind: 'model' }, key), isCorrupt(/failed authentication/));
});

test('a blob sealed under another root key is named as such; a wrong key with the same id fails authentication', async () => {
  const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'model' };
  const { file } = await seal(randomBytes(100), identity);
  await assert.rejects(readSealedBlob(file, identity, { keyId: 'ffffffffffffffff', key: key.key }), isCorrupt(/another root key/));
  await assert.rejects(readSealedBlob(file, identity, { keyId: key.keyId, key: randomBytes(32) }), isCorrupt(/failed authentication/));
});

test('sealing the same content twice gives different files (fresh salt, so no nonce is reused)', async () => {
  const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'model' };
  const content = randomBytes(1000);
  const one = fs.readFileSync((await seal(content, identity)).file);
  const two = fs.readFileSync((await seal(content, identity)).file);
  assert.notDeepEqual(one.subarray(HEADER_BYTES), two.subarray(HEADER_BYTES));
});

test('abort removes the file; a missing blob is reported clearly', async () => {
  const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'model' };
  const file = freshFile();
  const writer = await createSealedBlobWriter(file, identity, key);
  await writer.write(randomBytes(100_000));
  await writer.abort();
  await writer.abort();
  assert.equal(fs.existsSync(file), false);
  await assert.rejects(readSealedBlob(file, identity, key), isCorrupt(/missing/));
  await assert.rejects(writer.write(Buffer.alloc(1)), /aborted/);
});

test('the writer refuses to overwrite an existing file', async () => {
  const identity: BlobIdentity = { artifactId: uuidv7(), kind: 'model' };
  const { file } = await seal(randomBytes(10), identity);
  await assert.rejects(createSealedBlobWriter(file, identity, key), { code: 'EEXIST' });
});
