// Reading, validating, writing and streaming conversion of safetensors files
// (https://github.com/huggingface/safetensors: u64 LE header length N, N bytes of UTF-8 JSON, then the
// tensor data). It protects one invariant: bytes reach the canonical dataset only after a header that
// describes them exactly — accepted dtypes, sizes that match shapes, tensors that tile the data
// section with no gap or overlap — and only as finite numbers, integer labels only as class indices
// (canonical.ts, classIndexProblem); a header that lies about any of this is refused (422) naming the
// tensor. Conversion is one streaming pass in bounded memory: the header (≤ 16 MiB) plus a few bytes
// of an element split across two chunks, whatever the file's size.

import { BastionError } from '../../errors.js';
import { DTYPES, type Dtype, dtypeSizeBytes } from '../../vocabulary.js';
import {
  type ByteSink,
  CANONICAL_FORMAT,
  CLASS_INDEX_RULE,
  classIndexProblem,
  type DatasetSummary,
  inputName,
  LABELS_NAME,
  MAX_LABEL_CLASSES,
  quoteToken,
  type TensorLocation,
  type TensorSummary,
} from './canonical.js';

export type { ByteSink } from './canonical.js';

/** Largest header (the JSON part, N) accepted, in bytes. The reference implementation uses 100 MB. */
export const MAX_HEADER_BYTES = 16 * 1024 * 1024;

/** The tensor that BastionAI datasets carry beside their samples; skipped and reported, never stored. */
export const PRIVACY_LIMIT_NAME = 'privacy_limit';

const METADATA_KEY = '__metadata__';

/** dtype names of the safetensors format that datasets refuse, so the refusal can say "not accepted". */
const refusedDtypes = new Set(['U64', 'U32', 'U16', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'E8M0', 'C64', 'C128']);

const acceptedDtypes: ReadonlySet<string> = new Set(DTYPES);

/** One tensor as a header describes it; `dataOffsets` are relative to the start of the data section. */
export interface SafetensorsTensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** [begin, end) in bytes from the start of the data section (that is, from byte 8 + N of the file). */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** N: length of the JSON header in bytes. */
  headerSizeBytes: number;
  /** Offset of the data section in the file: 8 + N. */
  dataStartBytes: number;
  /** Size of the data section: fileSizeBytes − 8 − N; the tensors cover it exactly. */
  dataSizeBytes: number;
  /** `__metadata__`, or null when the header has none. */
  metadata: Record<string, string> | null;
  /**
   * Tensors in data order (by data_offsets; zero-size tensors at the same offset in header order).
   * Not the textual order of the JSON: JSON.parse moves integer-like keys first.
   */
  tensors: SafetensorsTensorInfo[];
}

function refuse(message: string): never {
  throw new BastionError('UNPROCESSABLE_DATASET', message);
}

const nameToken = (name: string): string => quoteToken(name, 40);

/** Quoted names, at most five, then how many more. */
function listNames(names: readonly string[]): string {
  const shown = names.slice(0, 5).map(nameToken).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}

/** Product of `shape`, or null when it is not a safe integer. */
function elementCount(shape: readonly number[]): number | null {
  let count = 1;
  for (const dim of shape) count *= dim;
  return Number.isSafeInteger(count) ? count : null;
}

/**
 * N, the header length declared by the first 8 bytes of a safetensors file of `fileSizeBytes` bytes,
 * after checking it is at most MAX_HEADER_BYTES and fits in the file. `prefix` must hold at least the
 * first 8 bytes of the file (or the whole file, if shorter). Throws UNPROCESSABLE_DATASET otherwise.
 */
