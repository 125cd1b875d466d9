import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { CANONICAL_FORMAT, MAX_CLASS_INDEX, MAX_LABEL_CLASSES } from '../../src/artifacts/formats/canonical.js';
import {
  type ByteSink,
  convertSafetensors,
  encodeSafetensors,
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  readSafetensors,
  type SafetensorsTensor,
  safetensorsHeaderLength,
} from '../../src/artifacts/formats/safetensors.js';
import { BastionError } from '../../src/errors.js';
import { DTYPES, type Dtype, dtypeSizeBytes } from '../../src/vocabulary.js';
import { datasetRefusal } from '../helpers/refusal.js';
import { testdataPath } from '../helpers/testdata.js';

const REFERENCE = testdataPath('torchscript', 'torch-1.13', 'mlp.io.safetensors');

// ---------------------------------------------------------------------------------------------------
// helpers

const f32 = (...values: number[]): Uint8Array => new Uint8Array(new Float32Array(values).buffer);
const f64 = (...values: number[]): Uint8Array => new Uint8Array(new Float64Array(values).buffer);
const i64 = (...values: (number | bigint)[]): Uint8Array => new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
const i32 = (...values: number[]): Uint8Array => new Uint8Array(new Int32Array(values).buffer);
const u16 = (...values: number[]): Uint8Array => new Uint8Array(new Uint16Array(values).buffer);
const u8 = (...values: number[]): Uint8Array => Uint8Array.from(values);

/** A sink that keeps a copy of everything written. */
function collectingSink(): ByteSink & { bytes(): Buffer; writes: number } {
  const chunks: Buffer[] = [];
  return {
    writes: 0,
    async write(chunk) {
      this.writes++;
      chunks.push(Buffer.from(chunk));
    },
    bytes: () => Buffer.concat(chunks),
  };
}

/** `bytes` in chunks of the sizes `nextSize` returns (a number: fixed size). */
async function* chunked(bytes: Uint8Array, nextSize: number | (() => number) = 1 << 16): AsyncGenerator<Uint8Array> {
  for (let pos = 0; pos < bytes.length; ) {
    const size = Math.max(1, typeof nextSize === 'number' ? nextSize : nextSize());
    yield bytes.slice(pos, pos + size);
    pos += size;
  }
}

/** A safetensors file with a hand-written header, for headers that lie. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), padding = ''): Buffer {
  const json = Buffer.from(JSON.stringify(header) + padding, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

function rawHeaderFile(headerText: string | Uint8Array, data: Uint8Array = new Uint8Array(0)): Buffer {
  const json = typeof headerText === 'string' ? Buffer.from(headerText, 'utf8') : Buffer.from(headerText);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

async function convert(file: Uint8Array, chunkSize: number | (() => number) = 1 << 16, sizeBytes = file.length) {
  const sink = collectingSink();
  const result = await convertSafetensors(chunked(file, chunkSize), sink, { sizeBytes });
  return { ...result, output: sink.bytes(), sink };
}

const refusal = datasetRefusal;

const refuses = (file: Uint8Array, pattern: RegExp, sizeBytes = file.length, chunkSize: number = 1 << 16) =>
  assert.rejects(convert(file, chunkSize, sizeBytes), refusal(pattern));

const tensor = (name: string, dtype: Dtype, shape: number[], data: Uint8Array): SafetensorsTensor => ({ name, dtype, shape, data });

/** 3 samples of 2 F32 features with I64 labels. */
const simple = (): Buffer =>
  encodeSafetensors([tensor('inputs', 'F32', [3, 2], f32(1, 2, 3, 4, 5, 6)), tensor('labels', 'I64', [3], i64(1, 0, 1))]);

const byName = (tensors: SafetensorsTensor[]) => Object.fromEntries(tensors.map((t) => [t.name, t]));

// ---------------------------------------------------------------------------------------------------
// conversion: what comes out

test('converts inputs and labels to the canonical form, which reads back with the same tensors', async () => {
  const { summary, extras, output } = await convert(simple());
  assert.deepEqual(summary, {
    sampleCount: 3,
    inputs: [{ name: 'inputs.0', dtype: 'F32', shape: [3, 2] }],
    labels: { name: 'labels', dtype: 'I64', shape: [3] },
    labelClasses: [0, 1],
  });
  assert.deepEqual(extras, {});
  const back = readSafetensors(output);
  assert.deepEqual(back.metadata, { format: CANONICAL_FORMAT });
  const tensors = byName(back.tensors);
  assert.deepEqual(Object.keys(tensors), ['inputs.0', 'labels']);
  assert.deepEqual(Buffer.from(tensors['inputs.0']!.data), Buffer.from(f32(1, 2, 3, 4, 5, 6)));
  assert.deepEqual(Buffer.from(tensors.labels!.data), Buffer.from(i64(1, 0, 1)));
});

