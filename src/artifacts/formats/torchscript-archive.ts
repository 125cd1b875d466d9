// The pre-load check of an uploaded TorchScript archive (model or dataset): the TypeScript gate every
// upload passes BEFORE libtorch ever sees its bytes. It owns the rule "libtorch's loader is only ever
// handed an archive whose every byte it will read has been looked at here", and protects the
// invariant that torch::jit::load, which upstream calls unsafe for untrusted input (pytorch#77573,
// "there is no safe mode for jit.load"), cannot be driven into an out-of-bounds read or write, a
// decompression bomb, or code that runs during loading (shared/notes/libtorch-addon.md §6):
//
// - the zip: one top folder, plain names (no absolute or `..`, no name twice even case-insensitively,
//   since libtorch's miniz looks records up case-insensitively), stored or deflate only, CRC-32 and
//   sizes verified by actually decompressing under a hard cap, a total size and a ratio bound;
// - the pickles libtorch reads (data.pkl, constants.pkl, code/**.debug_pkl): only the opcodes, memo
//   use and globals libtorch's own Unpickler accepts and that are safe (see `allowedGlobal`); every
//   storage record exists with exactly numel × element size bytes; every tensor view lies inside its
//   storage;
// - the code: no `__setstate__` (TorchScript runs it inside torch::jit::load) and no `torch.classes`
//   (C++ custom classes whose __setstate__ parses file bytes).
//
// It reports the first problem only, unlike the validators that list every problem: an archive that
// fails here is hostile or broken, and which of its other parts are also bad is of no use to the
// uploader. Messages are one line, name the entry, and quote at most a few dozen bytes of content.
// Operator-level checks (which ops a graph may call) happen after loading, in the addon.
//
// The addon checks archives again as it loads them (addon/src/core/archive_check.cc, in every
// LoadModule: the sandbox child's, then each pool worker's). Both exist on purpose, as defence in
// depth: this check keeps every byte of a hostile archive from libtorch and needs no process of its
// own; that one runs inside the disposable process, with libtorch's own zip reader and TorchScript
// parser, so it also refuses source constructs this module does not parse (deep nesting, unannotated
// class attributes) and re-checks the pickles' memo fields.
import { Buffer } from 'node:buffer';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { crc32, createInflateRaw } from 'node:zlib';
import yauzl from 'yauzl';
import { BastionError } from '../../errors.js';
import { type PickleCall, PickleError, type PickleGlobal, type PickleValue, readPickle, walkPickle } from './pickle.js';

export type ArtifactKind = 'model' | 'dataset';

export interface CheckTorchscriptArchiveOptions {
  /** Which upload this is: decides the error code (UNPROCESSABLE_MODEL or UNPROCESSABLE_DATASET). */
  kind: ArtifactKind;
  /** Bound on the sum of all entries' uncompressed sizes. Default 8 GiB. */
  maxUncompressedBytes?: number;
  /** Bound on the number of zip entries. Default 100,000. */
  maxEntries?: number;
  /** Bound on each pickle's uncompressed size. Default 64 MiB. */
  maxPickleBytes?: number;
  /** Bound on the summed uncompressed size of the code/ entries (sources and debug pickles). Default 64 MiB. */
  maxCodeBytes?: number;
  /**
   * Bound on what the deflated entries inflate to, all together (stored entries cannot inflate).
   * torch.jit.save stores its records uncompressed; many small deflated entries would otherwise pass
   * the per-entry ratio check and still inflate to gigabytes in libtorch. Default 256 MiB.
   */
  maxInflatedBytes?: number;
}

/** What a refusal was about; also in the error's `details.extensions.problem`. */
export const ArchiveProblem = {
  EMPTY: 'empty',
  NOT_A_ZIP: 'not-a-zip',
  TOO_MANY_ENTRIES: 'too-many-entries',
  BAD_ENTRY_NAME: 'bad-entry-name',
  OUTSIDE_TOP_FOLDER: 'outside-top-folder',
  DUPLICATE_ENTRY: 'duplicate-entry',
  UNSUPPORTED_COMPRESSION: 'unsupported-compression',
  ENCRYPTED_ENTRY: 'encrypted-entry',
  TOO_LARGE: 'too-large',
  ZIP_BOMB: 'zip-bomb',
  CORRUPT_ENTRY: 'corrupt-entry',
  MISSING_RECORD: 'missing-record',
  BAD_RECORD: 'bad-record',
  BAD_PICKLE: 'bad-pickle',
  FORBIDDEN_GLOBAL: 'forbidden-global',
  BAD_STORAGE: 'bad-storage',
  STORAGE_SIZE_MISMATCH: 'storage-size-mismatch',
  TENSOR_OUT_OF_BOUNDS: 'tensor-out-of-bounds',
  LOAD_TIME_CODE: 'load-time-code',
} as const;
export type ArchiveProblem = (typeof ArchiveProblem)[keyof typeof ArchiveProblem];

/** PyTorch dtype names of the storage types an archive may hold. */
export type StorageDtype =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool'
  | 'complex64'
  | 'complex128';

export interface ArchiveStorage {
  /** The zip entry holding the bytes, e.g. `mnist_cnn/data/0`. */
  record: string;
  /** The pickle that references it: data.pkl (records under data/) or constants.pkl (constants/). */
  pickle: 'data.pkl' | 'constants.pkl';
  key: string;
  dtype: StorageDtype;
  numel: number;
  sizeBytes: number;
}

