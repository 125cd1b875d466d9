import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import yazl from 'yazl';
import { ArchiveProblem, checkTorchscriptArchive } from '../../src/artifacts/formats/torchscript-archive.js';
import { assertRefused, refusedModel } from '../helpers/archive-refusal.js';
import { testdataPath, torchscriptFiles, torchscriptProducers } from '../helpers/testdata.js';
import { buildZip, readZip, type ZipEntryInput } from '../helpers/zip.js';

const mnistFile = testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt');
const mnist = readFileSync(mnistFile);
const top = 'mnist_cnn.script';

/** mnist_cnn.script.pt rebuilt (stored entries) with the entries `edit` returns. */
function mnistWith(edit: (entries: ZipEntryInput[]) => ZipEntryInput[]): Buffer {
  return buildZip(edit(readZip(mnist).map(({ name, data }) => ({ name, data }))));
}

/** mnist_cnn.script.pt with the data of the entry named `name` replaced. */
function mnistReplacing(name: string, replace: (data: Buffer) => Buffer | string): Buffer {
  let found = false;
  const rebuilt = mnistWith((entries) =>
    entries.map((entry) => {
      if (entry.name !== name) return entry;
      found = true;
      return { ...entry, data: replace(Buffer.from(entry.data)) };
    }),
  );
  assert.ok(found, `no entry ${name}`);
  return rebuilt;
}

/** Replaces exactly one occurrence of `from` in `data`. */
function replaceOnce(data: Buffer, from: Buffer | string, to: Buffer | string): Buffer {
  const needle = Buffer.from(from);
  const at = data.indexOf(needle);
  assert.ok(at >= 0 && data.indexOf(needle, at + 1) < 0, `expected exactly one ${JSON.stringify(needle.toString('latin1'))}`);
  return Buffer.concat([data.subarray(0, at), Buffer.from(to), data.subarray(at + needle.length)]);
}

function yazlZip(entries: { name: string; data: Buffer; compress: boolean }[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const entry of entries) zip.addBuffer(entry.data, entry.name, { compress: entry.compress });
  zip.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    zip.outputStream.on('data', (chunk: Buffer) => chunks.push(chunk));
    zip.outputStream.on('error', reject);
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

// --- Real archives pass -------------------------------------------------------------------------------

for (const producer of torchscriptProducers) {
  test(`every TorchScript file written by ${producer} passes, transformer.trace_nograd included`, async () => {
    const files = torchscriptFiles(producer);
    assert.ok(files.length >= 12);
    for (const file of files) {
      const report = await checkTorchscriptArchive(readFileSync(file), { kind: 'model' });
      assert.equal(report.topFolder, path.basename(file, '.pt'), file);
      assert.ok(report.storages.length > 0, file);
      assert.equal(report.tensorCount, report.storages.length, `${file}: one tensor per storage`);
      assert.ok(report.codeFiles.length > 0, file);
      assert.ok(report.fileFormatVersion >= 3, file);
    }
  });
}

test('the report of mnist_cnn.script.pt lists its storages with dtype, numel and size, and its code files', async () => {
  const report = await checkTorchscriptArchive(mnist, { kind: 'model' });
  assert.equal(report.topFolder, top);
  assert.equal(report.entryCount, 21);
  assert.equal(
    report.totalUncompressedBytes,
    readZip(mnist).reduce((sum, entry) => sum + entry.data.length, 0),
  );
  assert.deepEqual(report.storages[0], {
    record: `${top}/data/0`,
    pickle: 'data.pkl',
    key: '0',
    dtype: 'float32',
    numel: 1024,
    sizeBytes: 4096,
  });
  assert.equal(
    report.storages.reduce((sum, storage) => sum + storage.numel, 0),
    26_010,
    'the parameter count in the README',
  );
  assert.ok(report.codeFiles.includes(`${top}/code/__torch__/common.py`));
  assert.deepEqual(report.uninterpretedEntries, []);
});

test('a dataset archive passes with kind "dataset"; its refusals carry UNPROCESSABLE_DATASET', async () => {
  const dataset = readFileSync(testdataPath('torchscript', 'torch-2.6', 'dataset_bastion.script.pt'));
  const report = await checkTorchscriptArchive(dataset, { kind: 'dataset' });
  assert.deepEqual(
    report.storages.map((storage) => [storage.dtype, storage.numel]),
    [
      ['float32', 78_400],
      ['int64', 100],
      ['float32', 1],
    ],
  );
  assert.ok(report.uninterpretedEntries.includes('dataset_bastion.script/.data/serialization_id'));
  await assertRefused(Buffer.from('not a zip'), {
    code: 'UNPROCESSABLE_DATASET',
    problem: ArchiveProblem.NOT_A_ZIP,
    message: /not a readable zip/,
  });
});

// --- Not a TorchScript zip ----------------------------------------------------------------------------

test('refuses an empty upload and a zip with no entries', async () => {
  await assertRefused(new Uint8Array(0), refusedModel(ArchiveProblem.EMPTY, /the upload is empty \(0 bytes\)/));
  await assertRefused(buildZip([]), refusedModel(ArchiveProblem.EMPTY, /the zip archive has no entries/));
});

test('refuses garbage and a legacy torch.save pickle as not a zip', async () => {
  let seed = 7;
  const garbage = Buffer.alloc(4096, 0).map(() => (seed = (seed * 1103515245 + 12345) % 2 ** 31) & 0xff);
  await assertRefused(garbage, refusedModel(ArchiveProblem.NOT_A_ZIP, /not a readable zip archive \(.+\)/));
  await assertRefused(
    Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]),
    refusedModel(ArchiveProblem.NOT_A_ZIP, /not a readable zip/),
  );
});