test('renames a BastionAI file (samples_0, samples_1, labels) to inputs.0 and inputs.1', async () => {
  const file = encodeSafetensors([
    tensor('samples_0', 'F32', [2, 3], f32(1, 2, 3, 4, 5, 6)),
    tensor('samples_1', 'I64', [2], i64(7, 8)),
    tensor('labels', 'I64', [2], i64(3, 1)),
  ]);
  const { summary, output } = await convert(file);
  assert.deepEqual(summary.inputs, [
    { name: 'inputs.0', dtype: 'F32', shape: [2, 3] },
    { name: 'inputs.1', dtype: 'I64', shape: [2] },
  ]);
  assert.deepEqual(summary.labelClasses, [1, 3]);
  const tensors = byName(readSafetensors(output).tensors);
  assert.deepEqual(Buffer.from(tensors['inputs.0']!.data), Buffer.from(f32(1, 2, 3, 4, 5, 6)));
  assert.deepEqual(Buffer.from(tensors['inputs.1']!.data), Buffer.from(i64(7, 8)));
});

test('keeps the source data order, so labels stored first stay first while names are canonical', async () => {
  // Data order: labels, inputs.1, inputs.0; header key order differs again.
  const labels = i64(5, 6);
  const in1 = f64(0.5, 1.5);
  const in0 = u8(1, 2, 3, 4);
  const data = Buffer.concat([labels, in1, in0]);
  const file = rawFile(
    {
      'inputs.0': { dtype: 'U8', shape: [2, 2], data_offsets: [32, 36] },
      labels: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
      'inputs.1': { dtype: 'F64', shape: [2], data_offsets: [16, 32] },
    },
    data,
  );
  const { output } = await convert(file);
  const header = parseSafetensorsHeader(output, output.length);
  assert.deepEqual(
    header.tensors.map((t) => [t.name, t.dataOffsets]),
    [
      ['labels', [0, 16]],
      ['inputs.1', [16, 32]],
      ['inputs.0', [32, 36]],
    ],
  );
  assert.deepEqual(Buffer.from(output.subarray(header.dataStartBytes)), data);
});

test('skips a privacy_limit tensor and reports its value', async () => {
  for (const [dtype, shape, data] of [
    ['F32', [], f32(2.5)],
    ['F64', [1], f64(2.5)],
    ['BF16', [], u16(0x4020)],
    ['F16', [1, 1], u16(0x4100)],
  ] as const) {
    const file = encodeSafetensors([
      tensor('inputs', 'F32', [1], f32(1)),
      tensor('privacy_limit', dtype, [...shape], data),
      tensor('labels', 'I64', [1], i64(0)),
    ]);
    const { extras, output } = await convert(file);
    assert.deepEqual(extras, { privacyLimit: 2.5 }, dtype);
    assert.deepEqual(
      readSafetensors(output).tensors.map((t) => t.name),
      ['inputs.0', 'labels'],
    );
  }
});

test('reports an infinite privacy_limit as Infinity', async () => {
  const file = encodeSafetensors([
    tensor('inputs', 'F32', [1], f32(1)),
    tensor('labels', 'F32', [1], f32(0)),
    tensor('privacy_limit', 'F32', [], f32(Infinity)),
  ]);
  assert.equal((await convert(file)).extras.privacyLimit, Infinity);
});

test('replaces the source __metadata__ with the canonical format marker', async () => {
  const file = encodeSafetensors([tensor('inputs', 'F32', [1], f32(1)), tensor('labels', 'F32', [1], f32(0.5))], {
    producer: 'x',
    format: 'pt',
  });
  const { output, summary } = await convert(file);
  assert.deepEqual(readSafetensors(output).metadata, { format: CANONICAL_FORMAT });
  assert.equal(summary.labelClasses, null);
});

test('accepts labels with more than one dimension and counts classes over every element', async () => {
  const file = encodeSafetensors([tensor('inputs', 'F16', [2, 1], u16(0x3c00, 0x4000)), tensor('labels', 'I32', [2, 2], i32(0, 9, 9, 4))]);
  const { summary } = await convert(file);
  assert.deepEqual(summary.labels, { name: 'labels', dtype: 'I32', shape: [2, 2] });
  assert.deepEqual(summary.labelClasses, [0, 4, 9]);
});

test('bool labels give classes [0, 1]; float labels give none', async () => {
  const bools = encodeSafetensors([tensor('inputs', 'BF16', [3], u16(0x3f80, 0, 0)), tensor('labels', 'BOOL', [3], u8(1, 0, 1))]);
  assert.deepEqual((await convert(bools)).summary.labelClasses, [0, 1]);
  const floats = encodeSafetensors([tensor('inputs', 'F32', [2], f32(1, 2)), tensor('labels', 'F64', [2], f64(0, 1))]);
  assert.equal((await convert(floats)).summary.labelClasses, null);
});

