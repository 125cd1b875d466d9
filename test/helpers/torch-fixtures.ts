// Builds the TorchScript fixtures of test/fixtures/*.py with the system's Python and PyTorch, once per test run,
// and hands each test process its own copy in a fresh temporary folder. It protects two invariants: a test that
// asserts "the marker was never written" starts from a state where the marker does not exist (the generator
// proves its __setstate__ fixture really writes the marker, so this helper deletes it before handing fixtures
// out), and a test that writes into its fixture folder changes nobody else's fixtures.
//
// The cache: scripts/test.mjs makes one folder per run and names it in BASTION_TEST_FIXTURE_CACHE (without it,
// as when a test file runs on its own, the cache is a folder of this process). A build is keyed by the
// interpreter, the script's text and its arguments; the first process to want a key builds it into
// <cache>/<prefix>-<key>/out, and every other process that wants it waits for that build and copies it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, watch, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './testdata.js';

const run = promisify(execFile);

/** The interpreter the fixtures are built with: Debian's python3 with torch 1.13 (the server's version). */
export const fixturePython = '/usr/bin/python3';

let cacheDir: string | undefined;

/** The folder builds are kept in for this run: BASTION_TEST_FIXTURE_CACHE, or one of this process's own. */
export function fixtureCache(): string {
  if (cacheDir === undefined) {
    const named = process.env.BASTION_TEST_FIXTURE_CACHE;
    if (named) {
      mkdirSync(named, { recursive: true });
      cacheDir = named;
    } else {
      const own = mkdtempSync(path.join(os.tmpdir(), 'bastion-fixtures-'));
      process.once('exit', () => rmSync(own, { recursive: true, force: true }));
      cacheDir = own;
    }
  }
  return cacheDir;
}

/**
 * Runs test/fixtures/<script> with fixturePython as `script ...args(dir)`, where dir is the folder the script writes
 * its fixtures into (by default its only argument), unless this run already built the same script with the same
 * arguments; returns a fresh temporary folder (removed when the process exits) holding a copy of what it wrote.
 * Paths the script bakes into a fixture point at the build's own folder, not at the copy. Throws naming the script
 * and the end of its stderr when the build fails, in every process that wanted it.
 */