export interface ArchiveReport {
  /** The one folder every entry is in (libtorch's "archive name"), e.g. `mnist_cnn`. */
  topFolder: string;
  entryCount: number;
  totalUncompressedBytes: number;
  /** The content of `<top>/version`. */
  fileFormatVersion: number;
  /** Every storage data.pkl and constants.pkl reference, once each, sorted by record name. */
  storages: ArchiveStorage[];
  /** How many tensor rebuilds (`torch._utils._rebuild_tensor_v2`) the two pickles hold. */
  tensorCount: number;
  /** The `code/` source files scanned, as entry names, sorted. */
  codeFiles: string[];
  /**
   * Entries torch::jit::load (1.13) never reads and this check does not interpret, e.g.
   * `extra/*`, `traced_inputs.pkl` (written by torch 2.x traces), `.data/serialization_id`.
   */
  uninterpretedEntries: string[];
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const defaults = {
  maxUncompressedBytes: 8 * GiB,
  maxEntries: 100_000,
  maxPickleBytes: 64 * MiB,
  maxCodeBytes: 64 * MiB,
  maxInflatedBytes: 256 * MiB,
};
/** A deflated entry over this size must not expand more than `maxDeflateRatio` times. */
const bombThresholdBytes = 1 * MiB;
const maxDeflateRatio = 200;
/** Nesting depth of a pickle's value tree; real archives stay under 30. */
const maxPickleDepth = 500;
const maxTensorDims = 64;
const maxNameBytes = 1024;

/** Element sizes of the storage globals libtorch's unpickler maps to a dtype (quantized ones excluded). */
const storageTypes: Readonly<Record<string, { dtype: StorageDtype; elementBytes: number }>> = {
  FloatStorage: { dtype: 'float32', elementBytes: 4 },
  DoubleStorage: { dtype: 'float64', elementBytes: 8 },
  HalfStorage: { dtype: 'float16', elementBytes: 2 },
  BFloat16Storage: { dtype: 'bfloat16', elementBytes: 2 },
  LongStorage: { dtype: 'int64', elementBytes: 8 },
  IntStorage: { dtype: 'int32', elementBytes: 4 },
  ShortStorage: { dtype: 'int16', elementBytes: 2 },
  CharStorage: { dtype: 'int8', elementBytes: 1 },
  ByteStorage: { dtype: 'uint8', elementBytes: 1 },
  BoolStorage: { dtype: 'bool', elementBytes: 1 },
  ComplexFloatStorage: { dtype: 'complex64', elementBytes: 8 },
  ComplexDoubleStorage: { dtype: 'complex128', elementBytes: 16 },
};

const listBuilders = new Set(['build_intlist', 'build_doublelist', 'build_boollist', 'build_tensorlist']);

/**
 * Checks an uploaded TorchScript archive before it is loaded, and describes it. Throws BastionError
 * (UNPROCESSABLE_MODEL or UNPROCESSABLE_DATASET, by `kind`) naming the first problem found.
 */
export async function checkTorchscriptArchive(bytes: Uint8Array, options: CheckTorchscriptArchiveOptions): Promise<ArchiveReport> {
  const limits = {
    maxUncompressedBytes: options.maxUncompressedBytes ?? defaults.maxUncompressedBytes,
    maxEntries: options.maxEntries ?? defaults.maxEntries,
    maxPickleBytes: options.maxPickleBytes ?? defaults.maxPickleBytes,
    maxCodeBytes: options.maxCodeBytes ?? defaults.maxCodeBytes,
    maxInflatedBytes: options.maxInflatedBytes ?? defaults.maxInflatedBytes,
  };
  const code = options.kind === 'model' ? 'UNPROCESSABLE_MODEL' : 'UNPROCESSABLE_DATASET';
  const refuse = (problem: ArchiveProblem, message: string, entry?: string): BastionError =>
    new BastionError(code, `TorchScript archive refused: ${message}`, {
      extensions: { problem, ...(entry === undefined ? {} : { entry: show(entry) }) },
    });

  if (bytes.length === 0) throw refuse(ArchiveProblem.EMPTY, 'the upload is empty (0 bytes)');
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // --- The zip directory ---------------------------------------------------------------------------
  let zip: yauzl.ZipFile;
  try {
    // decodeStrings: false keeps names as the raw bytes miniz compares; they are validated below.
    zip = await yauzl.fromBufferPromise(buffer, {
      lazyEntries: true,
      validateEntrySizes: true,
      decodeStrings: false,
      strictFileNames: true,
      autoClose: false,
    });
  } catch (error) {
    throw refuse(ArchiveProblem.NOT_A_ZIP, `not a readable zip archive (${zipReason(error)})`);
  }
  if (zip.entryCount === 0) throw refuse(ArchiveProblem.EMPTY, 'the zip archive has no entries');
  if (zip.entryCount > limits.maxEntries) {
    throw refuse(
      ArchiveProblem.TOO_MANY_ENTRIES,
      `the zip archive has ${zip.entryCount} entries, more than the limit of ${limits.maxEntries}`,
    );
  }
  // torch::jit::load sniffs the first bytes: "PK" is a zip, "PTMF" at offset 4 a flatbuffer module
  // that would bypass every check here. Demand a real local file header at offset 0.
  if (!hasLocalHeaderAt0(buffer)) {
    throw refuse(
      ArchiveProblem.NOT_A_ZIP,
      'the zip archive does not start with a local file header (data before it, or a flatbuffer magic)',
    );
  }

  interface Record {
    name: string;
    /** The name after `<top>/`. */
    path: string;
    entry: yauzl.Entry;
    isDirectory: boolean;
  }
  const records: Record[] = [];
  const byName = new Map<string, Record>();
  const byFoldedName = new Map<string, string>();
  let topFolder: string | undefined;
  let totalUncompressedBytes = 0;
  let inflatedBytes = 0; // of the deflated entries
  try {
    for await (const entry of zip.eachEntry()) {
      const name = decodeEntryName(entry.fileNameRaw ?? (entry.fileName as unknown as Buffer), refuse);
      const shown = show(name);
      const top = name.split('/')[0]!;
      topFolder ??= top;
      if (!name.startsWith(`${topFolder}/`)) {
        throw refuse(
          ArchiveProblem.OUTSIDE_TOP_FOLDER,
          `${shown}: every entry must be inside the archive's one top folder ${show(topFolder)}/ (as torch.jit.save writes it)`,
          name,
        );
      }
      const folded = asciiLowerCase(name);
      const earlier = byFoldedName.get(folded);
      if (earlier !== undefined) {
        throw refuse(
          ArchiveProblem.DUPLICATE_ENTRY,
          earlier === name
            ? `${shown}: the name occurs twice in the zip directory`
            : `${shown}: the name differs from ${show(earlier)} only in letter case, and libtorch looks names up case-insensitively`,
          name,
        );
      }
      byFoldedName.set(folded, name);
      if ((entry.generalPurposeBitFlag & 0x1) !== 0) {
        throw refuse(ArchiveProblem.ENCRYPTED_ENTRY, `${shown}: the entry is encrypted`, name);
      }
      if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
        throw refuse(
          ArchiveProblem.UNSUPPORTED_COMPRESSION,
          `${shown}: compression method ${entry.compressionMethod} is not supported (only stored and deflate)`,
          name,
        );
      }
      totalUncompressedBytes += entry.uncompressedSize;
      if (totalUncompressedBytes > limits.maxUncompressedBytes) {
        throw refuse(
          ArchiveProblem.TOO_LARGE,
          `${shown}: the entries so far uncompress to ${totalUncompressedBytes} bytes, more than the ` +
            `limit of ${limits.maxUncompressedBytes}`,
          name,
        );
      }
      if (entry.compressionMethod === 8) {
        checkRatio(name, entry.uncompressedSize, entry.compressedSize, refuse);
        inflatedBytes += entry.uncompressedSize;
        if (inflatedBytes > limits.maxInflatedBytes) {
          throw refuse(
            ArchiveProblem.ZIP_BOMB,
            `${shown}: the deflated entries so far inflate to ${inflatedBytes} bytes, more than the ` +
              `limit of ${limits.maxInflatedBytes}; store large entries uncompressed, as torch.jit.save does`,
            name,
          );
        }
      }
      const isDirectory = name.endsWith('/');
      if (isDirectory && entry.uncompressedSize !== 0) {
        throw refuse(ArchiveProblem.BAD_ENTRY_NAME, `${shown}: a directory entry holds ${entry.uncompressedSize} bytes`, name);
      }
      const record = { name, path: name.slice(topFolder.length + 1), entry, isDirectory };
      records.push(record);
      byName.set(name, record);
    }
  } catch (error) {
    if (error instanceof BastionError) throw error;
    throw refuse(ArchiveProblem.NOT_A_ZIP, `the zip directory is damaged (${zipReason(error)})`);
  }
  const top = topFolder!;
  const find = (path: string): Record | undefined => byName.get(`${top}/${path}`);