test('labelClasses are sorted ascending, and null beyond MAX_LABEL_CLASSES distinct values', async () => {
  const few = encodeSafetensors([tensor('inputs', 'F32', [4], f32(1, 2, 3, 4)), tensor('labels', 'I64', [4], i64(3, 7, 3, 2))]);
  assert.deepEqual((await convert(few)).summary.labelClasses, [2, 3, 7]);
  const n = MAX_LABEL_CLASSES + 1;
  const many = encodeSafetensors([
    tensor('inputs', 'U8', [n], new Uint8Array(n)),
    tensor('labels', 'I32', [n], new Uint8Array(Int32Array.from({ length: n }, (_, i) => i).buffer)),
  ]);
  assert.equal((await convert(many)).summary.labelClasses, null);
  const exactly = encodeSafetensors([
    tensor('inputs', 'U8', [n - 1], new Uint8Array(n - 1)),
    tensor('labels', 'I32', [n - 1], new Uint8Array(Int32Array.from({ length: n - 1 }, (_, i) => i).buffer)),
  ]);
  assert.equal((await convert(exactly)).summary.labelClasses?.length, MAX_LABEL_CLASSES);
});

test('accepts a header padded with trailing spaces', async () => {
  const file = rawFile(
    { inputs: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, labels: { dtype: 'U8', shape: [1], data_offsets: [4, 5] } },
    Buffer.concat([f32(1), u8(3)]),
    '       ',
  );
  assert.equal((await convert(file)).summary.sampleCount, 1);
});

test('gives the same output whether the file comes in 1-byte, 7-byte, random or whole chunks', async () => {
  const file = encodeSafetensors([
    tensor('samples_0', 'F32', [5, 3], f32(...Array.from({ length: 15 }, (_, i) => i / 3))),
    tensor('samples_1', 'F16', [5], u16(1, 2, 3, 4, 5)),
    tensor('privacy_limit', 'F64', [], f64(4)),
    tensor('samples_2', 'BF16', [5, 1], u16(6, 7, 8, 9, 10)),
    tensor('labels', 'I64', [5], i64(0, 1, 2, 1, 0)),
  ]);
  const whole = await convert(file, file.length);
  for (const size of [1, 7]) {
    const split = await convert(file, size);
    assert.deepEqual(split.output, whole.output, `${size}-byte chunks`);
    assert.deepEqual(split.summary, whole.summary);
    assert.deepEqual(split.extras, whole.extras);
  }
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }), async (sizes) => {
      let i = 0;
      const split = await convert(file, () => sizes[i++ % sizes.length]!);
      assert.deepEqual(split.output, whole.output);
    }),
    { numRuns: 50 },
  );
});

test('writes tensor bytes chunk by chunk as they arrive rather than whole tensors', async () => {
  const file = encodeSafetensors([
    tensor('inputs', 'U8', [1000], new Uint8Array(1000)),
    tensor('labels', 'U8', [1000], new Uint8Array(1000)),
  ]);
  const { sink } = await convert(file, 100);
  assert.ok(sink.writes > 20, `wrote in ${sink.writes} pieces`);
});

test('converts finite floats of every float dtype, including the largest finite values', async () => {
  const file = encodeSafetensors([
    tensor('inputs.0', 'F64', [2], f64(Number.MAX_VALUE, -Number.MIN_VALUE)),
    tensor('inputs.1', 'F32', [2], f32(3.4028234663852886e38, -0)),
    tensor('inputs.2', 'F16', [2], u16(0x7bff, 0xfbff)),
    tensor('inputs.3', 'BF16', [2], u16(0x7f7f, 0xff7f)),
    tensor('labels', 'F32', [2], f32(-1, 1)),
  ]);
  assert.equal((await convert(file)).summary.inputs.length, 4);
});

// ---------------------------------------------------------------------------------------------------
// conversion: refusals of the file layout

test('refuses the reference mlp.io.safetensors with 422 saying the labels tensor is missing', async () => {
  const file = readFileSync(REFERENCE);
  await refuses(file, /no "labels" tensor/);
  await refuses(file, /"input", "output", "grad_output", "param_grads" are not dataset tensors/);
});

test('refuses a file shorter than the 8-byte header length', async () => {
  await refuses(u8(1, 2, 3), /has 3 bytes, fewer than the 8/);
  await refuses(new Uint8Array(0), /has 0 bytes/);
});

test('refuses a header length above 16 MiB', async () => {
  const file = Buffer.alloc(64);
  file.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES + 1));
  await refuses(file, /header length 16777217 exceeds the limit of 16777216 bytes/);
  file.writeBigUInt64LE(2n ** 64n - 1n);
  await refuses(file, /header length 18446744073709551615 exceeds/);
});