export function safetensorsHeaderLength(prefix: Uint8Array, fileSizeBytes: number | null): number {
  if ((fileSizeBytes !== null && fileSizeBytes < 8) || prefix.length < 8) {
    refuse(
      `the file has ${Math.min(fileSizeBytes ?? prefix.length, prefix.length)} bytes, fewer than the 8 of a safetensors header length`,
    );
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    refuse(`the safetensors header length ${length} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const headerSizeBytes = Number(length);
  if (fileSizeBytes !== null && headerSizeBytes > fileSizeBytes - 8) {
    refuse(`the safetensors header length ${headerSizeBytes} runs past the end of the ${fileSizeBytes}-byte file`);
  }
  return headerSizeBytes;
}

function parseTensorEntry(name: string, value: unknown, dataSizeBytes: number): SafetensorsTensorInfo {
  const label = `tensor ${nameToken(name)}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) refuse(`${label}: the header entry is not an object`);
  const entry = value as Record<string, unknown>;
  for (const key of Object.keys(entry)) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') refuse(`${label}: unknown header field ${nameToken(key)}`);
  }
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') refuse(`${label}: dtype is missing or not a string`);
  if (!acceptedDtypes.has(dtype)) {
    const what = refusedDtypes.has(dtype) ? `dtype ${dtype}` : `unknown dtype ${quoteToken(dtype)}`;
    refuse(`${label} has ${what}, which datasets do not accept (accepted: ${DTYPES.join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isSafeInteger(d) && d >= 0)) {
    refuse(`${label}: shape must be an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o): o is number => Number.isSafeInteger(o) && o >= 0)) {
    refuse(`${label}: data_offsets must be two non-negative integers [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  const typed = dtype as Dtype;
  const count = elementCount(shape);
  const expectedBytes = count === null ? null : count * dtypeSizeBytes[typed];
  if (expectedBytes === null || !Number.isSafeInteger(expectedBytes)) refuse(`${label}: shape [${shape.join(', ')}] is too large`);
  if (end < begin) refuse(`${label}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end - begin !== expectedBytes) {
    refuse(
      `${label}: shape [${shape.join(', ')}] of ${typed} needs ${expectedBytes} bytes but ` +
        `data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  if (end > dataSizeBytes) refuse(`${label}: data_offsets [${begin}, ${end}] run past the ${dataSizeBytes}-byte data section`);
  return { name, dtype: typed, shape: [...shape], dataOffsets: [begin, end] };
}

/** Tensors sorted by where their bytes lie; refuses overlaps, gaps and uncovered trailing bytes. */
function checkTiling(tensors: readonly SafetensorsTensorInfo[], dataSizeBytes: number): SafetensorsTensorInfo[] {
  const sorted = [...tensors].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let previous: SafetensorsTensorInfo | null = null;
  for (const tensor of sorted) {
    const [begin] = tensor.dataOffsets;
    if (begin < cursor) {
      refuse(
        `tensor ${nameToken(tensor.name)} at data offset ${begin} overlaps tensor ${nameToken(previous!.name)}, which ends at ${cursor}`,
      );
    }
    if (begin > cursor) {
      refuse(
        `tensor ${nameToken(tensor.name)} begins at data offset ${begin}, leaving a gap of ${begin - cursor} bytes after offset ${cursor}`,
      );
    }
    cursor = tensor.dataOffsets[1];
    previous = tensor;
  }
  if (cursor !== dataSizeBytes) {
    refuse(`${dataSizeBytes - cursor} trailing bytes after the last tensor, at data offset ${cursor}`);
  }
  return sorted;
}

/**
 * Parses and validates the header of a safetensors file of `fileSizeBytes` bytes. `prefix` must hold
 * at least the first 8 + N bytes (see safetensorsHeaderLength), or the whole file; more is ignored.
 * `fileSizeBytes` null means a stream of yet unknown length: the data section is then what the
 * tensors tile, and the reader must check that the stream ends exactly there.
 * Throws UNPROCESSABLE_DATASET, naming the tensor, for any header that does not describe the file
 * exactly with accepted dtypes.
 */
export function parseSafetensorsHeader(prefix: Uint8Array, fileSizeBytes: number | null): SafetensorsHeader {
  const headerSizeBytes = safetensorsHeaderLength(prefix, fileSizeBytes);
  const dataStartBytes = 8 + headerSizeBytes;
  if (prefix.length < dataStartBytes) {
    if (fileSizeBytes === null || prefix.length < fileSizeBytes) {
      throw new RangeError(`parseSafetensorsHeader needs the first ${dataStartBytes} bytes, got ${prefix.length}`);
    }
    refuse(`the file ends inside the safetensors header, at byte ${prefix.length} of ${dataStartBytes}`);
  }
  const jsonBytes = prefix.subarray(8, dataStartBytes);
  if (jsonBytes[0] !== 0x7b) refuse(`the safetensors header does not start with '{'`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(jsonBytes);
  } catch {
    refuse('the safetensors header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    refuse('the safetensors header is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) refuse('the safetensors header is not a JSON object');

  const boundBytes = fileSizeBytes === null ? Number.MAX_SAFE_INTEGER : fileSizeBytes - dataStartBytes;
  let metadata: Record<string, string> | null = null;
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (name === METADATA_KEY) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) refuse('__metadata__ is not an object');
      const entries = Object.entries(value as Record<string, unknown>);
      const bad = entries.find(([, v]) => typeof v !== 'string');
      if (bad) refuse(`__metadata__ entry ${nameToken(bad[0])} is not a string`);
      metadata = Object.fromEntries(entries) as Record<string, string>;
      continue;
    }
    tensors.push(parseTensorEntry(name, value, boundBytes));
  }
  const dataSizeBytes = fileSizeBytes === null ? tensors.reduce((end, t) => Math.max(end, t.dataOffsets[1]), 0) : boundBytes;
  return { headerSizeBytes, dataStartBytes, dataSizeBytes, metadata, tensors: checkTiling(tensors, dataSizeBytes) };
}

interface HeaderEntry {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  dataOffsets: readonly [number, number];
}

/** The 8-byte length and JSON header for `entries` (in that key order), padded with spaces to 8 bytes. */
function encodeHeader(entries: readonly HeaderEntry[], metadata: Record<string, string> | undefined): Buffer {
  // No prototype: a tensor named "__proto__" must become a key, not replace the prototype.
  const header: Record<string, unknown> = Object.create(null);
  if (metadata !== undefined) header[METADATA_KEY] = metadata;
  for (const e of entries) header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: e.dataOffsets };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

/**
 * The header bytes (length + JSON) of a file holding `tensors` back to back in the given order, with
 * `metadata` as `__metadata__`. Used by converters that then stream each tensor's bytes in that order.
 */
export function encodeSafetensorsHeader(
  tensors: readonly { name: string; dtype: Dtype; shape: readonly number[] }[],
  metadata?: Record<string, string>,
): Buffer {
  let cursor = 0;
  const entries = tensors.map((t): HeaderEntry => {
    if (t.name === METADATA_KEY) throw new RangeError('a tensor may not be named __metadata__');
    if (!acceptedDtypes.has(t.dtype)) throw new RangeError(`dtype ${String(t.dtype)} is not a dataset dtype`);
    const count = t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) ? elementCount(t.shape) : null;
    if (count === null) throw new RangeError(`tensor ${nameToken(t.name)}: invalid shape [${t.shape.join(', ')}]`);
    const begin = cursor;
    cursor += count * dtypeSizeBytes[t.dtype];
    return { name: t.name, dtype: t.dtype, shape: t.shape, dataOffsets: [begin, cursor] };
  });
  if (new Set(entries.map((e) => e.name)).size !== entries.length) throw new RangeError('tensor names must be unique');
  return encodeHeader(entries, metadata);
}

export interface SafetensorsTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Little-endian element bytes, numel × dtype size long. */
  data: Uint8Array;
}

/**
 * Encodes `tensors` in memory as one safetensors file, data in the given order. For small datasets and
 * tests. Throws RangeError when a tensor's data length does not match its shape and dtype.
 */
export function encodeSafetensors(tensors: readonly SafetensorsTensor[], metadata?: Record<string, string>): Buffer {
  const header = encodeSafetensorsHeader(tensors, metadata);
  for (const t of tensors) {
    const expected = elementCount(t.shape)! * dtypeSizeBytes[t.dtype];
    if (t.data.length !== expected) {
      throw new RangeError(
        `tensor ${nameToken(t.name)}: shape [${t.shape.join(', ')}] of ${t.dtype} needs ${expected} bytes, got ${t.data.length}`,
      );
    }
  }
  return Buffer.concat([header, ...tensors.map((t) => t.data)]);
}

/**
 * Reads a whole safetensors file held in memory, validating its header as parseSafetensorsHeader does.
 * Tensors come in data order; their `data` are views into `bytes`, not copies.
 */
export function readSafetensors(bytes: Uint8Array): { metadata: Record<string, string> | null; tensors: SafetensorsTensor[] } {
  const header = parseSafetensorsHeader(bytes, bytes.length);
  return {
    metadata: header.metadata,
    tensors: header.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      data: bytes.subarray(header.dataStartBytes + t.dataOffsets[0], header.dataStartBytes + t.dataOffsets[1]),
    })),
  };
}

// ---------------------------------------------------------------------------------------------------
// Element checks while streaming

/**
 * Visits whole elements: `count` elements of the checker's dtype starting at `bytes[start]`. Returns
 * the index (within this call) of the first element that is refused, or −1.
 */
type ElementVisitor = (bytes: Uint8Array, start: number, count: number) => number;

// Bit-level tests for NaN and ±Inf (exponent bits all ones), on little-endian bytes.
const nonFiniteVisitors: Partial<Record<Dtype, ElementVisitor>> = {
  F64: (b, s, n) => {
    for (let i = 0, p = s; i < n; i++, p += 8) if ((b[p + 7]! & 0x7f) === 0x7f && (b[p + 6]! & 0xf0) === 0xf0) return i;
    return -1;
  },
  F32: (b, s, n) => {
    // Fast path: 4-byte aligned data read as u32 (the platform is little-endian, as safetensors is).
    if ((b.byteOffset + s) % 4 === 0) {
      const words = new Uint32Array(b.buffer, b.byteOffset + s, n);
      for (let i = 0; i < n; i++) if ((words[i]! & 0x7f800000) === 0x7f800000) return i;
      return -1;
    }
    for (let i = 0, p = s; i < n; i++, p += 4) if ((b[p + 3]! & 0x7f) === 0x7f && (b[p + 2]! & 0x80) === 0x80) return i;
    return -1;
  },
  F16: (b, s, n) => {
    for (let i = 0, p = s; i < n; i++, p += 2) if ((b[p + 1]! & 0x7c) === 0x7c) return i;
    return -1;
  },
  BF16: (b, s, n) => {
    for (let i = 0, p = s; i < n; i++, p += 2) if ((b[p + 1]! & 0x7f) === 0x7f && (b[p]! & 0x80) === 0x80) return i;
    return -1;
  },
};

const boolVisitor: ElementVisitor = (b, s, n) => {
  for (let i = 0; i < n; i++) if (b[s + i]! > 1) return i;
  return -1;
};

/** Reads element `p` (a byte offset) of an integer or bool tensor as a number; bigint for I64. */
function integerReader(dtype: Dtype): (view: DataView, p: number) => number | bigint {
  switch (dtype) {
    case 'I64':
      return (v, p) => v.getBigInt64(p, true);
    case 'I32':
      return (v, p) => v.getInt32(p, true);
    case 'I16':
      return (v, p) => v.getInt16(p, true);
    case 'I8':
      return (v, p) => v.getInt8(p);
    case 'U8':
    case 'BOOL':
      return (v, p) => v.getUint8(p);
    default:
      throw new RangeError(`${dtype} is not an integer dtype`);
  }
}

/**
 * Checks integer or bool labels against the class-index rule (classIndexProblem) and collects their
 * distinct values, up to MAX_LABEL_CLASSES + 1 of them. An element check (see ElementChecker) whose
 * `problem` names what the last refused label was.
 */
class LabelClassCollector {
  readonly classes = new Set<number>();
  readonly rule = CLASS_INDEX_RULE;
  problem = '';
  private readonly read: (view: DataView, p: number) => number | bigint;
  private readonly size: number;

  constructor(dtype: Dtype) {
    this.read = integerReader(dtype);
    this.size = dtypeSizeBytes[dtype];
  }

  get isOverflowing(): boolean {
    return this.classes.size > MAX_LABEL_CLASSES;
  }

  /** Refuses (returns the index of) the first label that is not a class index; counts the others. */
  readonly visit: ElementVisitor = (bytes, start, count) => {
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    for (let i = 0, p = start; i < count; i++, p += this.size) {
      const raw = this.read(view, p);
      const problem = classIndexProblem(raw);
      if (problem !== null) {
        this.problem = problem;
        return i;
      }
      // A class index is below 2^24: exact as a number, even when read as a bigint.
      if (!this.isOverflowing) this.classes.add(Number(raw));
    }
    return -1;
  };
}

/** A visitor and how its refusals read: "tensor <name> holds <problem> at element <i> (sample <s>)[; <rule>]". */
interface ElementCheck {
  visit: ElementVisitor;
  readonly problem: string;
  readonly rule?: string;
}

/** Feeds a tensor's bytes, in order and in pieces of any size, to visitors that see whole elements. */
class ElementChecker {
  private readonly carry: Uint8Array;
  private carried = 0;
  private elementIndex = 0;

  constructor(
    private readonly tensorName: string,
    private readonly size: number,
    /** `problem` is read after `visit` refused an element; a `rule` is stated after the refusal. */
    private readonly visitors: readonly ElementCheck[],
    /** Elements per sample (numel / shape[0]), to name the sample in refusals; 0 when unknown. */
    private readonly elementsPerSample: number,
  ) {
    this.carry = new Uint8Array(size);
  }

  feed(piece: Uint8Array): void {
    let pos = 0;
    if (this.carried > 0) {
      const take = Math.min(this.size - this.carried, piece.length);
      this.carry.set(piece.subarray(0, take), this.carried);
      this.carried += take;
      pos = take;
      if (this.carried < this.size) return;
      this.visit(this.carry, 0, 1);
      this.carried = 0;
    }
    const whole = Math.floor((piece.length - pos) / this.size);
    if (whole > 0) this.visit(piece, pos, whole);
    pos += whole * this.size;
    if (pos < piece.length) {
      this.carry.set(piece.subarray(pos), 0);
      this.carried = piece.length - pos;
    }
  }

  private visit(bytes: Uint8Array, start: number, count: number): void {
    for (const check of this.visitors) {
      const bad = check.visit(bytes, start, count);
      if (bad >= 0) {
        const index = this.elementIndex + bad;
        const sample = this.elementsPerSample > 0 ? ` (sample ${Math.floor(index / this.elementsPerSample)})` : '';
        const rule = check.rule === undefined ? '' : `; ${check.rule}`;
        refuse(`tensor ${nameToken(this.tensorName)} holds ${check.problem} at element ${index}${sample}${rule}`);
      }
    }
    this.elementIndex += count;
  }
}

// ---------------------------------------------------------------------------------------------------
// Conversion to the canonical form

type Role = { kind: 'input'; index: number } | { kind: 'labels' } | { kind: 'privacyLimit' };

const samplesPattern = /^samples_(0|[1-9]\d{0,8})$/;
const canonicalInputPattern = /^inputs\.(0|[1-9]\d{0,8})$/;

/**
 * Maps source tensor names to canonical roles: `inputs`, or `samples_0…samples_<k>` (BastionAI), or
 * `inputs.0…inputs.<k>` (already canonical), plus `labels` and an optional `privacy_limit`. Reports
 * every naming problem at once.
 */
function assignRoles(tensors: readonly SafetensorsTensorInfo[]): Map<string, Role> {
  const roles = new Map<string, Role>();
  const schemes = new Set<string>();
  const unexpected: string[] = [];
  for (const { name } of tensors) {
    const samples = samplesPattern.exec(name);
    const canonical = canonicalInputPattern.exec(name);
    if (name === LABELS_NAME) roles.set(name, { kind: 'labels' });
    else if (name === PRIVACY_LIMIT_NAME) roles.set(name, { kind: 'privacyLimit' });
    else if (name === 'inputs') {
      schemes.add('"inputs"');
      roles.set(name, { kind: 'input', index: 0 });
    } else if (samples) {
      schemes.add('"samples_<i>"');
      roles.set(name, { kind: 'input', index: Number(samples[1]) });
    } else if (canonical) {
      schemes.add('"inputs.<i>"');
      roles.set(name, { kind: 'input', index: Number(canonical[1]) });
    } else unexpected.push(name);
  }
  const problems: string[] = [];
  if (!roles.has(LABELS_NAME)) problems.push(`the file has no ${JSON.stringify(LABELS_NAME)} tensor`);
  if (unexpected.length > 0) {
    problems.push(
      `${unexpected.length > 1 ? 'tensors' : 'tensor'} ${listNames(unexpected)} ${unexpected.length > 1 ? 'are not dataset tensors' : 'is not a dataset tensor'} ` +
        `(a dataset holds "inputs", "samples_<i>" or "inputs.<i>", plus "labels" and optionally "privacy_limit")`,
    );
  }
  if (schemes.size > 1) problems.push(`feature tensors mix the naming schemes ${[...schemes].join(' and ')}`);
  const indices = [...roles.values()].flatMap((r) => (r.kind === 'input' ? [r.index] : []));
  if (indices.length === 0 && unexpected.length === 0) {
    problems.push('the file has no feature tensor ("inputs", "samples_0"… or "inputs.0"…)');
  } else if (schemes.size === 1) {
    const present = new Set(indices);
    const missing = indices.findIndex((_, i) => !present.has(i));
    if (missing >= 0) {
      const prefix = schemes.has('"samples_<i>"') ? 'samples_' : 'inputs.';
      problems.push(`feature tensors must be numbered from 0 without gaps, but ${JSON.stringify(prefix + missing)} is missing`);
    }
  }
  if (problems.length > 0) refuse(problems.join('; '));
  return roles;
}

/** What the conversion found besides the canonical dataset. */
export interface SafetensorsExtras {
  /** The value of a BastionAI `privacy_limit` tensor, when the file had one (may be ±Infinity). */
  privacyLimit?: number;
}

export interface SafetensorsConversion {
  summary: DatasetSummary;
  extras: SafetensorsExtras;
  /** Where each canonical tensor's bytes are in the source file (features in order, then labels). */
  sourceTensors: TensorLocation[];
}

/** The single number a privacy_limit tensor holds. */
function readScalar(dtype: Dtype, bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  switch (dtype) {
    case 'F64':
      return view.getFloat64(0, true);
    case 'F32':
      return view.getFloat32(0, true);
    case 'F16':
    case 'BF16': {
      const bits = view.getUint16(0, true);
      if (dtype === 'BF16') {
        const widened = new DataView(new ArrayBuffer(4));
        widened.setUint32(0, (bits << 16) >>> 0);
        return widened.getFloat32(0);
      }
      const sign = bits & 0x8000 ? -1 : 1;
      const exponent = (bits >> 10) & 0x1f;
      const fraction = bits & 0x3ff;
      if (exponent === 0x1f) return fraction ? Number.NaN : sign * Infinity;
      return exponent === 0 ? sign * fraction * 2 ** -24 : sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
    }
    default:
      return Number(integerReader(dtype)(view, 0));
  }
}

interface Segment {
  info: SafetensorsTensorInfo;
  /** Canonical name when the bytes go to the sink; null for a skipped tensor. */
  outputName: string | null;
  checker: ElementChecker | null;
  /** Where the bytes of a tensor read whole (privacy_limit) are kept. */
  captured: Uint8Array[] | null;
}

/** Reads from `iterator` until `buffered` holds at least `needBytes`; false when the source ended first. */
async function fill(iterator: AsyncIterator<Uint8Array>, buffered: Uint8Array[], needBytes: number): Promise<boolean> {
  let have = buffered.reduce((sum, c) => sum + c.length, 0);
  while (have < needBytes) {
    const next = await iterator.next();
    if (next.done) return false;
    buffered.push(next.value);
    have += next.value.length;
  }
  return true;
}

/**
 * Converts an uploaded safetensors dataset of `options.sizeBytes` bytes (null: a stream whose length is
 * not known yet; it must end exactly where the header says), read once from `source`, to the
 * canonical form written to `sink` (or only checked, when `sink` is null: `sourceTensors` then says
 * where the canonical tensors are in the source): feature tensors renamed `inputs.<i>`, `labels` kept, `privacy_limit`
 * skipped (its value reported in `extras`), source `__metadata__` replaced by the canonical format
 * marker. The output keeps the source's data order, so each source chunk is checked and written as it
 * arrives; memory held is the header (≤ MAX_HEADER_BYTES) and at most 7 bytes of a split element.
 * Throws UNPROCESSABLE_DATASET when the header, names, shapes or values are unusable, when the source
 * ends early or holds bytes beyond the last tensor.
 */
export async function convertSafetensors(
  source: AsyncIterable<Uint8Array>,
  sink: ByteSink | null,
  options: { sizeBytes: number | null },
): Promise<SafetensorsConversion> {
  const { sizeBytes } = options;
  if (sizeBytes !== null && (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0))
    throw new RangeError(`sizeBytes must be a non-negative integer, got ${sizeBytes}`);
  const iterator = source[Symbol.asyncIterator]();
  try {
    return await convertFrom(iterator, sink, sizeBytes);
  } finally {
    // Stop the source when we stop early (a refusal): it may hold a file open.
    await iterator.return?.();
  }
}

async function convertFrom(
  iterator: AsyncIterator<Uint8Array>,
  sink: ByteSink | null,
  sizeBytes: number | null,
): Promise<SafetensorsConversion> {
  const buffered: Uint8Array[] = [];
  if (!(await fill(iterator, buffered, Math.min(8, sizeBytes ?? 8)))) {
    refuse(`the file ends after ${Buffer.concat(buffered).length} bytes, before its safetensors header length`);
  }
  const headerSizeBytes = safetensorsHeaderLength(Buffer.concat(buffered), sizeBytes);
  const dataStart = 8 + headerSizeBytes;
  if (!(await fill(iterator, buffered, dataStart))) {
    refuse(`the file ends inside the safetensors header, at byte ${Buffer.concat(buffered).length} of ${dataStart}`);
  }
  const head = Buffer.concat(buffered);
  buffered.length = 0;
  const header = parseSafetensorsHeader(head, sizeBytes);
  const roles = assignRoles(header.tensors);

  // Shapes: every dataset tensor has the sample count as first dimension.
  const features = header.tensors
    .flatMap((t) => {
      const role = roles.get(t.name)!;
      return role.kind === 'input' ? [{ tensor: t, index: role.index }] : [];
    })
    .sort((a, b) => a.index - b.index);
  const labels = header.tensors.find((t) => t.name === LABELS_NAME)!;
  const privacyLimit = header.tensors.find((t) => t.name === PRIVACY_LIMIT_NAME) ?? null;
  const canonicalOrder = [...features.map((f) => f.tensor), labels];
  for (const t of canonicalOrder) {
    if (t.shape.length === 0) refuse(`tensor ${nameToken(t.name)} is a scalar; dataset tensors need the sample count as first dimension`);
  }
  const reference = canonicalOrder[0]!;
  const sampleCount = reference.shape[0]!;
  for (const t of canonicalOrder) {
    if (t.shape[0] !== sampleCount) {
      refuse(`tensor ${nameToken(t.name)} has ${t.shape[0]} samples (first dimension) but ${nameToken(reference.name)} has ${sampleCount}`);
    }
  }
  if (sampleCount === 0) refuse('the dataset has no samples (first dimension 0)');
  if (privacyLimit && elementCount(privacyLimit.shape) !== 1) {
    refuse(`tensor "privacy_limit" must hold exactly one number, not shape [${privacyLimit.shape.join(', ')}]`);
  }

  // Segments in source data order; the output keeps that order, so offsets follow it too.
  const canonicalNames = new Map<string, string>(features.map((f) => [f.tensor.name, inputName(f.index)]));
  canonicalNames.set(LABELS_NAME, LABELS_NAME);
  const labelClasses = ['F64', 'F32', 'F16', 'BF16'].includes(labels.dtype) ? null : new LabelClassCollector(labels.dtype);
  const outputOffsets = new Map<string, [number, number]>();
  let outputCursor = 0;
  const segments: Segment[] = header.tensors.map((info) => {
    const outputName = canonicalNames.get(info.name) ?? null;
    const bytes = info.dataOffsets[1] - info.dataOffsets[0];
    if (outputName !== null) {
      outputOffsets.set(outputName, [outputCursor, outputCursor + bytes]);
      outputCursor += bytes;
    }
    const visitors: ElementCheck[] = [];
    const nonFinite = nonFiniteVisitors[info.dtype];
    if (outputName !== null && nonFinite) visitors.push({ visit: nonFinite, problem: 'NaN or ±Inf' });
    if (outputName !== null && info.dtype === 'BOOL') visitors.push({ visit: boolVisitor, problem: 'a BOOL byte other than 0 or 1' });
    if (info.name === LABELS_NAME && labelClasses) visitors.push(labelClasses);
    const perSample = info.shape.length > 0 && info.shape[0]! > 0 ? elementCount(info.shape)! / info.shape[0]! : 0;
    return {
      info,
      outputName,
      checker: visitors.length > 0 ? new ElementChecker(info.name, dtypeSizeBytes[info.dtype], visitors, perSample) : null,
      captured: info.name === PRIVACY_LIMIT_NAME ? [] : null,
    };
  });

  const entries: HeaderEntry[] = canonicalOrder.map((t) => {
    const name = canonicalNames.get(t.name)!;
    return { name, dtype: t.dtype, shape: t.shape, dataOffsets: outputOffsets.get(name)! };
  });
  await sink?.write(encodeHeader(entries, { format: CANONICAL_FORMAT }));

  // Stream the data section, cutting each chunk at tensor boundaries.
  let cursor = 0; // data-section offset of the next byte
  let segmentIndex = 0;
  const consume = async (chunk: Uint8Array): Promise<void> => {
    let pos = 0;
    while (pos < chunk.length) {
      while (segmentIndex < segments.length && segments[segmentIndex]!.info.dataOffsets[1] <= cursor) segmentIndex++;
      const segment = segments[segmentIndex];
      if (segment === undefined) refuse(`trailing bytes beyond the last tensor, at byte ${dataStart + cursor} of the file`);
      const take = Math.min(chunk.length - pos, segment.info.dataOffsets[1] - cursor);
      const piece = chunk.subarray(pos, pos + take);
      segment.checker?.feed(piece);
      segment.captured?.push(Uint8Array.from(piece));
      if (segment.outputName !== null && sink) await sink.write(piece);
      pos += take;
      cursor += take;
    }
  };
  await consume(head.subarray(dataStart));
  for (;;) {
    const next = await iterator.next();
    if (next.done) break;
    await consume(next.value);
  }
  if (cursor < header.dataSizeBytes) {
    const inside = segments.find((s) => s.info.dataOffsets[1] > cursor)!;
    refuse(
      `the file ends early, inside tensor ${nameToken(inside.info.name)}, ` +
        `at byte ${dataStart + cursor} of the ${dataStart + header.dataSizeBytes} its header describes`,
    );
  }

  const extras: SafetensorsExtras = {};
  if (privacyLimit) {
    const segment = segments.find((s) => s.info === privacyLimit)!;
    const value = readScalar(privacyLimit.dtype, Buffer.concat(segment.captured!));
    if (Number.isNaN(value)) refuse('tensor "privacy_limit" holds NaN');
    extras.privacyLimit = value;
  }
  const summaryOf = (t: SafetensorsTensorInfo): TensorSummary => ({
    name: canonicalNames.get(t.name)!,
    dtype: t.dtype,
    shape: [...t.shape],
  });
  const summary: DatasetSummary = {
    sampleCount,
    inputs: features.map((f) => summaryOf(f.tensor)),
    labels: summaryOf(labels),
    labelClasses: labelClasses === null || labelClasses.isOverflowing ? null : [...labelClasses.classes].sort((a, b) => a - b),
  };
  const sourceTensors: TensorLocation[] = canonicalOrder.map((t) => ({
    ...summaryOf(t),
    offsetBytes: dataStart + t.dataOffsets[0],
    sizeBytes: t.dataOffsets[1] - t.dataOffsets[0],
  }));
  return { summary, extras, sourceTensors };
}
