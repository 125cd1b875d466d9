// Builds the hostile TorchScript fixtures (test/fixtures/hostile_models.py) with the system's Python
// and PyTorch, once per test process, into a fresh temporary folder. It protects the invariant that a
// test which asserts "the marker was never written" starts from a folder where the marker does not
// exist: the generator proves its __setstate__ fixture really writes the marker, so this helper deletes
// it before handing the folder out.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './testdata.js';

const run = promisify(execFile);

/** The interpreter the fixtures are built with: Debian's python3 with torch 1.13 (the server's version). */
export const fixturePython = '/usr/bin/python3';

/**
 * Runs test/fixtures/<script> with fixturePython as `script <dir> ...extra(dir)`, where dir is a fresh
 * temporary folder (removed when the process exits) that the script writes its fixtures into; returns
 * dir. Throws naming the script and the end of its stderr when it fails.
 */
export async function buildFixtures(script: string, prefix: string, extra: (dir: string) => string[] = () => []): Promise<string> {
  if (!existsSync(fixturePython)) throw new Error(`${script} needs ${fixturePython} with PyTorch (Debian: apt-get install python3-torch)`);
  const dir = mkdtempSync(path.join(os.tmpdir(), `bastion-${prefix}-`));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(repoRoot, 'test', 'fixtures', script);
  try {
    await run(fixturePython, [file, dir, ...extra(dir)], { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`${script} failed: ${stderr.trim().split('\n').slice(-5).join(' | ') || firstLine(error)}`);
  }
  return dir;
}

/**
 * Every file the generator writes (`forward_warn.pt` and `setattr.pt` included: both script in torch
 * 1.13). What each does when loaded and run:
 * - `setstate_writes_file.pt`: its TorchScript `__setstate__` writes `marker` during torch.jit.load;
 * - `forward_print.pt`: forward prints a line (prim::Print);
 * - `forward_save.pt`: forward torch.saves its output to `<dir>/forward_save.out` (aten::save);
 * - `forward_warn.pt`: forward calls warnings.warn (aten::warn);
 * - `batchnorm.pt`: Conv2d + BatchNorm2d + Linear, saved in train mode;
 * - `frozen.pt`: torch.jit.freeze of an eval-mode Linear-ReLU-Linear: weights are graph constants;
 * - `buffer_mutation.pt`: forward does `self.counter += 1` and `self.running.add_(x.mean())` on buffers;
 * - `setattr.pt`: forward assigns an int attribute (`self.calls = self.calls + 1`);
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
  'good_mlp.pt',
] as const;
export type HostileModelName = (typeof hostileModelNames)[number];

export interface HostileModels {
  /** The folder holding the .pt files (a fresh mkdtemp folder, removed when the process exits). */
  dir: string;
  /** Where `setstate_writes_file.pt`'s `__setstate__` writes when loaded; absent when handed out. */
  marker: string;
  /** Absolute path of one fixture; throws for a name the generator did not write. */
  file(name: string): string;
  /** The bytes of one fixture. */
  bytes(name: string): Buffer;
}

let built: Promise<HostileModels> | undefined;

/** The hostile fixtures, generated on first call and shared by every later call in this process. */
export function hostileModels(): Promise<HostileModels> {
  built ??= generate();
  return built;
}

async function generate(): Promise<HostileModels> {
  if (!existsSync(fixturePython)) {
    throw new Error(
      `hostile TorchScript fixtures need ${fixturePython} with PyTorch (Debian: apt-get install python3-torch); ` +
        'it does not exist on this machine',
    );
  }
  try {
    await run(fixturePython, ['-c', 'import torch'], { timeout: 60_000 });
  } catch (error) {
    throw new Error(
      `hostile TorchScript fixtures need PyTorch for ${fixturePython} (Debian: apt-get install python3-torch); ` +
        `"import torch" failed: ${firstLine(error)}`,
    );
  }
  const markerName = 'setstate-was-here';
  const dir = await buildFixtures('hostile_models.py', 'hostile', (folder) => [path.join(folder, markerName)]);
  const marker = path.join(dir, markerName);
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
 * The folder of test/fixtures/batch_models.py's models (built once per test process): forwards that mix
 * the samples of a batch or let data or the batch size steer control flow, and legitimate controls.
 * Each takes inputs [n, 4] and returns [n, 2]; the script's docstrings say what each does.
 */
export function batchModels(): Promise<string> {
  batchBuilt ??= buildFixtures('batch_models.py', 'batch');
  return batchBuilt;
}