test('refuses a header length that runs past the end of the file', async () => {
  const file = Buffer.alloc(20);
  file.writeBigUInt64LE(13n);
  await refuses(file, /header length 13 runs past the end of the 20-byte file/);
});

test('refuses a header that does not start with {', async () => {
  await refuses(rawHeaderFile(' {}'), /does not start with '\{'/);
  await refuses(rawHeaderFile('[]'), /does not start with '\{'/);
  await refuses(rawHeaderFile(''), /does not start with '\{'/);
});

test('refuses a header that is not UTF-8 or not JSON', async () => {
  await refuses(rawHeaderFile(Buffer.concat([Buffer.from('{"'), u8(0xff, 0xfe), Buffer.from('":1}')])), /not valid UTF-8/);
  await refuses(rawHeaderFile('{"inputs": {'), /not valid JSON/);
  await refuses(rawHeaderFile('{} {}'), /not valid JSON/);
});

test('refuses dtypes datasets do not accept, naming the tensor and the dtype', async () => {
  for (const dtype of ['F8_E4M3', 'F8_E5M2', 'C64', 'U32']) {
    const file = rawFile(
      { inputs: { dtype, shape: [1], data_offsets: [0, 1] }, labels: { dtype: 'U8', shape: [1], data_offsets: [1, 2] } },
      u8(0, 0),
    );
    await refuses(file, new RegExp(`tensor "inputs" has dtype ${dtype}, which datasets do not accept \\(accepted: F64, F32`));
  }
  const unknown = rawFile({ labels: { dtype: 'Q4_K', shape: [1], data_offsets: [0, 1] } }, u8(0));
  await refuses(unknown, /tensor "labels" has unknown dtype "Q4_K"/);
  const missing = rawFile({ labels: { shape: [1], data_offsets: [0, 1] } }, u8(0));
  await refuses(missing, /tensor "labels": dtype is missing/);
});

test('refuses shapes that are not arrays of non-negative integers', async () => {
  for (const shape of [[-1], [1.5], ['2'], 3, [2 ** 53]]) {
    const file = rawFile({ labels: { dtype: 'U8', shape, data_offsets: [0, 1] } }, u8(0));
    await refuses(file, /tensor "labels": shape must be an array of non-negative integers/);
  }
  const huge = rawFile({ labels: { dtype: 'F64', shape: [2 ** 30, 2 ** 30], data_offsets: [0, 1] } }, u8(0));
  await refuses(huge, /tensor "labels": shape \[1073741824, 1073741824\] is too large/);
});

test('refuses malformed data_offsets', async () => {
  for (const offsets of [[0], [0, 1, 2], [-1, 0], ['0', '1'], null]) {
    const file = rawFile({ labels: { dtype: 'U8', shape: [1], data_offsets: offsets } }, u8(0));
    await refuses(file, /tensor "labels": data_offsets must be two non-negative integers/);
  }
  const backwards = rawFile({ labels: { dtype: 'U8', shape: [0], data_offsets: [1, 0] } }, u8(0));
  await refuses(backwards, /tensor "labels": data_offsets \[1, 0\] end before they begin/);
});

test('refuses a header whose sizes lie about the shape, naming the tensor', async () => {
  const file = rawFile(
    { inputs: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] }, labels: { dtype: 'U8', shape: [2], data_offsets: [20, 22] } },
    new Uint8Array(22),
  );
  await refuses(file, /tensor "inputs": shape \[2, 3\] of F32 needs 24 bytes but data_offsets \[0, 20\] span 20/);
});

test('refuses offsets that run past the data section, naming the tensor', async () => {
  const file = rawFile(
    { inputs: { dtype: 'U8', shape: [2], data_offsets: [0, 2] }, labels: { dtype: 'U8', shape: [2], data_offsets: [2, 4] } },
    u8(1, 2, 3),
  );
  await refuses(file, /tensor "labels": data_offsets \[2, 4\] run past the 3-byte data section/);
});

test('refuses overlapping tensors, naming both', async () => {
  const file = rawFile(
    { inputs: { dtype: 'U8', shape: [2], data_offsets: [0, 2] }, labels: { dtype: 'U8', shape: [2], data_offsets: [1, 3] } },
    u8(1, 2, 3),
  );
  await refuses(file, /tensor "labels" at data offset 1 overlaps tensor "inputs", which ends at 2/);
});