test('refuses mnist_cnn.script.pt truncated at any of several cut points', async () => {
  for (const cut of [1, 4, 30, 1000, mnist.length >> 1, mnist.length - 23, mnist.length - 22, mnist.length - 1]) {
    await assertRefused(
      mnist.subarray(0, cut),
      refusedModel(ArchiveProblem.NOT_A_ZIP, /not a readable zip archive|zip directory is damaged/),
    );
  }
});

test('refuses a zip whose first bytes are not a local file header (data before it, or the flatbuffer magic)', async () => {
  const flatbufferMagic = Buffer.from(mnist);
  flatbufferMagic.write('PTMF', 4, 'latin1');
  await assertRefused(flatbufferMagic, refusedModel(ArchiveProblem.NOT_A_ZIP, /does not start with a local file header/));
});

test('refuses a valid zip that is not TorchScript: no top folder, or no data.pkl / constants.pkl / version', async () => {
  await assertRefused(
    buildZip([{ name: 'hello.txt', data: 'hello' }]),
    refusedModel(ArchiveProblem.OUTSIDE_TOP_FOLDER, /^.*: hello\.txt: the entry is not inside a top folder/),
  );
  await assertRefused(
    buildZip([{ name: 'archive/version', data: '3\n' }]),
    refusedModel(ArchiveProblem.MISSING_RECORD, /archive\/data\.pkl: missing/),
  );
  // What torch.save writes: a zip with data.pkl and version, but no constants.pkl.
  await assertRefused(
    buildZip([
      { name: 'archive/data.pkl', data: Buffer.from([0x80, 0x02, 0x7d, 0x2e]) },
      { name: 'archive/version', data: '3\n' },
    ]),
    refusedModel(ArchiveProblem.MISSING_RECORD, /archive\/constants\.pkl: missing/),
  );
  await assertRefused(
    mnistWith((entries) => entries.filter((entry) => !entry.name.endsWith('/version'))),
    refusedModel(ArchiveProblem.MISSING_RECORD, /mnist_cnn\.script\/version: missing/),
  );
});

// --- Names --------------------------------------------------------------------------------------------

test('refuses an entry outside the top folder, naming it', async () => {
  const rebuilt = mnistWith((entries) => [...entries, { name: 'elsewhere/notes.txt', data: 'x' }]);
  await assertRefused(
    rebuilt,
    refusedModel(
      ArchiveProblem.OUTSIDE_TOP_FOLDER,
      /elsewhere\/notes\.txt: every entry must be inside the archive's one top folder mnist_cnn\.script\//,
    ),
  );
});

