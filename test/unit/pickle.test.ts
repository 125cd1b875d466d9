import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isGlobal, type PickleCall, PickleError, type PickleValue, readPickle, walkPickle } from '../../src/artifacts/formats/pickle.js';
import { testdataPath, torchscriptFiles, torchscriptProducers } from '../helpers/testdata.js';
import { readZip } from '../helpers/zip.js';

/** The bytes of `<top>/<name>` inside a TorchScript test file. */
function archiveEntry(file: string, name: string): Buffer {
  const entry = readZip(readFileSync(file)).find((candidate) => candidate.name.endsWith(`/${name}`));
  assert.ok(entry, `${file} has no ${name}`);
  return entry.data;
}

function nodesOf(root: PickleValue): PickleValue[] {
  const nodes: PickleValue[] = [];
  walkPickle(root, (value) => nodes.push(value));
  return nodes;
}

function isCall(value: PickleValue): value is PickleCall {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array) && value.kind === 'call';
}

function assertPickleError(bytes: Uint8Array, message: RegExp, limits?: Parameters<typeof readPickle>[1]): PickleError {
  let caught: unknown;
  try {
    readPickle(bytes, limits);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof PickleError, `expected a PickleError, got ${String(caught)}`);
  assert.match(caught.message, message);
  assert.match(caught.message, /\(at byte \d+\)$/);
  return caught;
}

const mnist = testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt');

test('reads the data.pkl of mnist_cnn.script.pt as an object tree of inert calls, globals and storage ids', () => {
  const root = readPickle(archiveEntry(mnist, 'data.pkl'));
  assert.ok(isCall(root));
  assert.equal(root.via, 'newobj');
  assert.ok(isGlobal(root.fn, '__torch__.common', 'MnistCnn'));
  assert.equal(root.state.length, 1);

  const nodes = nodesOf(root);
  const tensors = nodes.filter((node) => isCall(node) && isGlobal(node.fn, 'torch._utils', '_rebuild_tensor_v2')) as PickleCall[];
  assert.equal(tensors.length, 8);
  const first = tensors.find((call) => {
    const [storage] = call.args;
    return (
      typeof storage === 'object' &&
      storage !== null &&
      'kind' in storage &&
      storage.kind === 'persistent' &&
      typeof storage.pid === 'object' &&
      storage.pid !== null &&
      'kind' in storage.pid &&
      storage.pid.kind === 'tuple' &&
      storage.pid.items[2] === '0'
    );
  })!;
  const [storage, offset, size, stride] = first.args;
  assert.deepEqual(storage, {
    kind: 'persistent',
    pid: { kind: 'tuple', items: ['storage', { kind: 'global', module: 'torch', name: 'FloatStorage' }, '0', 'cpu', 1024] },
  });
  assert.equal(offset, 0);
  assert.deepEqual(size, { kind: 'tuple', items: [16, 1, 8, 8] });
  assert.deepEqual(stride, { kind: 'tuple', items: [64, 64, 8, 1] });
});

for (const producer of torchscriptProducers) {
  test(`reads every data.pkl and constants.pkl written by ${producer}`, () => {
    for (const file of torchscriptFiles(producer)) {
      for (const name of ['data.pkl', 'constants.pkl']) {
        const root = readPickle(archiveEntry(file, name));
        assert.ok(nodesOf(root).length > 0, `${file} ${name}`);
      }
    }
  });
}

test('reads an empty constants.pkl as an empty tuple', () => {
  const file = testdataPath('torchscript', 'torch-2.6', 'mlp.script.pt');
  assert.deepEqual(readPickle(archiveEntry(file, 'constants.pkl')), { kind: 'tuple', items: [] });
});

