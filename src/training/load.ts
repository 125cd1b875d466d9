// Loading what a training (or an evaluation) reads, in a pool worker: a model's TorchScript bytes and
// the canonical tensors of one or more datasets, decrypted from their sealed blobs straight into the
// buffers the trainer borrows. Datasets are concatenated along the sample dimension, in the order
// given; each blob is streamed once and only the byte ranges its layout names are kept, so memory is
// the tensors themselves, never a second copy of a blob.
import { type BlobStore, openBlob, readBlob } from '../artifacts/blob-store.js';
import { type DatasetLayout, LABELS_NAME, type TensorLocation } from '../artifacts/formats/canonical.js';
import { BastionError } from '../errors.js';
import type { TensorData, TrainingData } from '../native.js';
import { dtypeSizeBytes } from '../vocabulary.js';

export interface DatasetSource {
  id: string;
  layout: DatasetLayout;
}

/** The model's TorchScript archive, whole, in memory. */
export function loadModelBytes(blobs: BlobStore, modelId: string): Promise<Buffer> {
  return readBlob(blobs, { artifactId: modelId, kind: 'model' });
}

interface Target {
  name: string;
  dtype: TensorLocation['dtype'];
  rest: number[];
  samples: number;
  buffer: Buffer;
}

/**
 * The datasets' canonical tensors, concatenated along dim 0: `inputs` in canonical order and
 * `labels`. The datasets must agree on names, dtypes and per-sample shapes (the planner checked it;
 * this re-checks and throws UNPROCESSABLE_TRAINING otherwise).
 */
export async function loadTrainingData(blobs: BlobStore, datasets: readonly DatasetSource[]): Promise<TrainingData> {
  if (datasets.length === 0) throw new BastionError('UNPROCESSABLE_TRAINING', 'A training needs at least one dataset');
  const [first] = datasets as [DatasetSource];
  const targets: Target[] = first.layout.tensors.map((t) => ({
    name: t.name,
    dtype: t.dtype,
    rest: t.shape.slice(1),
    samples: 0,
    buffer: Buffer.alloc(0),
  }));
  for (const dataset of datasets) {
    const names = dataset.layout.tensors.map((t) => t.name).join(',');
    if (names !== targets.map((t) => t.name).join(',')) {
      throw new BastionError(
        'UNPROCESSABLE_TRAINING',
        `Dataset ${dataset.id} has tensors ${names}, dataset ${first.id} has ${targets.map((t) => t.name).join(',')}`,
      );
    }
    dataset.layout.tensors.forEach((t, i) => {
      const target = targets[i]!;
      if (t.dtype !== target.dtype || t.shape.slice(1).join(',') !== target.rest.join(',')) {
        throw new BastionError(
          'UNPROCESSABLE_TRAINING',
          `${t.name} of dataset ${dataset.id} is ${t.dtype} [${t.shape.slice(1).join(', ')}] per ` +
            `sample, not ${target.dtype} [${target.rest.join(', ')}]`,
        );
      }
      target.samples += t.shape[0] ?? 0;
    });
  }
  for (const target of targets) {
    const perSample = target.rest.reduce((a, b) => a * b, 1) * dtypeSizeBytes[target.dtype];
    target.buffer = Buffer.alloc(target.samples * perSample);
  }
  const written = targets.map(() => 0);
  for (const dataset of datasets) {
    const ranges = dataset.layout.tensors.map((t, i) => ({
      start: t.offsetBytes,
      end: t.offsetBytes + t.sizeBytes,
      target: i,
      at: written[i]!,
    }));
    await copyRanges(blobs, dataset, ranges, targets);
    dataset.layout.tensors.forEach((t, i) => {
      written[i]! += t.sizeBytes;
    });
  }
  const tensor = (t: Target): TensorData => ({ dtype: t.dtype, shape: [t.samples, ...t.rest], data: t.buffer });
  const labels = targets.find((t) => t.name === LABELS_NAME);
  if (!labels) throw new BastionError('UNPROCESSABLE_TRAINING', `Dataset ${first.id} has no ${LABELS_NAME} tensor`);
  return { inputs: targets.filter((t) => t !== labels).map(tensor), labels: tensor(labels) };
}

/** Streams one dataset blob and copies each [start, end) of its plaintext to its target at `at`. */
async function copyRanges(
  blobs: BlobStore,
  dataset: DatasetSource,
  ranges: { start: number; end: number; target: number; at: number }[],
  targets: Target[],
): Promise<void> {
  const reader = await openBlob(blobs, { artifactId: dataset.id, kind: dataset.layout.blob });
  const last = Math.max(...ranges.map((r) => r.end));
  if (last > reader.sizeBytes)
    throw new BastionError('SEALED_BLOB_CORRUPT', `The layout of dataset ${dataset.id} points past the end of its blob`);
  let position = 0;
  for await (const chunk of reader.chunks()) {
    const chunkEnd = position + chunk.length;
    for (const r of ranges) {
      const from = Math.max(r.start, position);
      const to = Math.min(r.end, chunkEnd);
      if (from < to) chunk.copy(targets[r.target]!.buffer, r.at + (from - r.start), from - position, to - position);
    }
    position = chunkEnd;
    if (position >= last) break;
  }
}