  // --- Required records ----------------------------------------------------------------------------
  for (const required of ['data.pkl', 'constants.pkl', 'version']) {
    if (!find(required)) {
      throw refuse(
        ArchiveProblem.MISSING_RECORD,
        `${show(`${top}/${required}`)}: missing; a TorchScript archive (torch.jit.save) has data.pkl, constants.pkl and version`,
        `${top}/${required}`,
      );
    }
  }

  // --- Sizes: which entries are read, and the caps on them -----------------------------------------
  const isCode = (record: Record): boolean => asciiLowerCase(record.path).startsWith('code/') && !record.isDirectory;
  const isDebugPickle = (record: Record): boolean => isCode(record) && asciiLowerCase(record.path).endsWith('.debug_pkl');
  const pickleNames = new Set(['data.pkl', 'constants.pkl']);
  let codeBytes = 0;
  for (const record of records) {
    const size = record.entry.uncompressedSize;
    if ((pickleNames.has(record.path) || isDebugPickle(record)) && size > limits.maxPickleBytes) {
      throw refuse(
        ArchiveProblem.TOO_LARGE,
        `${show(record.name)}: the pickle is ${size} bytes, more than the limit of ${limits.maxPickleBytes}`,
        record.name,
      );
    }
    if (isCode(record)) {
      codeBytes += size;
      if (codeBytes > limits.maxCodeBytes) {
        throw refuse(
          ArchiveProblem.TOO_LARGE,
          `${show(record.name)}: the code files so far are ${codeBytes} bytes, more than the limit of ${limits.maxCodeBytes}`,
          record.name,
        );
      }
    }
  }

  // --- Every entry's bytes: decompressed under a hard cap, sizes and CRC-32 verified ---------------
  const contents = new Map<string, Buffer>();
  const wanted = (record: Record): boolean =>
    pickleNames.has(record.path) ||
    record.path === 'version' ||
    record.path === '.data/version' ||
    record.path === 'byteorder' ||
    isCode(record);
  for (const record of records) {
    if (record.isDirectory) continue;
    const data = await readEntry(zip, buffer, record.name, record.entry, wanted(record), refuse);
    if (data) contents.set(record.name, data);
  }

