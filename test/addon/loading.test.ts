// How src/native.ts loads the addon: lazily, with OpenBLAS limited to one thread, and with an
// explanation when the addon cannot be loaded. Each case runs in a child process, since a process
// loads the addon once.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/testdata.js';

function runChild(nativeFile: string, body: string, env: NodeJS.ProcessEnv = process.env): unknown {
  const script = `
    import { readFileSync } from 'node:fs';
    const native = await import(${JSON.stringify(pathToFileURL(nativeFile).href)});
    const torchMapped = () => readFileSync('/proc/self/maps', 'utf8').includes('libtorch_cpu');
    ${body}
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repoRoot,
    encoding: 'utf8',
    env,
  });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout);
}

test('importing native.ts does not load libtorch; the first call does, with OPENBLAS_NUM_THREADS=1', () => {
  const { OPENBLAS_NUM_THREADS: _ignored, ...env } = process.env;
  const result = runChild(
    path.join(repoRoot, 'src', 'native.ts'),
    `const before = { mapped: torchMapped(), openblas: process.env.OPENBLAS_NUM_THREADS ?? null };
     const torch = native.version().torch;
     console.log(JSON.stringify({ before, after: { mapped: torchMapped(), openblas: process.env.OPENBLAS_NUM_THREADS }, torch }));`,
    env,
  );
  assert.deepEqual(result, {
    before: { mapped: false, openblas: null },
    after: { mapped: true, openblas: '1' },
    torch: '1.13.0',
  });
});

test('native.ts keeps an OPENBLAS_NUM_THREADS the operator set', () => {
  const result = runChild(
    path.join(repoRoot, 'src', 'native.ts'),
    `native.loadNative(); console.log(JSON.stringify(process.env.OPENBLAS_NUM_THREADS));`,
    { ...process.env, OPENBLAS_NUM_THREADS: '3' },
  );
  assert.equal(result, '3');
});

test('a missing addon build fails every call with ADDON_LOAD_FAILED naming the fixes', () => {
  // A copy of native.ts in a root without build/: its module_root has no addon.
  const root = mkdtempSync(path.join(os.tmpdir(), 'bastion-native-'));
  try {
    mkdirSync(path.join(root, 'src'));
    copyFileSync(path.join(repoRoot, 'src', 'native.ts'), path.join(root, 'src', 'native.ts'));
    copyFileSync(path.join(repoRoot, 'package.json'), path.join(root, 'package.json'));
    symlinkSync(path.join(repoRoot, 'node_modules'), path.join(root, 'node_modules'));
    const result = runChild(
      path.join(root, 'src', 'native.ts'),
      `const errors = [];
       for (const call of [() => native.loadNative(), () => native.version(), () => native.inspectModel(new Uint8Array(1))]) {
         try { call(); errors.push(null); } catch (e) {
           errors.push({ isNativeError: e instanceof native.NativeError, code: e.code, message: e.message, hasCause: e.cause instanceof Error });
         }
       }
       console.log(JSON.stringify({ errors, mapped: torchMapped() }));`,
    ) as { errors: ({ isNativeError: boolean; code: string; message: string; hasCause: boolean } | null)[]; mapped: boolean };
    assert.equal(result.mapped, false);
    assert.equal(result.errors.length, 3);
    for (const error of result.errors) {
      assert.ok(error);
      assert.equal(error.isNativeError, true);
      assert.equal(error.code, 'ADDON_LOAD_FAILED');
      assert.equal(error.hasCause, true);
      assert.match(error.message, /^Cannot load the libtorch addon: \S+\/build\/Release\/bastion\.node does not exist\. /);
      assert.match(error.message, /npm run build:addon/);
      assert.match(error.message, /scripts\/setup\.sh/);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
