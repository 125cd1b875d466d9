// The check of a safetensors upload while it streams: the same verdict as checking the whole file,
// without holding it, and no hang whichever side stops first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convertSafetensors, encodeSafetensors } from '../../src/artifacts/formats/safetensors.js';
import { createStreamCheck } from '../../src/artifacts/stream-check.js';
import { BastionError } from '../../src/errors.js';

function dataset(n: number, poison = false): Buffer {
  const inputs = new Float32Array(n * 4).fill(0.25);
  if (poison) inputs[n * 2] = Number.NaN;
  return encodeSafetensors([
    { name: 'samples_0', dtype: 'F32', shape: [n, 4], data: new Uint8Array(inputs.buffer) },
    { name: 'labels', dtype: 'I64', shape: [n], data: new Uint8Array(new BigInt64Array(n).fill(3n).buffer) },
  ]);
}

async function* chunked(bytes: Uint8Array, size: number, failAt?: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) {
    if (failAt !== undefined && at >= failAt) throw new Error('client went away');
    yield bytes.subarray(at, at + size);
  }
}

async function drain(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

const isDatasetRefusal = (pattern: RegExp) => (e: unknown) =>
  e instanceof BastionError && e.code === 'UNPROCESSABLE_DATASET' && pattern.test(e.message);

test('a safetensors upload checked while streaming gives what checking the whole file gives, and passes every byte on', async () => {
  const bytes = dataset(5000);
  const check = createStreamCheck();
  assert.deepEqual(await drain(check.tap(chunked(bytes, 7777))), bytes);
  const streamed = await check.result();
  const whole = await convertSafetensors(chunked(bytes, bytes.length), null, { sizeBytes: bytes.length });
  assert.ok(streamed);
  assert.deepEqual(streamed.summary, whole.summary);
  assert.deepEqual(streamed.layout, { blob: 'dataset', tensors: whole.sourceTensors });
  assert.equal(streamed.converted, null);
});

test('a NaN refuses the dataset, but the upload itself still streams to its end', async () => {
  const bytes = dataset(5000, true);
  const check = createStreamCheck();
  assert.deepEqual(await drain(check.tap(chunked(bytes, 4096))), bytes);
  await assert.rejects(check.result(), isDatasetRefusal(/NaN/));
});

test('an upload that is not safetensors is passed on unchecked', async () => {
  const csv = Buffer.from(`a,b,label\n${'1,2,0\n'.repeat(2000)}`);
  const check = createStreamCheck();
  assert.deepEqual(await drain(check.tap(chunked(csv, 1000))), csv);
  assert.equal(await check.result(), null);
});

test('a short upload still gets checked, and trailing or missing bytes are refused', async () => {
  const bytes = dataset(3);
  const ok = createStreamCheck();
  await drain(ok.tap(chunked(bytes, 10)));
  assert.equal((await ok.result())?.summary.sampleCount, 3);
  const longer = createStreamCheck();
  await drain(longer.tap(chunked(Buffer.concat([bytes, Buffer.from([1, 2, 3])]), 10)));
  await assert.rejects(longer.result(), isDatasetRefusal(/trailing bytes/));
  const shorter = createStreamCheck();
  await drain(shorter.tap(chunked(bytes.subarray(0, bytes.length - 5), 10)));
  await assert.rejects(shorter.result(), isDatasetRefusal(/ends early/));
});

test('an upload that fails midway fails the tap and settles the check instead of leaving it waiting', async () => {
  const bytes = dataset(50_000);
  const check = createStreamCheck();
  await assert.rejects(drain(check.tap(chunked(bytes, 65536, 300_000))), /client went away/);
  await assert.rejects(check.result());
});