  // --- version and byteorder ----------------------------------------------------------------------
  const fileFormatVersion = readVersion(`${top}/version`, contents.get(`${top}/version`)!, refuse);
  if (find('.data/version')) readVersion(`${top}/.data/version`, contents.get(`${top}/.data/version`)!, refuse);
  const byteorder = contents.get(`${top}/byteorder`);
  if (byteorder && byteorder.toString('latin1') !== 'little') {
    throw refuse(
      ArchiveProblem.BAD_RECORD,
      `${show(`${top}/byteorder`)}: only little-endian archives are accepted, the ` +
        `record says ${show(byteorder.subarray(0, 16).toString('latin1'))}`,
      `${top}/byteorder`,
    );
  }

  // --- data.pkl and constants.pkl: globals, storages, tensor views ---------------------------------
  const storages = new Map<string, ArchiveStorage>();
  let tensorCount = 0;
  for (const [pickle, folder] of [
    ['data.pkl', 'data'],
    ['constants.pkl', 'constants'],
  ] as const) {
    const name = `${top}/${pickle}`;
    const root = parseTorchPickle(name, contents.get(name)!, refuse);
    const storageOf = new Map<PickleValue, ArchiveStorage>();
    walkPickle(root, (node) => {
      if (!isNode(node)) return;
      if (node.kind === 'global') checkGlobal(name, node, 'tensors', refuse);
      if (node.kind === 'persistent') {
        const storage = checkStorage(
          name,
          pickle,
          node.pid,
          (key) => find(`${folder}/${key}`)?.entry.uncompressedSize,
          `${top}/${folder}`,
          refuse,
        );
        storageOf.set(node, storage);
        const earlier = storages.get(storage.record);
        if (earlier && (earlier.dtype !== storage.dtype || earlier.numel !== storage.numel)) {
          throw refuse(
            ArchiveProblem.BAD_STORAGE,
            `${name}: storage ${show(storage.key)} is ` +
              `referenced as ${earlier.numel} × ${earlier.dtype} and as ${storage.numel} × ${storage.dtype}`,
            name,
          );
        }
        storages.set(storage.record, storage);
      }
    });
    walkPickle(root, (node) => {
      if (!isNode(node) || node.kind !== 'call') return;
      if (checkCall(name, node, 'tensors', refuse) === 'tensor') {
        checkTensorView(name, node, storageOf, refuse);
        tensorCount += 1;
      }
    });
  }

  // --- code/: debug pickles hold only source ranges; sources must not run code at load time --------
  const codeFiles: string[] = [];
  for (const record of records) {
    if (!isCode(record)) continue;
    const data = contents.get(record.name)!;
    if (isDebugPickle(record)) {
      const root = parseTorchPickle(record.name, data, refuse);
      walkPickle(root, (node) => {
        if (isNode(node) && node.kind === 'global') checkGlobal(record.name, node, 'source-ranges', refuse);
      });
      walkPickle(root, (node) => {
        if (!isNode(node)) return;
        if (node.kind === 'call') checkCall(record.name, node, 'source-ranges', refuse);
        if (node.kind === 'persistent') {
          throw refuse(
            ArchiveProblem.BAD_PICKLE,
            `${show(record.name)}: a debug pickle holds a storage reference; it may only hold source ranges`,
            record.name,
          );
        }
      });
      continue;
    }
    codeFiles.push(record.name);
    const text = data.toString('latin1');
    if (text.includes('__setstate__')) {
      throw refuse(
        ArchiveProblem.LOAD_TIME_CODE,
        `${show(record.name)}: the code defines or calls __setstate__, which torch::jit::load runs while loading; re-export the ` +
          `model without a custom __setstate__`,
        record.name,
      );
    }
    if (/torch[\s\\]*\.[\s\\]*classes/.test(text)) {
      throw refuse(
        ArchiveProblem.LOAD_TIME_CODE,
        `${show(record.name)}: the code refers to torch.classes (C++ custom classes such as quantized packed parameters run native ` +
          `__setstate__ code while loading)`,
        record.name,
      );
    }
  }

  const interpreted = (record: Record): boolean => record.isDirectory || wanted(record) || storages.has(record.name);
  return {
    topFolder: top,
    entryCount: records.length,
    totalUncompressedBytes,
    fileFormatVersion,
    storages: [...storages.values()].sort((a, b) => compareNames(a.record, b.record)),
    tensorCount,
    codeFiles: codeFiles.sort(compareNames),
    uninterpretedEntries: records
      .filter((record) => !interpreted(record))
      .map((record) => record.name)
      .sort(compareNames),
  };
}

type Refuse = (problem: ArchiveProblem, message: string, entry?: string) => BastionError;

function isNode(value: PickleValue): value is Exclude<PickleValue, null | boolean | number | bigint | string | Uint8Array> {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array);
}

function hasLocalHeaderAt0(buffer: Buffer): boolean {
  if (buffer.length < 30 || buffer.readUInt32LE(0) !== 0x04034b50) return false;
  return buffer.subarray(4, 8).toString('latin1') !== 'PTMF';
}

/** yauzl's reason, shortened to one line; it carries numbers and signatures, never entry content. */
function zipReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return printable(message.split('\n')[0] ?? '').slice(0, 120);
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

/**
 * An entry name or other archive-supplied text for a message: printable, at most 80 characters, cut
 * in the middle (the end of a path names the file).
 */
function show(text: string): string {
  const clean = printable(text);
  return clean.length > 80 ? `${clean.slice(0, 30)}...${clean.slice(-47)}` : clean;
}