export async function buildFixtures(script: string, prefix: string, args: (dir: string) => string[] = (dir) => [dir]): Promise<string> {
  if (!existsSync(fixturePython)) throw new Error(`${script} needs ${fixturePython} with PyTorch (Debian: apt-get install python3-torch)`);
  const file = path.join(repoRoot, 'test', 'fixtures', script);
  const key = createHash('sha256')
    .update(JSON.stringify([fixturePython, readFileSync(file, 'utf8'), args('\0dir')]))
    .digest('hex')
    .slice(0, 16);
  const entry = path.join(fixtureCache(), `${prefix}-${key}`);
  await buildOnce(entry, async (out) => {
    try {
      await run(fixturePython, [file, ...args(out)], { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? '';
      if (/No module named '?torch'?/.test(stderr)) {
        throw new Error(`${script} needs PyTorch for ${fixturePython} (Debian: apt-get install python3-torch)`);
      }
      throw new Error(`${script} failed: ${stderr.trim().split('\n').slice(-5).join(' | ') || firstLine(error)}`);
    }
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), `bastion-${prefix}-`));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  cpSync(path.join(entry, 'out'), dir, { recursive: true });
  return dir;
}

/**
 * Makes `entry` and runs `build(entry/out)` in it, once across the processes of a run: mkdir of `entry` elects the
 * builder, which records its pid in `entry/pid` and ends with `entry/done`, or `entry/failed` holding the error
 * message; every other process watches `entry` until one of them appears (and fails if the builder dies first).
 */
async function buildOnce(entry: string, build: (out: string) => Promise<void>): Promise<void> {
  let isBuilder = true;
  try {
    mkdirSync(entry);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    isBuilder = false;
  }
  const publish = (name: 'done' | 'failed', text: string) => {
    writeFileSync(path.join(entry, `${name}.tmp`), text);
    renameSync(path.join(entry, `${name}.tmp`), path.join(entry, name));
  };
  if (isBuilder) {
    writeFileSync(path.join(entry, 'pid'), String(process.pid));
    mkdirSync(path.join(entry, 'out'));
    try {
      await build(path.join(entry, 'out'));
    } catch (error) {
      publish('failed', error instanceof Error ? error.message : String(error));
      throw error;
    }
    publish('done', '');
    return;
  }
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const check = () => {
      if (settled) return;
      if (existsSync(path.join(entry, 'done'))) return finish();
      if (existsSync(path.join(entry, 'failed'))) return finish(new Error(readFileSync(path.join(entry, 'failed'), 'utf8')));
      const pid = Number(existsSync(path.join(entry, 'pid')) ? readFileSync(path.join(entry, 'pid'), 'utf8') : NaN);
      if (Number.isInteger(pid) && !isAlive(pid)) finish(new Error(`the process that built ${entry} (pid ${pid}) ended before finishing`));
    };
    // The watch sees done or failed appear; the interval only notices a builder that died without either.
    const watcher = watch(entry, check);
    const liveness = setInterval(check, 2000);
    const finish = (error?: Error) => {
      settled = true;
      watcher.close();
      clearInterval(liveness);
      if (error) reject(error);
      else resolve();
    };
    check();
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Every file the generator writes (`forward_warn.pt` and `setattr.pt` included: both script in torch
 * 1.13). What each does when loaded and run:
 * - `setstate_writes_file.pt`: its TorchScript `__setstate__` writes `marker` during torch.jit.load;
 * - `forward_print.pt`: forward prints a line (prim::Print);
 * - `forward_save.pt`: forward torch.saves its output to `forward_save.out` in the folder it was built in (aten::save);
 * - `forward_warn.pt`: forward calls warnings.warn (aten::warn);
 * - `batchnorm.pt`: Conv2d + BatchNorm2d + Linear, saved in train mode;
 * - `frozen.pt`: torch.jit.freeze of an eval-mode Linear-ReLU-Linear: weights are graph constants;
 * - `buffer_mutation.pt`: forward does `self.counter += 1` and `self.running.add_(x.mean())` on buffers;
 * - `setattr.pt`: forward assigns an int attribute (`self.calls = self.calls + 1`);
 * - `transformer_encoder.pt`: a control: Embedding + 2-layer nn.TransformerEncoder + Linear, whose
 *   nested-tensor conversions sit only on its inference fast path; inputs are token ids `[n, t]` (< 20);
 * - `nested_in_training.pt`: the nested-tensor round trip on a path that runs in training;
 * - `good_mlp.pt`: a clean Linear(4, 8)-ReLU-Linear(8, 2), the control. Inputs are `[n, 4]` for
 *   `frozen.pt` and `good_mlp.pt`, `[n, 1, 4, 4]` for `batchnorm.pt`, `[n, 2]` for the others.
 */
export const hostileModelNames = [
  'setstate_writes_file.pt',
  'forward_print.pt',
  'forward_save.pt',
  'forward_warn.pt',
  'batchnorm.pt',
  'frozen.pt',
  'buffer_mutation.pt',
  'setattr.pt',
  'transformer_encoder.pt',
  'nested_in_training.pt',
  'good_mlp.pt',
] as const;
export type HostileModelName = (typeof hostileModelNames)[number];

export interface HostileModels {
  /** The folder holding the .pt files (this process's copy, removed when the process exits). */
  dir: string;
  /** Where `setstate_writes_file.pt`'s `__setstate__` writes when loaded (outside dir); absent when handed out. */
  marker: string;
  /** Absolute path of one fixture; throws for a name the generator did not write. */
  file(name: string): string;
  /** The bytes of one fixture. */
  bytes(name: string): Buffer;
}

let shared: Promise<HostileModels> | undefined;
let own: Promise<HostileModels> | undefined;

/**
 * The hostile fixtures, built once per test run and shared by every later call in this process. No test may let
 * anything load setstate_writes_file.pt from them: other processes assert that their marker never appears.
 */
export function hostileModels(): Promise<HostileModels> {
  shared ??= generate(path.join(fixtureCache(), 'hostile-setstate-was-here'));
  return shared;
}

/**
 * The same fixtures, built for this process alone (not cached), whose setstate_writes_file.pt writes a marker in a
 * folder of this process: for a test that lets libtorch load it (in the sandbox) and looks at what it wrote.
 */
export function hostileModelsForLoading(): Promise<HostileModels> {
  own ??= (() => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'bastion-hostile-marker-'));
    process.once('exit', () => rmSync(folder, { recursive: true, force: true }));
    return generate(path.join(folder, 'setstate-was-here'));
  })();
  return own;
}

async function generate(marker: string): Promise<HostileModels> {
  const dir = await buildFixtures('hostile_models.py', 'hostile', (folder) => [folder, marker]);
  // The generator loads setstate_writes_file.pt once to prove it writes the marker.
  rmSync(marker, { force: true });

  const file = (name: string): string => {
    const target = path.join(dir, name);
    if (path.dirname(target) !== dir || !existsSync(target)) {
      throw new Error(`no hostile fixture named ${JSON.stringify(name)} in ${dir}`);
    }
    return target;
  };
  return { dir, marker, file, bytes: (name) => readFileSync(file(name)) };
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

let batchBuilt: Promise<string> | undefined;

/**
 * The folder of test/fixtures/batch_models.py's models (built once per test run, copied for this process): forwards
 * that mix the samples of a batch or let data or the batch size steer control flow, and legitimate controls.
 * Each takes inputs [n, 4] and returns [n, 2]; the script's docstrings say what each does.
 */
export function batchModels(): Promise<string> {
  batchBuilt ??= buildFixtures('batch_models.py', 'batch');
  return batchBuilt;
}