test('executes nothing: a REDUCE of os.system comes back as an inert call node, and the command never runs', () => {
  const marker = path.join(mkdtempSync(path.join(os.tmpdir(), 'bastion-pickle-')), 'ran');
  const command = Buffer.from(`touch ${marker}`, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(command.length);
  // PROTO 2, GLOBAL 'os system', BINUNICODE command, TUPLE1, REDUCE, STOP: what pickle.dumps of a
  // __reduce__ returning (os.system, (command,)) looks like.
  const evil = Buffer.concat([
    Buffer.from([0x80, 0x02, 0x63]),
    Buffer.from('os\nsystem\n'),
    Buffer.from([0x58]),
    length,
    command,
    Buffer.from([0x85, 0x52, 0x2e]),
  ]);
  const value = readPickle(evil);
  assert.ok(isCall(value));
  assert.equal(value.via, 'reduce');
  assert.ok(isGlobal(value.fn, 'os', 'system'));
  assert.deepEqual(value.args, [`touch ${marker}`]);
  assert.equal(existsSync(marker), false);
});

test('BUILD state is attached to the call it builds, never applied', () => {
  // GLOBAL 'builtins eval', EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, BUILD, STOP.
  const value = readPickle(
    Buffer.concat([Buffer.from([0x80, 0x02, 0x63]), Buffer.from('builtins\neval\n'), Buffer.from([0x29, 0x81, 0x7d, 0x62, 0x2e])]),
  );
  assert.deepEqual(value, {
    kind: 'call',
    via: 'newobj',
    fn: { kind: 'global', module: 'builtins', name: 'eval' },
    args: [],
    state: [{ kind: 'dict', entries: [] }],
  });
});

test('isGlobal matches module and name exactly', () => {
  const global: PickleValue = { kind: 'global', module: 'torch._utils', name: '_rebuild_tensor_v2' };
  assert.equal(isGlobal(global, 'torch._utils', '_rebuild_tensor_v2'), true);
  assert.equal(isGlobal(global, 'torch', '_utils._rebuild_tensor_v2'), false);
  assert.equal(isGlobal('torch._utils._rebuild_tensor_v2', 'torch._utils', '_rebuild_tensor_v2'), false);
  assert.equal(isGlobal(null, 'torch._utils', '_rebuild_tensor_v2'), false);
});

test('walkPickle visits a node shared through the memo once, and stops on a value that contains itself', () => {
  // EMPTY_TUPLE, BINPUT 0, BINGET 0, TUPLE2, STOP: one tuple holding the same empty tuple twice.
  const shared = readPickle(Buffer.from([0x80, 0x02, 0x29, 0x71, 0x00, 0x68, 0x00, 0x86, 0x2e]));
  assert.equal(nodesOf(shared).length, 2);
  // EMPTY_LIST, BINPUT 0, MARK, BINGET 0, APPENDS, STOP: a list that holds itself.
  const cyclic = readPickle(Buffer.from([0x80, 0x02, 0x5d, 0x71, 0x00, 0x28, 0x68, 0x00, 0x65, 0x2e]));
  assert.ok(typeof cyclic === 'object' && cyclic !== null && 'kind' in cyclic && cyclic.kind === 'list');
  assert.equal(cyclic.items[0], cyclic);
  assert.equal(nodesOf(cyclic).length, 1);
});

test('reads integers of every width, floats, strings, bytes and the constants', () => {
  const value = readPickle(
    new Uint8Array([
      0x80,
      0x02,
      0x28,
      0x4b,
      0xff, // BININT1 255
      0x4d,
      0x00,
      0x01, // BININT2 256
      0x4a,
      0xff,
      0xff,
      0xff,
      0xff, // BININT -1
      0x8a,
      0x08,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0x80, // LONG1 -2**63
      0x47,
      0x3f,
      0xf8,
      0,
      0,
      0,
      0,
      0,
      0, // BINFLOAT 1.5
      0x8c,
      0x02,
      0x68,
      0x69, // SHORT_BINUNICODE 'hi'
      0x43,
      0x01,
      0x07, // SHORT_BINBYTES 07
      0x4e,
      0x88,
      0x89, // NONE NEWTRUE NEWFALSE
      0x74,
      0x2e, // TUPLE STOP
    ]),
  );
  assert.deepEqual(value, { kind: 'tuple', items: [255, 256, -1, -(2n ** 63n), 1.5, 'hi', new Uint8Array([7]), null, true, false] });
});

// --- Malformed streams --------------------------------------------------------------------------------

test('refuses an opcode it does not know, naming it and its offset', () => {
  const error = assertPickleError(Buffer.from([0x80, 0x02, 0xff, 0x2e]), /opcode 0xff is not allowed \(at byte 2\)/);
  assert.equal(error.offset, 2);
  // INST, OBJ and EXT1 can import and call; they are refused like any unknown opcode.
  assertPickleError(Buffer.from([0x80, 0x02, 0x69]), /opcode 0x69 is not allowed/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x6f]), /opcode 0x6f is not allowed/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x82, 0x01]), /opcode 0x82 is not allowed/);
});