function asciiLowerCase(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeEntryName(raw: Buffer, refuse: Refuse): string {
  if (raw.length === 0) throw refuse(ArchiveProblem.BAD_ENTRY_NAME, 'an entry has an empty name');
  if (raw.length > maxNameBytes)
    throw refuse(ArchiveProblem.BAD_ENTRY_NAME, `${show(raw.toString('latin1'))}: the entry name is longer than ${maxNameBytes} bytes`);
  let name: string;
  try {
    name = utf8.decode(raw);
  } catch {
    throw refuse(ArchiveProblem.BAD_ENTRY_NAME, `${show(raw.toString('latin1'))}: the entry name is not UTF-8`);
  }
  const shown = show(name);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name))
    throw refuse(ArchiveProblem.BAD_ENTRY_NAME, `${shown}: the entry name contains control characters`, name);
  if (name.includes('\\')) throw refuse(ArchiveProblem.BAD_ENTRY_NAME, `${shown}: the entry name contains a backslash`, name);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name))
    throw refuse(ArchiveProblem.BAD_ENTRY_NAME, `${shown}: the entry name is an absolute path`, name);
  const segments = (name.endsWith('/') ? name.slice(0, -1) : name).split('/');
  if (segments.length < 2 && !name.endsWith('/')) {
    throw refuse(
      ArchiveProblem.OUTSIDE_TOP_FOLDER,
      `${shown}: the entry is not inside a top folder (libtorch: "file in archive is not in a subdirectory")`,
      name,
    );
  }
  for (const segment of segments) {
    if (segment === '..' || segment === '.')
      throw refuse(ArchiveProblem.BAD_ENTRY_NAME, `${shown}: the entry name has a "${segment}" segment`, name);
    if (segment === '') throw refuse(ArchiveProblem.BAD_ENTRY_NAME, `${shown}: the entry name has an empty segment`, name);
  }
  return name;
}

function checkRatio(name: string, uncompressed: number, compressed: number, refuse: Refuse): void {
  if (uncompressed > bombThresholdBytes && uncompressed > maxDeflateRatio * Math.max(compressed, 1)) {
    throw refuse(
      ArchiveProblem.ZIP_BOMB,
      `${show(name)}: ${compressed} deflated bytes expand to ${uncompressed} (more than ${maxDeflateRatio}:1); store large entries ` +
        `uncompressed, as torch.jit.save does`,
      name,
    );
  }
}

/**
 * The bytes of one entry (when `keep`), after verifying what its directory record claims: a deflated
 * entry is inflated with the claimed size as a hard cap, so a header that lies is caught, not trusted.
 */
async function readEntry(
  zip: yauzl.ZipFile,
  buffer: Buffer,
  name: string,
  entry: yauzl.Entry,
  keep: boolean,
  refuse: Refuse,
): Promise<Buffer | undefined> {
  const corrupt = (why: string): BastionError => refuse(ArchiveProblem.CORRUPT_ENTRY, `${show(name)}: ${why}`, name);
  let start: number;
  try {
    ({ fileDataStart: start } = await zip.readLocalFileHeaderPromise(entry, { minimal: true }));
  } catch (error) {
    throw corrupt(`its local header is unreadable (${zipReason(error)})`);
  }
  const raw = buffer.subarray(start, start + entry.compressedSize);
  let data: Buffer | undefined;
  let crc: number;
  if (entry.compressionMethod === 0) {
    crc = await crc32Of(raw);
    data = keep ? raw : undefined;
  } else {
    const inflated = await inflateCapped(raw, entry.uncompressedSize, keep).catch((error: unknown) => {
      if (error instanceof InflateOverrun) {
        return corrupt(`it inflates to more than the ${entry.uncompressedSize} bytes its header declares`);
      }
      return corrupt(`it is not valid deflate data (${zipReason(error)})`);
    });
    if (inflated instanceof BastionError) throw inflated;
    if (inflated.size !== entry.uncompressedSize) {
      throw corrupt(`it inflates to ${inflated.size} bytes, but its header declares ${entry.uncompressedSize}`);
    }
    crc = inflated.crc;
    data = inflated.data;
  }
  if (crc !== entry.crc32) throw corrupt('its CRC-32 does not match the zip directory');
  return data;
}

class InflateOverrun extends Error {}

function inflateCapped(raw: Buffer, capBytes: number, keep: boolean): Promise<{ size: number; crc: number; data?: Buffer }> {
  return new Promise((resolve, reject) => {
    const inflate = createInflateRaw();
    const chunks: Buffer[] = [];
    let size = 0;
    let crc = 0;
    let done = false;
    inflate.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > capBytes) {
        done = true;
        inflate.destroy();
        reject(new InflateOverrun());
        return;
      }
      crc = crc32(chunk, crc);
      if (keep) chunks.push(chunk);
    });
    inflate.on('error', (error) => {
      if (done) return;
      done = true;
      reject(error);
    });
    inflate.on('end', () => {
      if (done) return;
      done = true;
      resolve({ size, crc, ...(keep ? { data: Buffer.concat(chunks, size) } : {}) });
    });
    inflate.end(raw);
  });
}

/** CRC-32 of a possibly large stored entry, yielding to the event loop between 16 MiB slices. */
async function crc32Of(data: Buffer): Promise<number> {
  const slice = 16 * MiB;
  let crc = 0;
  for (let at = 0; at < data.length; at += slice) {
    crc = crc32(data.subarray(at, at + slice), crc);
    if (at + slice < data.length) await yieldToLoop();
  }
  return crc;
}

