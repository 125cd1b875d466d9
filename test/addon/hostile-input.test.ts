// inspectModel on inputs that are not TorchScript, or are damaged TorchScript: every call must
// return a result or throw a NativeError with a known code and a one-line message, and the process
// must survive. All inputs are deterministic (seeded PRNG).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { inspectModel, type ModelInspection, NativeError, NativeErrorCode } from '../../src/native.js';
import { prng } from '../helpers/prng.js';
import { testdataPath } from '../helpers/testdata.js';
import { readStoredZip, storedZip } from '../helpers/zip.js';

const knownCodes = new Set<string>(Object.values(NativeErrorCode));
const mnistFile = testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt');
const mnist = readFileSync(mnistFile);

type Outcome = { ok: true; inspection: ModelInspection } | { ok: false; error: NativeError };

// Runs inspectModel and checks the contract every outcome must meet.
function attempt(bytes: Uint8Array): Outcome {
  try {
    return { ok: true, inspection: inspectModel(bytes) };
  } catch (error) {
    assert.ok(error instanceof NativeError, `not a NativeError: ${String(error)}`);
    assert.ok(knownCodes.has(error.code), `unknown code ${error.code}`);
    assert.ok(error.message.length > 0 && error.message.length <= 1200, error.message);
    assert.doesNotMatch(error.message, /[\r\n]/, 'one line');
    assert.doesNotMatch(error.message, /Exception raised from|frame #\d/, 'no C++ backtrace');
    return { ok: false, error };
  }
}

function assertLoadFails(bytes: Uint8Array, message?: RegExp): NativeError {
  const outcome = attempt(bytes);
  assert.ok(!outcome.ok, 'expected inspectModel to refuse the bytes');
  assert.equal(outcome.error.code, NativeErrorCode.MODEL_LOAD_FAILED, outcome.error.message);
  assert.match(outcome.error.message, /^Cannot load the TorchScript archive: /);
  if (message) assert.match(outcome.error.message, message);
  return outcome.error;
}

// mnist_cnn.script.pt rebuilt with one entry (named by its suffix) replaced.
function mnistWith(suffix: string, edit: (data: Buffer) => Buffer): Buffer {
  let found = false;
  const entries = readStoredZip(mnist).map(({ name, data }) => {
    if (!name.endsWith(suffix)) return { name, data };
    found = true;
    return { name, data: edit(data) };
  });
  assert.ok(found, `no entry ending with ${suffix}`);
  return storedZip(entries);
}

test('a zip rebuilt from the entries of mnist_cnn.script.pt still loads (the fixtures below start from it)', () => {
  const rebuilt = mnistWith('/version', (data) => data);
  assert.notDeepEqual(rebuilt, mnist);
  assert.deepEqual(inspectModel(rebuilt), inspectModel(mnist));
});

test('inspectModel refuses a class constant without a type annotation, which crashes the libtorch 1.13 loader', () => {
  // One flipped bit of "__parameters__" (found by fuzzing): the loader dereferences the missing
  // annotation of what it then takes for a class constant.
  const archive = mnistWith('/nn/modules/conv.py', (data) =>
    Buffer.from(data.toString('utf8').replace('__parameters__', '__xarameters__')),
  );
  assertLoadFails(archive, /Class constant '__xarameters__' needs a Final\[\.\.\.\] type annotation$/);
});

test('inspectModel refuses deeply nested TorchScript source, which overflows the parser stack', () => {
  const line = '    return torch.flatten(input, 1)\n';
  const cases: [string, RegExp][] = [
    [`    return ${'('.repeat(100_000)}input${')'.repeat(100_000)}\n`, /nested brackets exceed 256$/],
    [`    return ${'-'.repeat(100_000)}input\n`, /operators in one statement exceed 1024$/],
    [`    return ${Array(100_000).fill('input').join(' + ')}\n`, /operators in one statement exceed 1024$/],
    [
      `${Array.from({ length: 300 }, (_, i) => `${'  '.repeat(i + 2)}if True:\n`).join('')}${'  '.repeat(302)}pass\n${line}`,
      /nested blocks exceed 256$/,
    ],
  ];
  for (const [replacement, message] of cases) {
    const archive = mnistWith('/nn/modules/flatten.py', (data) => {
      const text = data.toString('utf8');
      assert.ok(text.includes(line));
      return Buffer.from(text.replace(line, replacement));
    });
    assertLoadFails(archive, message);
  }
});

test('inspectModel refuses pickles whose memo index or length would make the unpickler allocate gigabytes', () => {
  // data.pkl opens with PROTO 2, a GLOBAL (two lines) and BINPUT 0 ("q\x00").
  const firstPut = (data: Buffer): number => {
    const at = data.indexOf('q\x00', data.indexOf('\n', data.indexOf('\n') + 1));
    assert.ok(at > 0);
    return at;
  };
  const hugeMemo = mnistWith('/data.pkl', (data) => {
    const at = firstPut(data);
    const put = Buffer.from([0x72, 0, 0, 0, 0]); // LONG_BINPUT 50,000,000
    put.writeUInt32LE(50_000_000, 1);
    return Buffer.concat([data.subarray(0, at), put, data.subarray(at + 2)]);
  });
  assertLoadFails(hugeMemo, /data\.pkl: pickle memo index out of order at byte \d+$/);
  const hugeString = mnistWith('/data.pkl', (data) => {
    const at = firstPut(data);
    const text = Buffer.from([0x58, 0xff, 0xff, 0xff, 0x7f]); // BINUNICODE of 2 GiB
    return Buffer.concat([data.subarray(0, at), text, data.subarray(at)]);
  });
  assertLoadFails(hugeString, /data\.pkl: pickle length field past the end at byte \d+$/);
});

test('inspectModel refuses an empty buffer with MODEL_LOAD_FAILED', () => {
  assertLoadFails(Buffer.alloc(0), /not a ZIP archive/);
  assertLoadFails(new Uint8Array(0));
  assertLoadFails(new Uint8Array(new ArrayBuffer(16), 16, 0));
});

test('inspectModel refuses zero-filled buffers with MODEL_LOAD_FAILED', () => {
  for (const size of [1, 2, 22, 4096]) assertLoadFails(new Uint8Array(size));
});

test('inspectModel refuses random bytes with MODEL_LOAD_FAILED', () => {
  const random = prng(0x5eed);
  for (let i = 0; i < 60; i += 1) {
    const bytes = new Uint8Array(1 + Math.floor(random() * 8192));
    for (let j = 0; j < bytes.length; j += 1) bytes[j] = Math.floor(random() * 256);
    if (i % 2 === 1) bytes.set([0x50, 0x4b, 0x03, 0x04].slice(0, bytes.length)); // a zip local header signature
    assertLoadFails(bytes);
  }
});

test('inspectModel refuses a valid zip that is not TorchScript with MODEL_LOAD_FAILED', () => {
  assertLoadFails(storedZip([{ name: 'hello.txt', data: 'hello' }]), /not in a subdirectory/);
  assertLoadFails(storedZip([{ name: 'archive/version', data: '3\n' }]), /constants\.pkl|data\.pkl/);
  assertLoadFails(
    storedZip([
      { name: 'archive/version', data: '3\n' },
      { name: 'archive/constants.pkl', data: 'garbage' },
      { name: 'archive/data.pkl', data: 'garbage' },
    ]),
  );
  assertLoadFails(storedZip([]));
});

test('inspectModel refuses what torch.save writes (not TorchScript) with MODEL_LOAD_FAILED', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bastion-torch-save-'));
  try {
    const file = path.join(dir, 'state_dict.pt');
    const run = spawnSync('/usr/bin/python3', ['-c', 'import sys, torch; torch.save({"w": torch.zeros(3)}, sys.argv[1])', file], {
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    assertLoadFails(readFileSync(file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inspectModel refuses every truncation of mnist_cnn.script.pt with MODEL_LOAD_FAILED', () => {
  const count = 64;
  for (let i = 0; i < count; i += 1) {
    const length = Math.floor((i * (mnist.length - 1)) / (count - 1)); // 0 .. length-1
    assertLoadFails(mnist.subarray(0, length));
  }
});

test('inspectModel survives 200 bit-flipped copies of mnist_cnn.script.pt', (t) => {
  const random = prng(0xb17f11b);
  // Most of the file is tensor data; aim most flips at the pickles, code and zip directory after it.
  const structureStart = mnist.indexOf('mnist_cnn.script/data.pkl') - 30;
  assert.ok(structureStart > 0);
  const tally = new Map<string, number>();
  for (let i = 0; i < 200; i += 1) {
    const copy = Buffer.from(mnist);
    const flips = 1 + Math.floor(random() * 4);
    for (let f = 0; f < flips; f += 1) {
      const start = i < 40 ? 0 : structureStart;
      const position = start + Math.floor(random() * (copy.length - start));
      copy[position] = (copy[position] ?? 0) ^ (1 << Math.floor(random() * 8));
    }
    const outcome = attempt(copy);
    const key = outcome.ok ? 'loaded' : outcome.error.code;
    tally.set(key, (tally.get(key) ?? 0) + 1);
  }
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(tally))}`);
  assert.ok((tally.get(NativeErrorCode.MODEL_LOAD_FAILED) ?? 0) > 0, 'some flips break the archive');
});

test('inspectModel refuses arguments that are not a Buffer or Uint8Array with INVALID_ARGUMENT', () => {
  const cases: [unknown, string][] = [
    [undefined, 'undefined'],
    [null, 'null'],
    [5, 'number'],
    ['bytes', 'string'],
    [true, 'boolean'],
    [[1, 2, 3], 'array'],
    [{ length: 3 }, 'object'],
    [new ArrayBuffer(8), 'ArrayBuffer'],
    [new DataView(new ArrayBuffer(8)), 'DataView'],
    [new Float32Array(4), 'Float32Array'],
    [new Uint8ClampedArray(4), 'Uint8ClampedArray'],
    [new Int8Array(4), 'Int8Array'],
  ];
  for (const [value, received] of cases) {
    assert.throws(
      () => inspectModel(value as Uint8Array),
      (error: unknown) => {
        assert.ok(error instanceof NativeError);
        assert.equal(error.code, NativeErrorCode.INVALID_ARGUMENT);
        assert.equal(error.message, `Expected Buffer or Uint8Array for bytes but received ${received}`);
        return true;
      },
    );
  }
});

test('inspectModel still describes a real model correctly after all hostile inputs', () => {
  const inspection = inspectModel(mnist);
  assert.equal(inspection.parameters.length, 8);
  assert.deepEqual(inspection.parameters[0], {
    name: 'net.0.weight',
    shape: [16, 1, 8, 8],
    dtype: 'F32',
    requiresGrad: true,
    contiguous: true,
  });
});
