// Locates the reference data the tests use (test/data/, copied from the project's shared test data
// so that a clone tests on its own) and reads the small parts of it tests need: TorchScript file lists
// and safetensors headers.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/helpers/testdata.ts). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A path under test/data; throws a clear error when it does not exist. */
export function testdataPath(...segments: string[]): string {
  const root = path.join(repoRoot, 'test', 'data');
  const target = path.join(root, ...segments);
  if (!existsSync(target)) throw new Error(`Test data not found: ${target} (test/data/README.md says what belongs there)`);
  return target;
}

export type TorchscriptProducer = 'torch-1.13' | 'torch-2.6';
export const torchscriptProducers: readonly TorchscriptProducer[] = ['torch-1.13', 'torch-2.6'];

/** Every .pt file written by one PyTorch version, sorted, as absolute paths. */
export function torchscriptFiles(producer: TorchscriptProducer): string[] {
  const dir = testdataPath('torchscript', producer);
  return readdirSync(dir)
    .filter((name) => name.endsWith('.pt'))
    .sort()
    .map((name) => path.join(dir, name));
}

/** The model a TorchScript test file holds: "mnist_cnn.trace.pt" -> "mnist_cnn". */
export function modelName(file: string): string {
  return path.basename(file).split('.')[0] ?? '';
}

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** The tensor table of a .safetensors file (its JSON header, without __metadata__). */
export function readSafetensorsHeader(file: string): Record<string, SafetensorsEntry> {
  const bytes = readFileSync(file);
  if (bytes.length < 8) throw new Error(`${file}: too short for a safetensors header`);
  const headerSize = Number(bytes.readBigUInt64LE(0));
  if (headerSize > bytes.length - 8) throw new Error(`${file}: header size ${headerSize} exceeds the file`);
  const header = JSON.parse(bytes.subarray(8, 8 + headerSize).toString('utf8')) as Record<string, unknown>;
  const { __metadata__: _metadata, ...tensors } = header;
  return tensors as Record<string, SafetensorsEntry>;
}

/** Number of elements of a tensor with this shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((product, size) => product * size, 1);
}