function readVersion(name: string, data: Buffer, refuse: Refuse): number {
  const text = data.subarray(0, 32).toString('latin1');
  const match = data.length <= 16 ? /^\s*(\d{1,6})\s*$/.exec(text) : null;
  if (!match) {
    throw refuse(
      ArchiveProblem.BAD_RECORD,
      `${show(name)}: the file format version must be a decimal number, the record holds ${show(JSON.stringify(text.slice(0, 16)))}`,
      name,
    );
  }
  return Number(match[1]);
}

/**
 * Parses one pickle as libtorch's Unpickler would see it: first the opcode stream is checked against
 * the dialect libtorch reads (protocol 2, its opcode set, dense memo indices: libtorch grows its memo
 * table to the largest index it is given, so LONG_BINPUT 0xffffffff alone would allocate 64 GB),
 * then readPickle builds the value tree without executing anything.
 */
function parseTorchPickle(name: string, data: Buffer, refuse: Refuse): PickleValue {
  const problem = libtorchDialectProblem(data);
  if (problem) throw refuse(ArchiveProblem.BAD_PICKLE, `${show(name)}: ${problem}`, name);
  let root: PickleValue;
  try {
    root = readPickle(data);
  } catch (error) {
    const why = error instanceof PickleError ? error.message : 'unreadable';
    throw refuse(ArchiveProblem.BAD_PICKLE, `${show(name)}: ${printable(why).slice(0, 120)}`, name);
  }
  const depth = pickleDepth(root);
  if (depth === 'cyclic') throw refuse(ArchiveProblem.BAD_PICKLE, `${show(name)}: the pickled value contains itself`, name);
  if (depth > maxPickleDepth)
    throw refuse(ArchiveProblem.BAD_PICKLE, `${show(name)}: values are nested ${depth} deep, more than ${maxPickleDepth}`, name);
  return root;
}

/** Argument bytes of the fixed-size opcodes libtorch's Unpickler reads; the others are handled below. */
const fixedArgumentBytes: ReadonlyMap<number, number> = new Map([
  [0x28, 0],
  [0x88, 0],
  [0x89, 0],
  [0x4e, 0],
  [0x74, 0],
  [0x85, 0],
  [0x86, 0],
  [0x87, 0],
  [0x7d, 0],
  [0x65, 0],
  [0x6c, 0],
  [0x64, 0],
  [0x75, 0],
  [0x5d, 0],
  [0x29, 0],
  [0x81, 0],
  [0x62, 0],
  [0x52, 0],
  [0x51, 0],
  [0x73, 0], // MARK NEWTRUE NEWFALSE NONE TUPLE TUPLE1-3 EMPTY_DICT APPENDS LIST DICT SETITEMS EMPTY_LIST EMPTY_TUPLE NEWOBJ BUILD REDUCE BINPERSID SETITEM
  [0x4b, 1],
  [0x4d, 2],
  [0x4a, 4],
  [0x47, 8], // BININT1 BININT2 BININT BINFLOAT
]);

function libtorchDialectProblem(data: Uint8Array): string | undefined {
  if (data.length < 3 || data[0] !== 0x80 || data[1] !== 2) return 'not a pickle of protocol 2 (the only one libtorch reads)';
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 2;
  let memoSize = 0;
  const need = (n: number): boolean => pos + n <= data.length;
  while (pos < data.length) {
    const at = pos;
    const op = data[pos++]!;
    const fixed = fixedArgumentBytes.get(op);
    if (fixed !== undefined) {
      if (!need(fixed)) return `truncated at byte ${at}`;
      pos += fixed;
      continue;
    }
    switch (op) {
      case 0x2e: // STOP
        return pos === data.length ? undefined : `${data.length - pos} bytes after STOP`;
      case 0x71: // BINPUT
      case 0x72: {
        // LONG_BINPUT
        const width = op === 0x71 ? 1 : 4;
        if (!need(width)) return `truncated at byte ${at}`;
        const index = width === 1 ? data[pos]! : view.getUint32(pos, true);
        pos += width;
        if (index > memoSize) return `memo index ${index} at byte ${at} skips past the ${memoSize} entries stored so far`;
        if (index === memoSize) memoSize += 1;
        break;
      }
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const width = op === 0x68 ? 1 : 4;
        if (!need(width)) return `truncated at byte ${at}`;
        const index = width === 1 ? data[pos]! : view.getUint32(pos, true);
        pos += width;
        if (index >= memoSize) return `memo entry ${index} at byte ${at} does not exist`;
        break;
      }
      case 0x8a: // LONG1: libtorch reads only 8-byte ones
        if (!need(1) || data[pos] !== 8) return `LONG1 at byte ${at} is not 8 bytes long`;
        if (!need(9)) return `truncated at byte ${at}`;
        pos += 9;
        break;
      case 0x58: {
        // BINUNICODE
        if (!need(4)) return `truncated at byte ${at}`;
        const length = view.getUint32(pos, true);
        pos += 4;
        if (!need(length)) return `string at byte ${at} runs past the end`;
        pos += length;
        break;
      }
      case 0x63: // GLOBAL: two newline-terminated names
        for (let line = 0; line < 2; line += 1) {
          const end = data.indexOf(0x0a, pos);
          if (end < 0 || end - pos > 200) return `GLOBAL at byte ${at} has no name of at most 200 bytes`;
          pos = end + 1;
        }
        break;
      default:
        return `opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at} is not one libtorch's unpickler reads`;
    }
  }
  return 'no STOP opcode';
}

type PickleUse = 'tensors' | 'source-ranges';

function describeGlobal(node: PickleGlobal): string {
  return show(`${node.module}.${node.name}`);
}

/**
 * The globals allowed: exactly those libtorch's Unpickler gives a meaning to that are safe and that
 * torch.jit.save writes. Anything else either fails in libtorch anyway or is dangerous (quantized and
 * sparse rebuilds, custom classes, RPC references).
 */
