// runSandboxed with the real sandbox child (a real model and dataset must come back exactly as the
// addon reports them in-process) and with small child scripts (test/fixtures/sandbox/) that crash,
// hang, allocate without bound, exit early or answer garbage: each must become a 422 with a clear
// message, and this process must carry on.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { analyseBatchIndependence } from '../../src/artifacts/batch-analysis.js';
import { DEFAULT_SANDBOX_MEMORY_BYTES, PRLIMIT_PATH, runSandboxed, type SandboxOptions } from '../../src/artifacts/sandbox.js';
import { BastionError } from '../../src/errors.js';
import { extractTensors, inspectModel } from '../../src/native.js';
import { repoRoot, testdataPath } from '../helpers/testdata.js';
import { hostileModelsForLoading } from '../helpers/torch-fixtures.js';
import { readStoredZip, storedZip } from '../helpers/zip.js';

const limits: SandboxOptions = { timeoutMs: 60_000, memoryBytes: DEFAULT_SANDBOX_MEMORY_BYTES };
const child = (name: string): string => path.join(repoRoot, 'test', 'fixtures', 'sandbox', name);
const mnist = readFileSync(testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt'));
const dataset = readFileSync(testdataPath('torchscript', 'torch-1.13', 'dataset_bastion.script.pt'));

/** Asserts a BastionError with this code whose message matches. */
function rejectsWith(code: string, message: RegExp | string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof BastionError, `not a BastionError: ${String(error)}`);
    assert.equal(error.code, code);
    if (typeof message === 'string') assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  };
}

test('the sandbox finds prlimit where it runs it', () => {
  assert.ok(existsSync(PRLIMIT_PATH), `${PRLIMIT_PATH} is missing (util-linux)`);
});

for (const [producer, file] of [
  ['torch-1.13', 'mnist_cnn.script.pt'],
  ['torch-1.13', 'transformer.script.pt'],
  ['torch-2.6', 'transformer.trace.pt'],
] as const) {
  test(`inspects ${producer}/${file} in the sandbox exactly as the addon does in-process, with the same batch analysis`, async () => {
    const bytes = readFileSync(testdataPath('torchscript', producer, file));
    const { batchAnalysis, ...inspection } = await runSandboxed({ mode: 'inspect' }, bytes, limits);
    const expected = inspectModel(bytes);
    assert.deepEqual(inspection, expected);
    assert.deepEqual(batchAnalysis, analyseBatchIndependence(expected.forward!.graph));
  });
}

test('extracts the tensors of dataset_bastion.script.pt in the sandbox byte for byte as the addon does in-process', async () => {
  const tensors = await runSandboxed({ mode: 'extract', maxBytes: 1024 ** 2 }, dataset, { ...limits, errorCode: 'UNPROCESSABLE_DATASET' });
  assert.deepEqual(
    tensors.map((t) => ({ ...t, data: Buffer.from(t.data) })),
    extractTensors(dataset, 1024 ** 2),
  );
});

test('refuses a dataset whose tensors exceed maxBytes with 422 UNPROCESSABLE_DATASET', async () => {
  await assert.rejects(
    runSandboxed({ mode: 'extract', maxBytes: 1000 }, dataset, { ...limits, errorCode: 'UNPROCESSABLE_DATASET' }),
    rejectsWith('UNPROCESSABLE_DATASET', "The archive's tensors hold more than the limit of 1000 bytes"),
  );
});

test("refuses garbage bytes with 422 and the first line of libtorch's message", async () => {
  const garbage = Buffer.from('this is not a TorchScript archive');
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, garbage, limits),
    rejectsWith(
      'UNPROCESSABLE_MODEL',
      /^Cannot load the TorchScript archive: PytorchStreamReader failed reading zip archive: failed finding central directory$/,
    ),
  );
  await assert.rejects(
    runSandboxed({ mode: 'extract', maxBytes: 10 }, garbage, { ...limits, errorCode: 'UNPROCESSABLE_DATASET' }),
    rejectsWith('UNPROCESSABLE_DATASET', /^Cannot load the TorchScript archive: /),
  );
});

test('turns a real libtorch crash (its unpickler underflowing its stack on a crafted data.pkl) into 422 naming SIGSEGV', async () => {
  // In samples_0's size tuple (MARK, BININT1 100, 1, 28, 28, TUPLE), one BININT1 opcode becomes
  // TUPLE3, which libtorch 1.13 executes on a stack holding fewer than three items.
  const entries = readStoredZip(dataset).map(({ name, data }) => {
    if (!name.endsWith('/data.pkl')) return { name, data };
    const at = data.indexOf(Buffer.from([0x28, 0x4b, 100, 0x4b, 1, 0x4b, 28, 0x4b, 28]));
    assert.ok(at >= 0, 'the size tuple of samples_0 is in data.pkl');
    const edited = Buffer.from(data);
    edited[at + 1] = 0x87;
    return { name, data: edited };
  });
  await assert.rejects(
    runSandboxed({ mode: 'extract', maxBytes: 1024 ** 2 }, storedZip(entries), { ...limits, errorCode: 'UNPROCESSABLE_DATASET' }),
    rejectsWith('UNPROCESSABLE_DATASET', 'libtorch crashed while loading the file (SIGSEGV)'),
  );
});

test('turns a child killed by SIGSEGV into 422 naming the signal', async () => {
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, mnist, { ...limits, childScript: child('segfault.mjs') }),
    rejectsWith('UNPROCESSABLE_MODEL', 'libtorch crashed while loading the file (SIGSEGV)'),
  );
});