test('refuses a gap between tensors', async () => {
  const file = rawFile(
    { inputs: { dtype: 'U8', shape: [1], data_offsets: [0, 1] }, labels: { dtype: 'U8', shape: [1], data_offsets: [3, 4] } },
    u8(1, 2, 3, 4),
  );
  await refuses(file, /tensor "labels" begins at data offset 3, leaving a gap of 2 bytes after offset 1/);
  const leading = rawFile(
    { inputs: { dtype: 'U8', shape: [1], data_offsets: [1, 2] }, labels: { dtype: 'U8', shape: [1], data_offsets: [2, 3] } },
    u8(1, 2, 3),
  );
  await refuses(leading, /tensor "inputs" begins at data offset 1, leaving a gap of 1 bytes after offset 0/);
});

test('refuses bytes in the data section that no tensor covers', async () => {
  const file = rawFile(
    { inputs: { dtype: 'U8', shape: [1], data_offsets: [0, 1] }, labels: { dtype: 'U8', shape: [1], data_offsets: [1, 2] } },
    u8(1, 2, 3, 4),
  );
  await refuses(file, /2 trailing bytes after the last tensor, at data offset 2/);
});

test('refuses unknown fields in a tensor entry and a __metadata__ that is not a string map', async () => {
  const extra = rawFile({ labels: { dtype: 'U8', shape: [1], data_offsets: [0, 1], offset: 0 } }, u8(0));
  await refuses(extra, /tensor "labels": unknown header field "offset"/);
  const notObject = rawFile({ labels: 'U8' }, u8(0));
  await refuses(notObject, /tensor "labels": the header entry is not an object/);
  const badMetadata = rawFile({ __metadata__: { version: 2 }, labels: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, u8(0));
  await refuses(badMetadata, /__metadata__ entry "version" is not a string/);
  const listMetadata = rawFile({ __metadata__: ['a'], labels: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, u8(0));
  await refuses(listMetadata, /__metadata__ is not an object/);
});

// ---------------------------------------------------------------------------------------------------
// conversion: refusals of names and shapes

test('refuses an unexpected tensor name even when labels are present', async () => {
  const file = encodeSafetensors([
    tensor('inputs', 'U8', [1], u8(1)),
    tensor('weights', 'U8', [1], u8(1)),
    tensor('labels', 'U8', [1], u8(1)),
  ]);
  await refuses(file, /^tensor "weights" is not a dataset tensor/);
});

test('refuses feature tensors numbered with a gap, naming the missing one', async () => {
  const samples = encodeSafetensors([
    tensor('samples_0', 'U8', [1], u8(1)),
    tensor('samples_2', 'U8', [1], u8(1)),
    tensor('labels', 'U8', [1], u8(1)),
  ]);
  await refuses(samples, /numbered from 0 without gaps, but "samples_1" is missing/);
  const canonical = encodeSafetensors([tensor('inputs.1', 'U8', [1], u8(1)), tensor('labels', 'U8', [1], u8(1))]);
  await refuses(canonical, /"inputs.0" is missing/);
  const leadingZero = encodeSafetensors([
    tensor('samples_0', 'U8', [1], u8(1)),
    tensor('samples_01', 'U8', [1], u8(1)),
    tensor('labels', 'U8', [1], u8(1)),
  ]);
  await refuses(leadingZero, /tensor "samples_01" is not a dataset tensor/);
});

test('refuses feature tensors that mix naming schemes', async () => {
  const file = encodeSafetensors([
    tensor('inputs', 'U8', [1], u8(1)),
    tensor('samples_0', 'U8', [1], u8(1)),
    tensor('labels', 'U8', [1], u8(1)),
  ]);
  await refuses(file, /mix the naming schemes "inputs" and "samples_<i>"/);
});

test('refuses a file with labels but no feature tensor', async () => {
  const file = encodeSafetensors([tensor('labels', 'U8', [1], u8(1)), tensor('privacy_limit', 'F32', [], f32(1))]);
  await refuses(file, /has no feature tensor/);
});

test('lists at most five unexpected names', async () => {
  const names = Array.from({ length: 8 }, (_, i) => `t${i}`);
  const file = encodeSafetensors(names.map((n) => tensor(n, 'U8', [1], u8(0))));
  await refuses(file, /"t0", "t1", "t2", "t3", "t4" and 3 more are not dataset tensors/);
});

test('refuses a scalar feature or label tensor', async () => {
  const file = encodeSafetensors([tensor('inputs', 'F32', [], f32(1)), tensor('labels', 'U8', [1], u8(1))]);
  await refuses(file, /tensor "inputs" is a scalar/);
  const labels = encodeSafetensors([tensor('inputs', 'F32', [1], f32(1)), tensor('labels', 'U8', [], u8(1))]);
  await refuses(labels, /tensor "labels" is a scalar/);
});

test('refuses tensors whose first dimensions differ, naming the tensor', async () => {
  const file = encodeSafetensors([
    tensor('samples_0', 'U8', [2, 2], u8(1, 2, 3, 4)),
    tensor('samples_1', 'U8', [3], u8(1, 2, 3)),
    tensor('labels', 'U8', [2], u8(1, 1)),
  ]);
  await refuses(file, /tensor "samples_1" has 3 samples \(first dimension\) but "samples_0" has 2/);
  const labels = encodeSafetensors([tensor('inputs', 'U8', [2], u8(1, 2)), tensor('labels', 'U8', [1], u8(1))]);
  await refuses(labels, /tensor "labels" has 1 samples/);
});

test('refuses a dataset with no samples', async () => {
  const file = encodeSafetensors([tensor('inputs', 'F32', [0, 4], new Uint8Array(0)), tensor('labels', 'I64', [0], new Uint8Array(0))]);
  await refuses(file, /no samples/);
});

test('refuses a privacy_limit that is not one number, or is NaN', async () => {
  const two = encodeSafetensors([
    tensor('inputs', 'U8', [1], u8(1)),
    tensor('labels', 'U8', [1], u8(1)),
    tensor('privacy_limit', 'F32', [2], f32(1, 2)),
  ]);
  await refuses(two, /"privacy_limit" must hold exactly one number, not shape \[2\]/);
  const nan = encodeSafetensors([
    tensor('inputs', 'U8', [1], u8(1)),
    tensor('labels', 'U8', [1], u8(1)),
    tensor('privacy_limit', 'F32', [], f32(NaN)),
  ]);
  await refuses(nan, /"privacy_limit" holds NaN/);
});

// ---------------------------------------------------------------------------------------------------
// conversion: refusals of values

test('refuses NaN and ±Inf in float features, naming the tensor, element and sample', async () => {
  const cases: [Dtype, Uint8Array, number][] = [
    ['F32', f32(0, 1, 2, NaN, 4, 5), 3],
    ['F64', f64(0, 1, 2, 3, -Infinity, 5), 4],
    ['F16', u16(0x3c00, 0x7c00, 0, 0, 0, 0), 1], // +Inf
    ['F16', u16(0, 0, 0, 0, 0, 0xfe00), 5], // NaN
    ['BF16', u16(0, 0, 0x7fc0, 0, 0, 0), 2], // NaN
    ['BF16', u16(0xff80, 0, 0, 0, 0, 0), 0], // -Inf
  ];
  for (const [dtype, data, element] of cases) {
    const file = encodeSafetensors([tensor('samples_0', dtype, [3, 2], data), tensor('labels', 'U8', [3], u8(0, 1, 0))]);
    const sample = Math.floor(element / 2);
    await refuses(file, new RegExp(`tensor "samples_0" holds NaN or ±Inf at element ${element} \\(sample ${sample}\\)`));
    await refuses(file, new RegExp(`at element ${element} `), file.length, 1);
  }
});

test('finds a NaN split across two chunks at every split point', async () => {
  const file = encodeSafetensors([tensor('inputs', 'F64', [3], f64(1, NaN, 2)), tensor('labels', 'U8', [3], u8(0, 1, 0))]);
  const dataStart = parseSafetensorsHeader(file, file.length).dataStartBytes;
  for (let cut = 1; cut < 8; cut++) {
    const boundary = dataStart + 8 + cut;
    async function* twoChunks() {
      yield file.subarray(0, boundary);
      yield file.subarray(boundary);
    }
    await assert.rejects(convertSafetensors(twoChunks(), collectingSink(), { sizeBytes: file.length }), refusal(/at element 1 /));
  }
});

test('refuses non-finite float labels', async () => {
  const file = encodeSafetensors([tensor('inputs', 'F32', [2], f32(1, 2)), tensor('labels', 'F32', [2], f32(0, Infinity))]);
  await refuses(file, /tensor "labels" holds NaN or ±Inf at element 1/);
});

test('refuses BOOL bytes other than 0 and 1', async () => {
  const file = encodeSafetensors([tensor('inputs', 'BOOL', [2], u8(1, 2)), tensor('labels', 'U8', [2], u8(0, 1))]);
  await refuses(file, /tensor "inputs" holds a BOOL byte other than 0 or 1 at element 1/);
});

const labelsOf = (dtype: Dtype, data: Uint8Array, count: number) =>
  encodeSafetensors([tensor('inputs', 'U8', [count], new Uint8Array(count)), tensor('labels', dtype, [count], data)]);

test('refuses a negative integer label, naming the element and the class-index rule', async () => {
  const rule = `integer labels must be class indices from 0 to ${MAX_CLASS_INDEX}`;
  await refuses(
    labelsOf('I64', i64(0, 1, -1), 3),
    new RegExp(`^tensor "labels" holds a negative label at element 2 \\(sample 2\\); ${rule}$`),
  );
  await refuses(labelsOf('I32', i32(-(2 ** 31), 0), 2), /holds a negative label at element 0 /);
  await refuses(labelsOf('I8', Uint8Array.of(0xff), 1), /holds a negative label at element 0 /);
});

test('refuses an I64 label of 2^63 − 1 (and 2^60), which no classifier has an output for', async () => {
  await refuses(
    labelsOf('I64', i64(0, 2n ** 63n - 1n), 2),
    new RegExp(`tensor "labels" holds a label above ${MAX_CLASS_INDEX} at element 1 \\(sample 1\\)`),
  );
  await refuses(labelsOf('I64', i64(2n ** 60n), 1), /holds a label above 16777215 at element 0 /);
  // The most negative int64 is negative, whatever a conversion to a double would make of it.
  await refuses(labelsOf('I64', i64(-(2n ** 63n)), 1), /holds a negative label at element 0 /);
});

test('accepts the class index MAX_CLASS_INDEX = 2^24 − 1 and refuses one more, in every integer dtype wide enough', async () => {
  assert.equal(MAX_CLASS_INDEX, 2 ** 24 - 1);
  for (const [dtype, encode] of [
    ['I64', i64],
    ['I32', i32],
  ] as const) {
    const { summary } = await convert(labelsOf(dtype, encode(0, MAX_CLASS_INDEX), 2));
    assert.deepEqual(summary.labelClasses, [0, MAX_CLASS_INDEX], dtype);
    await refuses(labelsOf(dtype, encode(0, MAX_CLASS_INDEX + 1), 2), /holds a label above 16777215 at element 1 /);
  }
  // Narrow dtypes cannot exceed the bound; bool and U8 cannot be negative.
  assert.deepEqual((await convert(labelsOf('U8', u8(255, 0), 2))).summary.labelClasses, [0, 255]);
  assert.deepEqual((await convert(labelsOf('I16', new Uint8Array(Int16Array.of(32767).buffer), 1))).summary.labelClasses, [32767]);
});

test('checks every label even beyond MAX_LABEL_CLASSES distinct values, and wherever a chunk splits it', async () => {
  const n = MAX_LABEL_CLASSES + 2;
  const values = Array.from({ length: n }, (_, i) => (i === n - 1 ? -1 : i));
  const file = labelsOf('I64', i64(...values), n);
  await refuses(file, new RegExp(`holds a negative label at element ${n - 1} \\(sample ${n - 1}\\)`));
  await refuses(file, new RegExp(`holds a negative label at element ${n - 1} `), file.length, 3);
});

test('float labels are regression targets: negative and huge values are accepted', async () => {
  const { summary } = await convert(labelsOf('F64', f64(-1, 2 ** 63, -1e300), 3));
  assert.equal(summary.labelClasses, null);
});

// ---------------------------------------------------------------------------------------------------
// conversion: refusals of the stream

test('refuses a stream that ends before the header does', async () => {
  const file = simple();
  await refuses(file.subarray(0, 5), /ends after 5 bytes, before its safetensors header length/, file.length);
  await refuses(file.subarray(0, 20), /ends inside the safetensors header, at byte 20 of/, file.length);
});

test('refuses a stream shorter than its header claims, naming the tensor it ends in', async () => {
  const file = simple();
  const cut = file.subarray(0, file.length - 3);
  await refuses(cut, new RegExp(`ends early, inside tensor "labels", at byte ${file.length - 3} of the ${file.length}`), file.length);
});

test('refuses trailing bytes beyond the last tensor', async () => {
  const file = simple();
  await refuses(Buffer.concat([file, u8(0)]), new RegExp(`trailing bytes beyond the last tensor, at byte ${file.length}`), file.length);
  await refuses(Buffer.concat([file, u8(0)]), /trailing bytes beyond the last tensor/, file.length, 1);
});

test('writes nothing when the header is refused, and stops reading the source', async () => {
  const file = rawFile({ inputs: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, u8(0));
  const sink = collectingSink();
  let closed = false;
  async function* source() {
    try {
      yield file.subarray(0, 10);
      yield file.subarray(10);
      yield new Uint8Array(100); // never reached
    } finally {
      closed = true;
    }
  }
  await assert.rejects(convertSafetensors(source(), sink, { sizeBytes: file.length }), refusal(/F8_E4M3/));
  assert.equal(sink.writes, 0);
  assert.ok(closed);
});

test('passes on an error from the source unchanged', async () => {
  const boom = new Error('disk on fire');
  async function* source() {
    yield simple().subarray(0, 30);
    throw boom;
  }
  await assert.rejects(convertSafetensors(source(), collectingSink(), { sizeBytes: simple().length }), (e) => e === boom);
});

// ---------------------------------------------------------------------------------------------------
// in-memory encode / read / header

const dtypeArb = fc.constantFrom(...DTYPES);
const tensorArb = fc.tuple(dtypeArb, fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 })).chain(([dtype, shape]) => {
  const bytes = shape.reduce((a, b) => a * b, 1) * dtypeSizeBytes[dtype];
  return fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((data) => ({ dtype, shape, data }));
});

test('encodeSafetensors and readSafetensors round-trip any tensors and metadata', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(
        fc.tuple(
          fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== '__metadata__'),
          tensorArb,
        ),
        { selector: ([name]) => name, maxLength: 6 },
      ),
      fc.option(fc.dictionary(fc.string(), fc.string()), { nil: undefined }),
      (entries, metadata) => {
        const tensors = entries.map(([name, t]) => ({ name, ...t }));
        const bytes = encodeSafetensors(tensors, metadata);
        const back = readSafetensors(bytes);
        assert.deepEqual(back.metadata, metadata === undefined ? null : { ...metadata });
        // Same tensors; zero-size ones share an offset, so compare regardless of order.
        const normal = (list: SafetensorsTensor[]) =>
          list.map((t) => ({ ...t, data: Buffer.from(t.data) })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        assert.deepEqual(normal(back.tensors), normal(tensors));
        assert.equal((bytes.readUInt32LE(0) + 8) % 8, 0, 'data section 8-byte aligned');
      },
    ),
  );
});