test('refuses absolute names, "..", "." and empty segments, backslashes and control characters', async () => {
  const cases: [string, RegExp][] = [
    ['/etc/passwd', /\/etc\/passwd: the entry name is an absolute path/],
    ['C:/x/y', /C:\/x\/y: the entry name is an absolute path/],
    [`${top}/../../evil`, /: the entry name has a "\.\." segment/],
    ['../evil', /: the entry name has a "\.\." segment/],
    [`${top}/./data.pkl`, /: the entry name has a "\." segment/],
    [`${top}//data.pkl`, /: the entry name has an empty segment/],
    [`${top}/code\\evil.py`, /: the entry name contains a backslash/],
    [`${top}/a\u0007b`, /mnist_cnn\.script\/a\?b: the entry name contains control characters/],
  ];
  for (const [name, message] of cases) {
    const rebuilt = mnistWith((entries) => [...entries, { name, data: 'x' }]);
    await assertRefused(rebuilt, refusedModel(ArchiveProblem.BAD_ENTRY_NAME, message));
  }
  const notUtf8 = mnistWith((entries) => [...entries, { name: `${top}/x`, data: 'x' }]);
  const at = notUtf8.lastIndexOf(Buffer.from(`${top}/x`));
  notUtf8[at + top.length + 1] = 0xff; // the central directory's copy of the name
  await assertRefused(notUtf8, refusedModel(ArchiveProblem.BAD_ENTRY_NAME, /the entry name is not UTF-8/));
});

test('refuses a name that occurs twice, and two names that differ only in letter case', async () => {
  await assertRefused(
    mnistWith((entries) => [...entries, { name: `${top}/version`, data: '3\n' }]),
    refusedModel(ArchiveProblem.DUPLICATE_ENTRY, /mnist_cnn\.script\/version: the name occurs twice/),
  );
  await assertRefused(
    mnistWith((entries) => [...entries, { name: `${top}/DATA.pkl`, data: 'x' }]),
    refusedModel(
      ArchiveProblem.DUPLICATE_ENTRY,
      /mnist_cnn\.script\/DATA\.pkl: the name differs from mnist_cnn\.script\/data\.pkl only in letter case/,
    ),
  );
});

test('refuses more entries than the limit', async () => {
  await assertRefused(mnist, refusedModel(ArchiveProblem.TOO_MANY_ENTRIES, /has 21 entries, more than the limit of 20/), {
    maxEntries: 20,
  });
});

// --- Compression, sizes, bombs ------------------------------------------------------------------------

test('refuses an entry compressed with anything but stored or deflate, and an encrypted one', async () => {
  const bzip2 = mnistWith((entries) =>
    entries.map((entry) => (entry.name.endsWith('/version') ? { ...entry, declaredMethod: 12 } : entry)),
  );
  await assertRefused(
    bzip2,
    refusedModel(ArchiveProblem.UNSUPPORTED_COMPRESSION, /mnist_cnn\.script\/version: compression method 12 is not supported/),
  );
  const encrypted = mnistWith((entries) => entries.map((entry) => ({ ...entry, deflate: true })));
  const central = encrypted.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  encrypted.writeUInt16LE(encrypted.readUInt16LE(central + 8) | 1, central + 8);
  await assertRefused(encrypted, refusedModel(ArchiveProblem.ENCRYPTED_ENTRY, /mnist_cnn\.script\/data\/0: the entry is encrypted/));
});

test('accepts an archive re-zipped with deflate, and checks what the entries inflate to', async () => {
  const deflated = mnistWith((entries) => entries.map((entry) => ({ ...entry, deflate: true })));
  const report = await checkTorchscriptArchive(deflated, { kind: 'model' });
  assert.equal(report.storages.length, 8);
});

test('refuses a zip bomb: a few MB of zeros deflated by yazl (ratio far above 200:1)', async () => {
  const entries = readZip(mnist).map(({ name, data }) => ({ name, data, compress: false }));
  entries.push({ name: `${top}/extra/zeros`, data: Buffer.alloc(8 * 1024 * 1024), compress: true });
  const bomb = await yazlZip(entries);
  await assertRefused(
    bomb,
    refusedModel(ArchiveProblem.ZIP_BOMB, /mnist_cnn\.script\/extra\/zeros: \d+ deflated bytes expand to 8388608 \(more than 200:1\)/),
  );
});