function allowedGlobal(node: PickleGlobal, use: PickleUse): boolean {
  const { module, name } = node;
  if (use === 'source-ranges') return module === 'torch.jit._pickle' && listBuilders.has(name) && name !== 'build_tensorlist';
  if (module === 'torch._utils') return name === '_rebuild_tensor_v2';
  if (module === 'collections') return name === 'OrderedDict';
  if (module === 'torch.jit._pickle') return listBuilders.has(name) || name === 'restore_type_tag';
  if (module === 'torch') return name === 'device' || Object.hasOwn(storageTypes, name);
  if (module === 'builtins') return name === 'complex';
  // TorchScript class types (modules, scripted classes), resolved from the archive's own code/.
  if (module === '__torch__' || module.startsWith('__torch__.')) {
    const identifiers = /^[A-Za-z_][A-Za-z0-9_]*$/;
    return (
      module.split('.').every((part) => identifiers.test(part)) &&
      identifiers.test(name) &&
      !`${module}.`.startsWith('__torch__.torch.classes.')
    );
  }
  return false;
}

function checkGlobal(pickleName: string, node: PickleGlobal, use: PickleUse, refuse: Refuse): void {
  if (allowedGlobal(node, use)) return;
  throw refuse(
    ArchiveProblem.FORBIDDEN_GLOBAL,
    `${show(pickleName)}: the global ${describeGlobal(node)} is not allowed in a ` +
      `TorchScript ${use === 'tensors' ? 'archive' : 'debug pickle'}`,
    pickleName,
  );
}

const isInteger = (value: PickleValue): value is number | bigint =>
  (typeof value === 'number' && Number.isInteger(value)) || typeof value === 'bigint';
const isTuple = (value: PickleValue): value is { kind: 'tuple'; items: PickleValue[] } => isNode(value) && value.kind === 'tuple';
const isList = (value: PickleValue): boolean => isNode(value) && value.kind === 'list';

/** Checks the shape of one call; says whether it is a tensor rebuild (checked further by the caller). */
function checkCall(pickleName: string, call: PickleCall, use: PickleUse, refuse: Refuse): 'tensor' | 'other' {
  const bad = (why: string): BastionError => refuse(ArchiveProblem.BAD_PICKLE, `${show(pickleName)}: ${why}`, pickleName);
  const fn = call.fn;
  if (!isNode(fn) || fn.kind !== 'global') throw bad('a call whose callee is not a global');
  const callee = describeGlobal(fn);
  if (call.via === 'newobj') {
    // GLOBAL cls, EMPTY_TUPLE, NEWOBJ, state, BUILD: a TorchScript object and its attributes.
    if (use !== 'tensors' || !fn.module.startsWith('__torch__'))
      throw bad(`${callee} is instantiated, but only TorchScript classes may be`);
    if (call.state.length > 1) throw bad(`an object of ${callee} is built ${call.state.length} times`);
    return 'other';
  }
  if (call.state.length > 0) throw bad(`the result of ${callee} is given BUILD state`);
  const { module, name } = fn;
  const args = call.args;
  if (module === 'torch._utils' && name === '_rebuild_tensor_v2') return 'tensor';
  if (module === 'collections' && name === 'OrderedDict') {
    if (args.length !== 0) throw bad('collections.OrderedDict is called with arguments (torch writes it empty, for backward hooks)');
    return 'other';
  }
  if (module === 'torch.jit._pickle' && listBuilders.has(name)) {
    if (args.length !== 1 || !isList(args[0]!)) throw bad(`${callee} is not called with one list`);
    return 'other';
  }
  if (module === 'torch.jit._pickle' && name === 'restore_type_tag') {
    if (args.length !== 2 || typeof args[1] !== 'string' || args[1].length > 1000)
      throw bad(`${callee} is not called with a value and a type name`);
    return 'other';
  }
  if (module === 'torch' && name === 'device') {
    if (args.length !== 1 || typeof args[0] !== 'string' || !/^[a-z]+(:\d{1,4})?$/.test(args[0]))
      throw bad('torch.device is not called with a device name');
    return 'other';
  }
  if (module === 'builtins' && name === 'complex') {
    if (args.length !== 2 || typeof args[0] !== 'number' || typeof args[1] !== 'number')
      throw bad('builtins.complex is not called with two floats');
    return 'other';
  }
  throw bad(`${callee} is called, but it may only be referenced`);
}

