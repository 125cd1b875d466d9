// The models bench:dp and bench:step-timing train (written by dp_models.py) and the synthetic data
// they train on: one description and one data generator for both benchmarks.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { TrainingData } from '../../src/native.js';

/** One model of dp_models.py's manifest: its file, per-sample input, classes, benchmark batch size and trainable parameters. */
export interface ModelSpec {
  file: string;
  input: { dtype: 'F32' | 'I64'; shape: number[]; vocabulary?: number };
  classes: number;
  batchSize: number;
  /** Elements per trainable parameter, by qualified name, in named_parameters() order. */
  parameters: Record<string, number>;
}

/** Writes the benchmark models into `dir` and returns their manifest, by name. */
export function writeModels(dir: string): Record<string, ModelSpec> {
  const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'dp_models.py');
  return JSON.parse(execFileSync('/usr/bin/python3', [script, dir], { encoding: 'utf8' })) as Record<string, ModelSpec>;
}

/** `samples` deterministic synthetic samples for `spec`: features in [0, 1) or token ids below its vocabulary, labels cycling through its classes. */
export function syntheticData(spec: ModelSpec, samples: number): TrainingData {
  const perSample = spec.input.shape.reduce((a, b) => a * b, 1);
  const inputs =
    spec.input.dtype === 'F32'
      ? Buffer.from(Float32Array.from({ length: samples * perSample }, (_, i) => ((i * 2654435761) % 1000) / 1000).buffer)
      : Buffer.from(
          BigInt64Array.from({ length: samples * perSample }, (_, i) => BigInt((i * 2654435761) % (spec.input.vocabulary ?? 2))).buffer,
        );
  const labels = Buffer.from(BigInt64Array.from({ length: samples }, (_, i) => BigInt(i % spec.classes)).buffer);
  return {
    inputs: [{ dtype: spec.input.dtype, shape: [samples, ...spec.input.shape], data: inputs }],
    labels: { dtype: 'I64', shape: [samples], data: labels },
  };
}
