// version() and setThreads(): what the addon reports about libtorch on this machine, and how it
// validates thread counts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NativeError, NativeErrorCode, setThreads, version } from '../../src/native.js';

test('version() reports libtorch 1.13 with the C++11 ABI, OpenBLAS and at least one thread', () => {
  const info = version();
  assert.match(info.torch, /^1\.13\./);
  assert.equal(info.cxx11Abi, true);
  assert.ok(Number.isInteger(info.intraOpThreads) && info.intraOpThreads >= 1);
  assert.ok(Number.isInteger(info.interopThreads) && info.interopThreads >= 1);
  // scripts/setup.sh installs libopenblas0-pthread as the system BLAS.
  assert.match(info.blas ?? '', /OpenBLAS/);
  assert.equal(info.parallelBackend, 'OpenMP');
});

test('setThreads(1) makes version() report one intra-op thread on the calling thread', () => {
  setThreads(1);
  assert.equal(version().intraOpThreads, 1);
  setThreads(2);
  assert.equal(version().intraOpThreads, 2);
  setThreads(1);
  assert.equal(version().intraOpThreads, 1);
});

test('setThreads refuses counts outside 1..1024 and non-integers with INVALID_ARGUMENT', () => {
  const cases: [unknown, string][] = [
    [0, 'received 0'],
    [1025, 'received 1025'],
    [-1, 'received -1'],
    [1.5, 'received 1.5'],
    [Number.NaN, 'received NaN'],
    [Number.POSITIVE_INFINITY, 'received Infinity'],
    ['x', 'received string'],
    ['1', 'received string'],
    [undefined, 'received undefined'],
    [null, 'received null'],
    [1n, 'received bigint'],
    [{}, 'received object'],
  ];
  for (const [value, received] of cases) {
    assert.throws(
      () => setThreads(value as number),
      (error: unknown) => {
        assert.ok(error instanceof NativeError);
        assert.equal(error.code, NativeErrorCode.INVALID_ARGUMENT);
        assert.equal(error.message, `Expected integer between 1 and 1024 for intraOpThreads but ${received}`);
        return true;
      },
      String(value),
    );
  }
  assert.equal(version().intraOpThreads, 1, 'a refused call changes nothing');
});

test('a native error is re-thrown with the caller stack and the addon error as cause', () => {
  function callerFrameMarker(): void {
    setThreads(0);
  }
  assert.throws(callerFrameMarker, (error: unknown) => {
    assert.ok(error instanceof NativeError);
    assert.equal(error.name, 'NativeError');
    assert.match(error.stack ?? '', /callerFrameMarker/);
    assert.match(error.stack ?? '', /version\.test\.ts/);
    assert.ok(error.cause instanceof Error);
    assert.equal((error.cause as Error & { code?: string }).code, 'INVALID_ARGUMENT');
    return true;
  });
});