test('encodes and reads back a tensor named __proto__ like any other name', () => {
  const metadata = JSON.parse('{"__proto__": "x"}') as Record<string, string>; // an own key, not a prototype
  const bytes = encodeSafetensors([tensor('__proto__', 'U8', [2], u8(1, 2))], metadata);
  const back = readSafetensors(bytes);
  assert.deepEqual(Object.entries(back.metadata!), [['__proto__', 'x']]);
  assert.deepEqual(
    back.tensors.map((t) => t.name),
    ['__proto__'],
  );
  assert.deepEqual(Buffer.from(back.tensors[0]!.data), Buffer.from([1, 2]));
});

test('readSafetensors refuses what the header parser refuses', () => {
  const lying = rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4));
  assert.throws(() => readSafetensors(lying), refusal(/tensor "x": shape \[2\] of F32 needs 8 bytes but data_offsets \[0, 4\] span 4/));
  assert.throws(() => readSafetensors(simple().subarray(0, 40)), refusal(/ends inside the safetensors header|runs past the end/));
});

test('readSafetensors reads the reference file written by PyTorch', () => {
  const { metadata, tensors } = readSafetensors(readFileSync(REFERENCE));
  assert.equal(metadata?.model, 'mlp');
  assert.deepEqual(
    tensors.map((t) => [t.name, t.dtype, t.shape]),
    [
      ['input', 'F32', [8, 100]],
      ['output', 'F32', [8, 2]],
      ['grad_output', 'F32', [8, 2]],
      ['param_grads', 'F32', [92162]],
    ],
  );
});

