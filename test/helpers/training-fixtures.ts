// What the training tests upload: a small scripted classifier (test/fixtures/training_models.py, built
// once per test run with the system's PyTorch) and a learnable safetensors dataset of float features and
// int64 labels from a seeded PRNG; and a check that PyTorch itself loads a trained model and runs it.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { encodeSafetensors } from '../../src/artifacts/formats/safetensors.js';
import { prng } from './prng.js';
import { repoRoot } from './testdata.js';
import { buildFixtures, fixturePython } from './torch-fixtures.js';

const run = promisify(execFile);
const script = path.join(repoRoot, 'test', 'fixtures', 'training_models.py');

/** Features and classes of the classifier and of classifierDataset(). */
export const FEATURES = 8;
export const CLASSES = 3;

const builtModels = new Map<string, Promise<Buffer>>();

/** The bytes training_models.py writes for `command` (default `build-<name>`), built once per test run. */
function builtModel(name: string, command = `build-${name}`): Promise<Buffer> {
  let built = builtModels.get(name);
  if (!built) {
    built = buildFixtures('training_models.py', `training-${name}`, (dir) => [command, path.join(dir, `${name}.pt`)]).then((dir) =>
      readFileSync(path.join(dir, `${name}.pt`)),
    );
    builtModels.set(name, built);
  }
  return built;
}

/** The TorchScript bytes of Linear(8, 16)-Tanh-Linear(16, 3). */
export const classifierModel = (): Promise<Buffer> => builtModel('classifier', 'build');

/** The TorchScript bytes of Linear(5, 16)-Tanh-Linear(16, 3): libtorch refuses it on inputs of 4 features. */
export const narrowModel = (): Promise<Buffer> => builtModel('narrow');

/** The TorchScript bytes of nn.LSTM(1, 8) over the 8 features as 8 steps, then Linear(8, 3) on the last hidden state. */
export const recurrentModel = (): Promise<Buffer> => builtModel('recurrent');

/** The TorchScript bytes of Linear(8, 3) whose forward raises "this model refuses to train" in training mode. */
export const evalOnlyModel = (): Promise<Buffer> => builtModel('eval-only');

/** The TorchScript bytes of Linear(8, 3) with weight[0, 0] = 1e36: infinite output when a record's first feature is above ~340. */
export const hugeWeightModel = (): Promise<Buffer> => builtModel('huge');

/** `samples` × FEATURES float32 features in [-1, 1) and labels = argmax of the first CLASSES features, then `edit` applied to them. */
export function classifierDataset(
  samples: number,
  seed = 1,
  features = FEATURES,
  edit: (x: Float32Array, y: BigInt64Array) => void = () => undefined,
): Buffer {
  const random = prng(seed);
  const x = Float32Array.from({ length: samples * features }, () => random() * 2 - 1);
  const y = BigInt64Array.from({ length: samples }, (_, i) => {
    let best = 0;
    for (let k = 1; k < CLASSES; k += 1) if (x[i * features + k]! > x[i * features + best]!) best = k;
    return BigInt(best);
  });
  edit(x, y);
  return encodeSafetensors([
    { name: 'inputs', dtype: 'F32', shape: [samples, features], data: new Uint8Array(x.buffer) },
    { name: 'labels', dtype: 'I64', shape: [samples], data: new Uint8Array(y.buffer) },
  ]);
}

/** Loads a model file with PyTorch and runs forward on 4 random samples: the output's shape and finiteness. */
export async function runInPytorch(file: string, features = FEATURES): Promise<{ shape: number[]; finite: boolean }> {
  const { stdout } = await run(fixturePython, [script, 'check', file, String(features)], { timeout: 120_000 });
  return JSON.parse(stdout.trim()) as { shape: number[]; finite: boolean };
}