test('refuses many deflated entries that each pass the ratio check but together inflate past maxInflatedBytes', async () => {
  // The issue's archive: entries of exactly 1 MiB of zeros (at the per-entry threshold), many of them.
  const entries = readZip(mnist).map(({ name, data }) => ({ name, data, compress: false }));
  for (let i = 0; i < 6; i += 1) entries.push({ name: `${top}/extra/zeros${i}`, data: Buffer.alloc(1024 * 1024), compress: true });
  const archive = await yazlZip(entries);
  assert.ok(archive.length < mnist.length + 64 * 1024, 'six MiB of zeros add little to the archive');
  await assertRefused(
    archive,
    refusedModel(
      ArchiveProblem.ZIP_BOMB,
      /extra\/zeros4: the deflated entries so far inflate to 5242880 bytes, more than the limit of 5000000/,
    ),
    {
      maxInflatedBytes: 5_000_000,
    },
  );
  const report = await checkTorchscriptArchive(archive, { kind: 'model', maxInflatedBytes: 6 * 1024 * 1024 });
  assert.equal(report.storages.length, 8);
});

test('refuses a deflated entry whose header understates its size, stopping at the declared size', async () => {
  const zeros = Buffer.alloc(4 * 1024 * 1024);
  const lying = mnistWith((entries) => [...entries, { name: `${top}/extra/zeros`, data: zeros, deflate: true, declaredSize: 1000 }]);
  await assertRefused(
    lying,
    refusedModel(
      ArchiveProblem.CORRUPT_ENTRY,
      /mnist_cnn\.script\/extra\/zeros: it inflates to more than the 1000 bytes its header declares/,
    ),
  );
  const overstating = mnistWith((entries) => [...entries, { name: `${top}/extra/small`, data: 'tiny', deflate: true, declaredSize: 5000 }]);
  await assertRefused(
    overstating,
    refusedModel(ArchiveProblem.CORRUPT_ENTRY, /extra\/small: it inflates to 4 bytes, but its header declares 5000/),
  );
});

test('refuses deflate data that does not inflate, and a CRC-32 that does not match', async () => {
  const broken = mnistWith((entries) => [
    ...entries,
    { name: `${top}/extra/x`, data: Buffer.from([0xff, 0xff, 0xff, 0xff]), declaredMethod: 8 },
  ]);
  await assertRefused(broken, refusedModel(ArchiveProblem.CORRUPT_ENTRY, /extra\/x: it is not valid deflate data/));
  const badCrc = mnistWith((entries) =>
    entries.map((entry) => (entry.name.endsWith('/data/3') ? { ...entry, declaredCrc: 0x12345678 } : entry)),
  );
  await assertRefused(badCrc, refusedModel(ArchiveProblem.CORRUPT_ENTRY, /mnist_cnn\.script\/data\/3: its CRC-32 does not match/));
});

test('refuses an archive larger than maxUncompressedBytes, and pickles and code over their limits', async () => {
  await assertRefused(mnist, refusedModel(ArchiveProblem.TOO_LARGE, /uncompress to \d+ bytes, more than the limit of 10000/), {
    maxUncompressedBytes: 10_000,
  });
  await assertRefused(
    mnist,
    refusedModel(ArchiveProblem.TOO_LARGE, /mnist_cnn\.script\/data\.pkl: the pickle is 1331 bytes, more than the limit of 1000/),
    { maxPickleBytes: 1000 },
  );
  await assertRefused(mnist, refusedModel(ArchiveProblem.TOO_LARGE, /the code files so far are \d+ bytes, more than the limit of 2000/), {
    maxCodeBytes: 2000,
  });
});

// --- version and byteorder ----------------------------------------------------------------------------