/** `('storage', torch.<T>Storage, key, location, numel)`, with a record of numel × element size bytes. */
function checkStorage(
  pickleName: string,
  pickle: ArchiveStorage['pickle'],
  pid: PickleValue,
  recordSize: (key: string) => number | undefined,
  folder: string,
  refuse: Refuse,
): ArchiveStorage {
  const bad = (why: string): BastionError => refuse(ArchiveProblem.BAD_STORAGE, `${show(pickleName)}: ${why}`, pickleName);
  if (!isTuple(pid) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
    throw bad("a persistent id is not a ('storage', type, key, location, numel) tuple");
  }
  const [, type, key, location, numelValue] = pid.items as [PickleValue, PickleValue, PickleValue, PickleValue, PickleValue];
  if (!isNode(type) || type.kind !== 'global' || type.module !== 'torch' || !Object.hasOwn(storageTypes, type.name)) {
    throw bad(
      `a storage has type ${isNode(type) && type.kind === 'global' ? describeGlobal(type) : 'that is not a global'}, not one of ` +
        `torch's typed storages`,
    );
  }
  if (typeof key !== 'string' || !/^\d{1,12}$/.test(key)) throw bad('a storage key is not a decimal number');
  if (typeof location !== 'string' || !/^[a-z]+(:\d{1,4})?$/.test(location))
    throw bad(`storage ${key} has a location that is not a device name`);
  if (!isInteger(numelValue) || numelValue < 0 || numelValue > Number.MAX_SAFE_INTEGER)
    throw bad(`storage ${key} has a size that is not a non-negative integer`);
  const { dtype, elementBytes } = storageTypes[type.name]!;
  const numel = Number(numelValue);
  const sizeBytes = numel * elementBytes;
  const record = `${folder}/${key}`;
  const actual = recordSize(key);
  // libtorch reads no record for an empty storage.
  if (numel > 0 && actual === undefined) {
    throw refuse(ArchiveProblem.MISSING_RECORD, `${show(record)}: missing, but ${show(pickleName)} refers to it as storage ${key}`, record);
  }
  if (actual !== undefined && actual !== sizeBytes) {
    throw refuse(
      ArchiveProblem.STORAGE_SIZE_MISMATCH,
      `${show(record)}: the record holds ${actual} bytes, but ${show(pickleName)} declares ${numel} × ${dtype} (${sizeBytes} bytes)`,
      record,
    );
  }
  return { record, pickle, key, dtype, numel, sizeBytes };
}

/** `_rebuild_tensor_v2(storage, offset, size, stride, …)`: the view must lie inside its storage. */
function checkTensorView(pickleName: string, call: PickleCall, storageOf: Map<PickleValue, ArchiveStorage>, refuse: Refuse): void {
  const bad = (why: string): BastionError => refuse(ArchiveProblem.BAD_PICKLE, `${show(pickleName)}: ${why}`, pickleName);
  const [storageNode, offset, size, stride] = call.args;
  const storage = storageNode === undefined ? undefined : storageOf.get(storageNode);
  if (!storage) throw bad('a tensor rebuild does not start with a storage reference');
  const where = `tensor over storage ${storage.key}`;
  if (offset === undefined || !isInteger(offset) || offset < 0) throw bad(`${where}: the storage offset is not a non-negative integer`);
  if (size === undefined || stride === undefined || !isTuple(size) || !isTuple(stride))
    throw bad(`${where}: size and stride are not tuples`);
  if (size.items.length !== stride.items.length || size.items.length > maxTensorDims) {
    throw bad(`${where}: ${size.items.length} sizes and ${stride.items.length} strides (at most ${maxTensorDims}, and as many of each)`);
  }
  const sizes = size.items.map((value) => (isInteger(value) && value >= 0 ? BigInt(value) : undefined));
  const strides = stride.items.map((value) => (isInteger(value) && value >= 0 ? BigInt(value) : undefined));
  if (sizes.includes(undefined) || strides.includes(undefined)) throw bad(`${where}: sizes and strides must be non-negative integers`);
  const numel = BigInt(storage.numel);
  const start = BigInt(offset);
  const shape = `[${size.items.join(', ')}]`;
  if (sizes.some((n) => n === 0n)) {
    if (start > numel) {
      throw refuse(
        ArchiveProblem.TENSOR_OUT_OF_BOUNDS,
        `${show(pickleName)}: an empty tensor starts at element ${start}, past the end of storage ${storage.key} (${numel} elements)`,
        pickleName,
      );
    }
    return;
  }
  let last = start;
  for (let i = 0; i < sizes.length; i += 1) last += (sizes[i]! - 1n) * strides[i]!;
  if (last >= numel) {
    throw refuse(
      ArchiveProblem.TENSOR_OUT_OF_BOUNDS,
      `${show(pickleName)}: a tensor of shape ${show(shape)} reaches element ${last} of storage ${storage.key}, which has ${numel} ` +
        `elements (${show(storage.record)})`,
      pickleName,
    );
  }
}

/**
 * The nesting depth of a value tree, or 'cyclic'. Deep trees are refused because libtorch frees
 * nested IValues recursively; cycles because torch never writes them.
 */
function pickleDepth(root: PickleValue): number | 'cyclic' {
  const height = new Map<object, number>();
  const onPath = new Set<object>();
  const stack: { node: object; children: PickleValue[]; next: number; best: number }[] = [];
  const childrenOf = (value: PickleValue): PickleValue[] | undefined => {
    if (!isNode(value)) return undefined;
    switch (value.kind) {
      case 'tuple':
      case 'list':
      case 'set':
        return value.items;
      case 'dict':
        return value.entries.flat();
      case 'call':
        return [value.fn, ...value.args, ...value.state];
      case 'persistent':
        return [value.pid];
      case 'global':
        return [];
    }
  };
  const rootChildren = childrenOf(root);
  if (!rootChildren) return 0;
  stack.push({ node: root as object, children: rootChildren, next: 0, best: 0 });
  onPath.add(root as object);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.next < frame.children.length) {
      const child = frame.children[frame.next++]!;
      const grandchildren = childrenOf(child);
      if (!grandchildren) continue;
      const known = height.get(child as object);
      if (known !== undefined) {
        frame.best = Math.max(frame.best, known);
        continue;
      }
      if (onPath.has(child as object)) return 'cyclic';
      onPath.add(child as object);
      stack.push({ node: child as object, children: grandchildren, next: 0, best: 0 });
      continue;
    }
    stack.pop();
    onPath.delete(frame.node);
    const own = frame.best + 1;
    height.set(frame.node, own);
    if (stack.length > 0) stack[stack.length - 1]!.best = Math.max(stack[stack.length - 1]!.best, own);
    else return own;
  }
  return 0;
}