test('kills a child that hangs after timeoutMs and answers 422 saying how long it waited', async () => {
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, mnist, { ...limits, timeoutMs: 1500, childScript: child('hang.mjs') }),
    rejectsWith('UNPROCESSABLE_MODEL', 'Loading the file took longer than 1.5 s'),
  );
});

test('stops a child that allocates past its memory limit and answers 422', async () => {
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, mnist, { ...limits, memoryBytes: 512 * 1024 ** 2, childScript: child('allocate.mjs') }),
    rejectsWith(
      'UNPROCESSABLE_MODEL',
      /^(The process loading the file exited with status \d+|libtorch crashed while loading the file \(SIG[A-Z]+\))/,
    ),
  );
});

test('answers 422 when the real child cannot even start libtorch under a too small memory limit', async () => {
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, mnist, { ...limits, memoryBytes: 64 * 1024 ** 2 }),
    rejectsWith(
      'UNPROCESSABLE_MODEL',
      /^(The process loading the file exited with status \d+|libtorch crashed while loading the file \(SIG[A-Z]+\))/,
    ),
  );
});

test('turns a child that exits with a non-zero status into 422', async () => {
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, mnist, { ...limits, childScript: child('exit-status.mjs') }),
    rejectsWith('UNPROCESSABLE_MODEL', 'The process loading the file exited with status 3 (out of memory or crashed)'),
  );
});

test('turns a child that answers a malformed result into 422', async () => {
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, mnist, { ...limits, childScript: child('garbage-result.mjs') }),
    rejectsWith('UNPROCESSABLE_MODEL', 'The process loading the file returned no usable result'),
  );
});

test('gives the child no BASTION_* settings or other environment, and no way to write to a file', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bastion-sandbox-'));
  process.env.BASTION_SANDBOX_TEST_SECRET = 'must-not-leak';
  try {
    const target = path.join(dir, 'written-by-child');
    let report: { env: Record<string, string>; writeError: string | null } | undefined;
    await assert.rejects(
      runSandboxed({ mode: 'inspect' }, Buffer.from(target), { ...limits, childScript: child('probe.mjs') }),
      (error: unknown) => {
        assert.ok(error instanceof BastionError && error.code === 'INTERNAL', String(error));
        report = JSON.parse(error.message.replace(/^The sandbox failed \(PROBE\): /, '')) as typeof report;
        return true;
      },
    );
    assert.ok(report);
    assert.deepEqual(
      Object.keys(report.env).filter((key) => key.startsWith('BASTION')),
      [],
    );
    assert.equal(report.env.OPENBLAS_NUM_THREADS, '1');
    const allowed = new Set(['PATH', 'OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'TSX_DISABLE_CACHE', 'LD_LIBRARY_PATH']);
    assert.deepEqual(
      Object.keys(report.env).filter((key) => !allowed.has(key)),
      [],
    );
    assert.equal(report.writeError, 'EFBIG');
    assert.ok(!existsSync(target) || statSync(target).size === 0, 'the child wrote data to a file');
  } finally {
    delete process.env.BASTION_SANDBOX_TEST_SECRET;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lets a __setstate__ that writes a file during load write no data, and answers 422', async () => {
  const { bytes, marker } = await hostileModelsForLoading();
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, bytes('setstate_writes_file.pt'), limits),
    rejectsWith('UNPROCESSABLE_MODEL', /^Cannot load the TorchScript archive: /),
  );
  assert.ok(!existsSync(marker) || statSync(marker).size === 0, 'the __setstate__ wrote data to the marker');
  rmSync(marker, { force: true });
});

test('discards what the child writes to stdout and stderr', () => {
  // A separate parent process, so its own output can be read.
  const script = `
    import { runSandboxed } from ${JSON.stringify(path.join(repoRoot, 'src', 'artifacts', 'sandbox.ts'))};
    try {
      await runSandboxed({ mode: 'inspect' }, Buffer.alloc(0), { timeoutMs: 60000, memoryBytes: 2 ** 31, childScript: ${JSON.stringify(child('noisy.mjs'))} });
    } catch (error) {
      console.log('parent caught', error.code);
    }`;
  const run = spawnSync(
    process.execPath,
    [...process.execArgv.filter((flag) => !flag.startsWith('--test')), '--input-type=module', '-e', script],
    {
      cwd: repoRoot,
      encoding: 'utf8',
    },
  );
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'parent caught UNPROCESSABLE_MODEL');
  assert.ok(!run.stdout.includes('LEAK') && !run.stderr.includes('LEAK'), `${run.stdout}${run.stderr}`);
});

test('refuses limits that are not positive integers as a server error, before starting a child', async () => {
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, mnist, { ...limits, timeoutMs: 0 }),
    rejectsWith('INTERNAL', /timeoutMs must be an integer ≥ 1/),
  );
  await assert.rejects(
    runSandboxed({ mode: 'inspect' }, mnist, { ...limits, memoryBytes: 1.5 }),
    rejectsWith('INTERNAL', /memoryBytes must be an integer ≥ 1/),
  );
  await assert.rejects(
    runSandboxed({ mode: 'extract', maxBytes: -1 }, mnist, limits),
    rejectsWith('INTERNAL', /maxBytes must be an integer ≥ 0/),
  );
});

test('still inspects a model after every failure above: the parent process survived them', async () => {
  const inspection = await runSandboxed({ mode: 'inspect' }, mnist, limits);
  assert.equal(inspection.parameters.length, 8);
});