test('refuses a version record that is not a number, and a big-endian byteorder', async () => {
  await assertRefused(
    mnistReplacing(`${top}/version`, () => 'three'),
    refusedModel(ArchiveProblem.BAD_RECORD, /mnist_cnn\.script\/version: the file format version must be a decimal number/),
  );
  const bigEndian = mnistWith((entries) => [...entries, { name: `${top}/byteorder`, data: 'big' }]);
  await assertRefused(
    bigEndian,
    refusedModel(ArchiveProblem.BAD_RECORD, /byteorder: only little-endian archives are accepted, the record says big/),
  );
});

// --- Storages and tensors -----------------------------------------------------------------------------

test('refuses a storage record shorter than its storage (data/0 cut to 8 bytes)', async () => {
  const short = mnistReplacing(`${top}/data/0`, (data) => data.subarray(0, 8));
  await assertRefused(
    short,
    refusedModel(
      ArchiveProblem.STORAGE_SIZE_MISMATCH,
      /^.*: mnist_cnn\.script\/data\/0: the record holds 8 bytes, but mnist_cnn\.script\/data\.pkl declares 1024 × float32 \(4096 bytes\)$/,
    ),
  );
});

test('refuses a storage whose record is missing', async () => {
  const missing = mnistWith((entries) => entries.filter((entry) => !entry.name.endsWith('/data/2')));
  await assertRefused(
    missing,
    refusedModel(
      ArchiveProblem.MISSING_RECORD,
      /mnist_cnn\.script\/data\/2: missing, but mnist_cnn\.script\/data\.pkl refers to it as storage 2/,
    ),
  );
});

test('refuses a tensor view larger than its storage (size tuple edited 16,1,8,8 -> 64,1,8,8)', async () => {
  const pattern = Buffer.from([0x28, 0x4b, 16, 0x4b, 1, 0x4b, 8, 0x4b, 8, 0x74]);
  const edited = Buffer.from([0x28, 0x4b, 64, 0x4b, 1, 0x4b, 8, 0x4b, 8, 0x74]);
  const oversized = mnistReplacing(`${top}/data.pkl`, (data) => replaceOnce(data, pattern, edited));
  await assertRefused(
    oversized,
    refusedModel(
      ArchiveProblem.TENSOR_OUT_OF_BOUNDS,
      /data\.pkl: a tensor of shape \[64, 1, 8, 8\] reaches element 4095 of storage 0, which has 1024 elements/,
    ),
  );
});

test('refuses a tensor with a storage offset past the end of its storage', async () => {
  // weight: _rebuild_tensor_v2(storage, 0, (16, 1, 8, 8), ...): BINPUT 12, BININT1 0, MARK, BININT1 16.
  const offset = mnistReplacing(`${top}/data.pkl`, (data) =>
    replaceOnce(data, Buffer.from([0x71, 12, 0x4b, 0, 0x28, 0x4b, 16]), Buffer.from([0x71, 12, 0x4d, 0x00, 0x04, 0x28, 0x4b, 16])),
  );
  await assertRefused(
    offset,
    refusedModel(
      ArchiveProblem.TENSOR_OUT_OF_BOUNDS,
      /a tensor of shape \[16, 1, 8, 8\] reaches element 2047 of storage 0, which has 1024 elements/,
    ),
  );
});

test('refuses a storage numel that disagrees with a second reference to the same storage', async () => {
  // The bias storage ('storage', FloatStorage, '1', 'cpu', 16) claims 32 elements: its record is 64 bytes.
  const claims = mnistReplacing(`${top}/data.pkl`, (data) =>
    replaceOnce(data, Buffer.from([0x4b, 16, 0x74, 0x51, 0x71, 17]), Buffer.from([0x4b, 32, 0x74, 0x51, 0x71, 17])),
  );
  await assertRefused(
    claims,
    refusedModel(ArchiveProblem.STORAGE_SIZE_MISMATCH, /data\/1: the record holds 64 bytes, but .*declares 32 × float32 \(128 bytes\)/),
  );
});

// --- Globals and pickle shape -------------------------------------------------------------------------