test('encodeSafetensors refuses data whose length does not match the shape', () => {
  assert.throws(() => encodeSafetensors([tensor('x', 'F32', [2], f32(1))]), RangeError);
  assert.throws(() => encodeSafetensors([tensor('x', 'U8', [1], u8(1)), tensor('x', 'U8', [1], u8(1))]), RangeError);
  assert.throws(() => encodeSafetensors([tensor('__metadata__', 'U8', [1], u8(1))]), RangeError);
});

test('safetensorsHeaderLength and parseSafetensorsHeader work from a prefix of the file', () => {
  const file = simple();
  const n = safetensorsHeaderLength(file.subarray(0, 8), file.length);
  const header = parseSafetensorsHeader(file.subarray(0, 8 + n), file.length);
  assert.equal(header.dataStartBytes, 8 + n);
  assert.equal(header.dataSizeBytes, 24 + 24);
  assert.equal(header.metadata, null);
  assert.throws(() => parseSafetensorsHeader(file.subarray(0, 8 + n - 1), file.length), RangeError);
});

test('any truncated or bit-flipped file is converted or refused with UNPROCESSABLE_DATASET, never another error', async () => {
  const file = encodeSafetensors([
    tensor('samples_0', 'F32', [3, 2], f32(1, 2, 3, 4, 5, 6)),
    tensor('privacy_limit', 'F32', [], f32(1)),
    tensor('labels', 'I64', [3], i64(0, 1, 0)),
  ]);
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat({ max: file.length - 1 }), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
      fc.nat({ max: file.length }),
      fc.integer({ min: 1, max: 64 }),
      async (flips, keep, chunkSize) => {
        const damaged = Buffer.from(file.subarray(0, keep));
        for (const [at, mask] of flips) if (at < damaged.length) damaged[at] = damaged[at]! ^ mask;
        try {
          await convert(damaged, chunkSize, file.length);
        } catch (error) {
          assert.ok(error instanceof BastionError && error.code === 'UNPROCESSABLE_DATASET', String(error));
        }
      },
    ),
    { numRuns: 300 },
  );
});
