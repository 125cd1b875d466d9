// Builds the trainer test models, dataset and PyTorch reference parameters
// (test/fixtures/trainer_models.py) with the system's Python once per test run, copied into a fresh
// temporary folder of each process, and runs further Python checks (interop with exported models). It protects the
// invariant that the trainer is compared with PyTorch itself, on the very bytes the addon trained.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildFixtures, fixturePython } from './torch-fixtures.js';

const run = promisify(execFile);

/** The models the generator writes; each takes `[n, 6]` float inputs (two_inputs also `[n, t]` int64 ids < 10). */
export const trainerModelNames = [
  'tiny_mlp.script.pt', // Linear(6, 8)-ReLU-Linear(8, 3)
  'tiny_mlp.trace.pt', // the same, traced
  'zero_grad.pt', // parameters w1, w2 of 20,000 each that the [n, 1] output ignores: every gradient is 0
  'log_of_linear.pt', // log(Linear(6, 3)(x) - 1000): NaN everywhere
  'batch_mean.pt', // Linear(6, 3) averaged over the batch: output [1, 3]
  'huge_weight.pt', // Linear(6, 3) with weight[0, 0] = 1e36: infinite output (NaN loss) when x[i, 0] > ~340
  'huge_lstm.pt', // nn.LSTM(2, 4) over the 6 features as steps, the first times 1e36: NaN loss when x[i, 0] > ~340
  'raises_above.pt', // Linear(6, 3) that raises when any feature of the batch is above 100
  'nan_on_copies.pt', // Conv1d(1, 3, 6) over the features, times NaN on rows after the second that repeat the first (padding rows)
  'buffered.pt', // Linear(6, 3) of (x - offset) * scale, with buffers offset and scale
  'two_inputs.pt', // forward(x0 [n, 6], x1 [n, t] int64): Linear(6, 3)(x0) + Embedding(10, 3)(x1).mean(1)
  'regression.trace.pt', // Linear(6, 2)
] as const;
export type TrainerModelName = (typeof trainerModelNames)[number];

export interface TrainerFixtures {
  dir: string;
  file(name: TrainerModelName): string;
  bytes(name: TrainerModelName): Buffer;
  /** Samples N = 32, features D = 6, classes K = 3. */
  n: number;
  d: number;
  k: number;
  /** [N, D] float32 inputs. */
  x: Float32Array;
  /** [N] int64 class labels in [0, K). */
  y: BigInt64Array;
  /**
   * tiny_mlp.script.pt's parameters (flat float32, parameters() order) initially and after PyTorch's
   * full-batch cross-entropy steps: sgd_plain_1, sgd_nesterov_3, sgd_dampening_3, adam_3, adamw_3;
   * and after one SGD step (lr 0.5) on clipped per-sample gradients with q = 1, σ = 0:
   * dp_flat_clip_1 (C = 0.05), dp_per_layer_clip_1 (fc1.* to 0.03, fc2.* to 0.02).
   */
  refs: Record<string, number[]>;
}

let built: Promise<TrainerFixtures> | undefined;

/** The fixtures, copied on first call from this run's build and shared by every later call in this process. */
export function trainerFixtures(): Promise<TrainerFixtures> {
  built ??= generate();
  return built;
}

async function generate(): Promise<TrainerFixtures> {
  const dir = await buildFixtures('trainer_models.py', 'trainer');
  const file = (name: TrainerModelName): string => path.join(dir, name);
  const raw = (name: string): ArrayBuffer => {
    const bytes = readFileSync(path.join(dir, name));
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  };
  return {
    dir,
    file,
    bytes: (name) => readFileSync(file(name)),
    n: 32,
    d: 6,
    k: 3,
    x: new Float32Array(raw('x.f32')),
    y: new BigInt64Array(raw('y.i64')),
    refs: JSON.parse(readFileSync(path.join(dir, 'refs.json'), 'utf8')) as Record<string, number[]>,
  };
}

/** Runs a Python program with the fixture interpreter and returns its stdout parsed as JSON. */
export async function runPythonJson(program: string, args: string[] = []): Promise<unknown> {
  try {
    const { stdout } = await run(fixturePython, ['-c', program, ...args], { timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
    return JSON.parse(stdout);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`python failed: ${stderr.trim().split('\n').slice(-5).join(' | ') || String(error)}`);
  }
}