test('refuses a global outside the allowlist (os.system in place of OrderedDict), naming it', async () => {
  const os = mnistReplacing(`${top}/data.pkl`, (data) => replaceOnce(data, 'collections\nOrderedDict\n', 'os\nsystem\n'));
  await assertRefused(
    os,
    refusedModel(
      ArchiveProblem.FORBIDDEN_GLOBAL,
      /mnist_cnn\.script\/data\.pkl: the global os\.system is not allowed in a TorchScript archive/,
    ),
  );
});

test('refuses a custom C++ class (__torch__.torch.classes.*) and a quantized or sparse tensor rebuild', async () => {
  const custom = mnistReplacing(`${top}/data.pkl`, (data) =>
    replaceOnce(data, '__torch__.torch.nn.modules.activation\nReLU\n', '__torch__.torch.classes.quantized\nLinearPackedParamsBase\n'),
  );
  await assertRefused(
    custom,
    refusedModel(ArchiveProblem.FORBIDDEN_GLOBAL, /the global __torch__\.torch\.classes\.quantized\.LinearPackedParamsBase is not allowed/),
  );
  const quantized = mnistReplacing(`${top}/data.pkl`, (data) =>
    replaceOnce(data, 'torch._utils\n_rebuild_tensor_v2\n', 'torch._utils\n_rebuild_qtensor\n'),
  );
  await assertRefused(
    quantized,
    refusedModel(ArchiveProblem.FORBIDDEN_GLOBAL, /the global torch\._utils\._rebuild_qtensor is not allowed/),
  );
  const parameter = mnistReplacing(`${top}/data.pkl`, (data) =>
    replaceOnce(data, 'torch._utils\n_rebuild_tensor_v2\n', 'torch._utils\n_rebuild_parameter\n'),
  );
  await assertRefused(
    parameter,
    refusedModel(ArchiveProblem.FORBIDDEN_GLOBAL, /the global torch\._utils\._rebuild_parameter is not allowed/),
  );
});

