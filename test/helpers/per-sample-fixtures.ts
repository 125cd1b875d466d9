// Builds the per-sample gradient fixtures (test/fixtures/per_sample_models.py) with the system's
// Python and PyTorch once per test run (test/helpers/torch-fixtures.ts keeps the build), and reads reference data
// (safetensors tensors) for the engine tests. Every model comes with a batch and the whole-batch
// autograd gradient of Σ_i l_i, computed by PyTorch itself.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { LossConfig, TensorData } from '../../src/native.js';
import { buildFixtures } from './torch-fixtures.js';

interface JsonTensor {
  dtype: 'F32' | 'F64' | 'I64';
  shape: number[];
  data: number[];
}

export interface PerSampleFixture {
  name: string;
  /** Bytes of the scripted and (when the model traces) traced archive. */
  files: { script: Buffer; trace?: Buffer };
  inputs: TensorData[];
  labels: TensorData;
  loss: LossConfig;
  parameters: string[];
  /** Whole-batch gradient of Σ_i l_i per parameter, flattened; absent for models that mix the batch. */
  batchGrads?: Float64Array[];
}

/** A TensorData from plain numbers. */
export function hostTensor(dtype: 'F32' | 'F64' | 'I64', shape: number[], data: ArrayLike<number>): TensorData {
  if (dtype === 'I64') return { dtype, shape, data: BigInt64Array.from(Array.from(data), (v) => BigInt(v)) };
  if (dtype === 'F64') return { dtype, shape, data: Float64Array.from(data) };
  return { dtype, shape, data: Float32Array.from(data) };
}

let built: Promise<Map<string, PerSampleFixture>> | undefined;

/** The fixtures by name, generated on first call. */
export function perSampleFixtures(): Promise<Map<string, PerSampleFixture>> {
  built ??= generate();
  return built;
}

async function generate(): Promise<Map<string, PerSampleFixture>> {
  const dir = await buildFixtures('per_sample_models.py', 'per-sample');
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<
    string,
    {
      files: { script: string; trace?: string };
      inputs: JsonTensor[];
      labels: JsonTensor;
      loss: LossConfig;
      parameters: string[];
      batchGrads?: number[][];
    }
  >;
  const fixtures = new Map<string, PerSampleFixture>();
  for (const [name, entry] of Object.entries(manifest)) {
    const fixture: PerSampleFixture = {
      name,
      files: { script: readFileSync(path.join(dir, entry.files.script)) },
      inputs: entry.inputs.map((t) => hostTensor(t.dtype, t.shape, t.data)),
      labels: hostTensor(entry.labels.dtype, entry.labels.shape, entry.labels.data),
      loss: entry.loss,
      parameters: entry.parameters,
    };
    if (entry.files.trace) fixture.files.trace = readFileSync(path.join(dir, entry.files.trace));
    if (entry.batchGrads) fixture.batchGrads = entry.batchGrads.map((g) => Float64Array.from(g));
    fixtures.set(name, fixture);
  }
  return fixtures;
}

/** The tensors of a safetensors file (F32 as Float32Array, I64 as BigInt64Array), copied. */
export function readSafetensors(file: string): Record<string, TensorData> {
  const bytes = readFileSync(file);
  const headerSize = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerSize).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out: Record<string, TensorData> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [start, end] = entry.data_offsets;
    const slice = Uint8Array.prototype.slice.call(bytes, 8 + headerSize + start, 8 + headerSize + end);
    if (entry.dtype === 'F32') out[name] = { dtype: 'F32', shape: entry.shape, data: new Float32Array(slice.buffer) };
    else if (entry.dtype === 'I64') out[name] = { dtype: 'I64', shape: entry.shape, data: new BigInt64Array(slice.buffer) };
    else throw new Error(`${file}: unsupported dtype ${entry.dtype} for ${name}`);
  }
  return out;
}