test('refuses every truncation of a real data.pkl', () => {
  const data = archiveEntry(mnist, 'data.pkl');
  for (let cut = 0; cut < data.length; cut += 7) {
    // Every cut must be a PickleError; a cut inside a string is reported as truncated, not as bad UTF-8.
    assertPickleError(data.subarray(0, cut), /truncated|stack underflow|STOP|unterminated|beyond the end|MARK/);
  }
});

test('refuses a length that runs past the end of the stream', () => {
  assertPickleError(Buffer.from([0x80, 0x02, 0x42, 0xff, 0xff, 0xff, 0x7f]), /truncated: needs 2147483647 more bytes/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x58, 0xff, 0xff, 0xff, 0x7f]), /./);
  assertPickleError(Buffer.from([0x80, 0x02, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), /length beyond the end of the stream/);
});

test('refuses a memo that grows past its limit, and a memo entry that does not exist', () => {
  // EMPTY_TUPLE then MEMOIZE twenty times, then STOP.
  const blowup = Buffer.concat([Buffer.from([0x80, 0x04, 0x29]), Buffer.alloc(20, 0x94), Buffer.from([0x2e])]);
  assertPickleError(blowup, /memo too large/, { maxMemo: 10 });
  assert.deepEqual(readPickle(blowup), { kind: 'tuple', items: [] });
  assertPickleError(Buffer.from([0x80, 0x02, 0x6a, 0x39, 0x30, 0x00, 0x00, 0x2e]), /memo entry 12345 does not exist/);
});

test('refuses too many opcodes and MARKs nested too deeply', () => {
  const many = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.alloc(100, 0x4e), Buffer.from([0x2e])]);
  assertPickleError(many, /too many opcodes/, { maxOps: 50 });
  const marks = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.alloc(100, 0x28)]);
  assertPickleError(marks, /MARKs nested too deeply/, { maxMarks: 64 });
});

test('refuses a stack that does not end with exactly one value, and misplaced MARKs', () => {
  assertPickleError(Buffer.from([0x80, 0x02, 0x4e, 0x4e, 0x2e]), /STOP with 2 values on the stack/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x2e]), /STOP with 0 values on the stack/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x28, 0x4e, 0x2e]), /STOP inside a MARK/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x74, 0x2e]), /no MARK to pop to/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x85, 0x2e]), /stack underflow/);
});

test('refuses operations on values of the wrong kind', () => {
  assertPickleError(Buffer.from([0x80, 0x02, 0x29, 0x4e, 0x61, 0x2e]), /APPEND to a non-list/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x29, 0x4e, 0x4e, 0x73, 0x2e]), /SETITEM on a non-dict/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x4e, 0x4e, 0x52, 0x2e]), /call arguments are not a tuple/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x4e, 0x7d, 0x62, 0x2e]), /BUILD on a value that is not an object/);
  assertPickleError(Buffer.from([0x80, 0x04, 0x4e, 0x4e, 0x93, 0x2e]), /STACK_GLOBAL needs two strings/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x28, 0x4e, 0x64, 0x2e]), /DICT with an odd number of items/);
  assertPickleError(Buffer.from([0x80, 0x06, 0x2e]), /unsupported pickle protocol/);
  assertPickleError(Buffer.from([0x80, 0x02, 0x8c, 0x01, 0xff, 0x2e]), /invalid UTF-8 in string/);
});