test('refuses a storage of a type libtorch would not map to a plain dtype', async () => {
  const quint = mnistReplacing(`${top}/data.pkl`, (data) => replaceOnce(data, 'torch\nFloatStorage\n', 'torch\nQUInt8Storage\n'));
  await assertRefused(
    quint,
    refusedModel(ArchiveProblem.BAD_STORAGE, /data\.pkl: a storage has type torch\.QUInt8Storage, not one of torch's typed storages/),
  );
});

test('refuses pickles libtorch would read differently: other opcodes, protocols, sparse memo, trailing bytes', async () => {
  const cases: [Buffer, RegExp][] = [
    [Buffer.from([0x80, 0x02, 0x29, 0x94, 0x2e]), /constants\.pkl: opcode 0x94 at byte 3 is not one libtorch's unpickler reads/],
    [Buffer.from([0x80, 0x04, 0x29, 0x2e]), /constants\.pkl: not a pickle of protocol 2/],
    [
      Buffer.from([0x80, 0x02, 0x29, 0x72, 0xff, 0xff, 0xff, 0xff, 0x2e]),
      /constants\.pkl: memo index 4294967295 at byte 3 skips past the 0 entries stored so far/,
    ],
    [Buffer.from([0x80, 0x02, 0x68, 0x00, 0x2e]), /constants\.pkl: memo entry 0 at byte 2 does not exist/],
    [Buffer.from([0x80, 0x02, 0x29, 0x2e, 0x00]), /constants\.pkl: 1 bytes after STOP/],
    [Buffer.from([0x80, 0x02, 0x29]), /constants\.pkl: no STOP opcode/],
    [Buffer.from([0x80, 0x02, 0x8a, 0x01, 0x05, 0x2e]), /LONG1 at byte 2 is not 8 bytes long/],
    [Buffer.from([0x80, 0x02, 0x29, 0x29, 0x2e]), /constants\.pkl: STOP with 2 values on the stack/],
  ];
  for (const [pickle, message] of cases) {
    await assertRefused(
      mnistReplacing(`${top}/constants.pkl`, () => pickle),
      refusedModel(ArchiveProblem.BAD_PICKLE, message),
    );
  }
});

test('refuses a pickled value that contains itself, and one nested deeper than 500', async () => {
  // EMPTY_LIST, BINPUT 0, MARK, BINGET 0, APPENDS, STOP: a list holding itself.
  const cyclic = Buffer.from([0x80, 0x02, 0x5d, 0x71, 0x00, 0x28, 0x68, 0x00, 0x65, 0x2e]);
  await assertRefused(
    mnistReplacing(`${top}/constants.pkl`, () => cyclic),
    refusedModel(ArchiveProblem.BAD_PICKLE, /constants\.pkl: the pickled value contains itself/),
  );
  const deep = Buffer.concat([Buffer.from([0x80, 0x02, 0x29]), Buffer.alloc(600, 0x85), Buffer.from([0x2e])]);
  await assertRefused(
    mnistReplacing(`${top}/constants.pkl`, () => deep),
    refusedModel(ArchiveProblem.BAD_PICKLE, /constants\.pkl: values are nested 601 deep, more than 500/),
  );
});

test('refuses calls of allowed globals in shapes torch never writes', async () => {
  // OrderedDict called with an argument instead of the empty tuple.
  const withArgument = mnistReplacing(`${top}/data.pkl`, (data) =>
    replaceOnce(data, Buffer.from([0x71, 13, 0x29, 0x52]), Buffer.from([0x71, 13, 0x4e, 0x85, 0x52])),
  );
  await assertRefused(withArgument, refusedModel(ArchiveProblem.BAD_PICKLE, /collections\.OrderedDict is called with arguments/));
  // A storage reference that is not a 5-tuple.
  const shortPid = mnistReplacing(`${top}/data.pkl`, (data) =>
    replaceOnce(data, Buffer.from([0x4d, 0x00, 0x04, 0x74, 0x51]), Buffer.from([0x74, 0x51])),
  );
  await assertRefused(
    shortPid,
    refusedModel(ArchiveProblem.BAD_STORAGE, /a persistent id is not a \('storage', type, key, location, numel\) tuple/),
  );
});

// --- Code that runs at load time ----------------------------------------------------------------------

test('refuses a torch.classes reference in code, also written with spaces, naming the file', async () => {
  for (const reference of ['torch.classes.quantized.LinearPackedParamsBase', 'torch . classes.xnnpack.Conv2dOpContext']) {
    const file = `${top}/code/__torch__/torch/nn/modules/linear.py`;
    const edited = mnistReplacing(file, (data) => Buffer.concat([data, Buffer.from(`\n_packed : __torch__.${reference}\n`)]));
    await assertRefused(
      edited,
      refusedModel(
        ArchiveProblem.LOAD_TIME_CODE,
        /mnist_cnn\.script\/code\/__torch__\/torch\/nn\/modules\/linear\.py: the code refers to torch\.classes/,
      ),
    );
  }
});

test('scans code files whatever the letter case of their names (libtorch finds them case-insensitively)', async () => {
  const upper = mnistWith((entries) =>
    entries.map((entry) =>
      entry.name.endsWith('/code/__torch__/common.py')
        ? {
            name: `${top}/CODE/__torch__/common.PY`,
            data: Buffer.concat([Buffer.from(entry.data), Buffer.from('\ndef __setstate__(self, s): pass\n')]),
          }
        : entry,
    ),
  );
  await assertRefused(
    upper,
    refusedModel(ArchiveProblem.LOAD_TIME_CODE, /mnist_cnn\.script\/CODE\/__torch__\/common\.PY: the code defines or calls __setstate__/),
  );
});

test('messages never echo more than a few dozen bytes of what the archive holds', async () => {
  const longName = `${top}/${'a'.repeat(900)}`;
  const message = await assertRefused(
    mnistWith((entries) => [...entries, { name: longName, data: 'x' }, { name: longName, data: 'x' }]),
    refusedModel(ArchiveProblem.DUPLICATE_ENTRY, /mnist_cnn\.script\/a+\.\.\.a+: the name occurs twice/),
  );
  assert.ok(message.length < 200, message);
  const version = await assertRefused(
    mnistReplacing(`${top}/version`, () => `3${'x'.repeat(15)}`),
    refusedModel(ArchiveProblem.BAD_RECORD, /version/),
  );
  assert.ok(!version.includes('x'.repeat(16)));
});
