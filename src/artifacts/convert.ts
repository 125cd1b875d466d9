// Dataset checks and conversion to the canonical form, run in a pool worker (they read and check every
// byte of a dataset that may be gigabytes). A safetensors upload is only checked: its bytes already
// are the canonical tensors, so its layout points into the upload and nothing is written twice (the
// disk, not the CPU, bounds upload speed). CSV and the tensors a sandboxed libtorch load extracted
// from a TorchScript dataset are converted into a new staged blob. Blob handles are plain data, so this
// runs the same on any thread.

import type { Dtype } from '../vocabulary.js';
import { type BlobStore, openBlob, stageBlobFrom } from './blob-store.js';
import type { DatasetLayout, DatasetSummary, TensorLocation } from './formats/canonical.js';
import { convertCsv } from './formats/csv.js';
import { convertSafetensors, encodeSafetensors, parseSafetensorsHeader, safetensorsHeaderLength } from './formats/safetensors.js';
import type { BlobIdentity } from './sealed-blob.js';

export type ConvertSource =
  | { kind: 'safetensors' | 'csv'; identity: BlobIdentity; file: string; sizeBytes: number; labelColumn?: string }
  /** Tensors of a TorchScript dataset (names as in the file: samples_<i>, labels, privacy_limit). */
  | { kind: 'tensors'; tensors: { name: string; dtype: string; shape: number[]; data: Uint8Array }[] };

export interface ConvertInput {
  blobs: BlobStore;
  /** Identity of the converted blob, when one is written (kind 'dataset-tensors'). */
  target: BlobIdentity;
  source: ConvertSource;
}

export interface ConvertOutput {
  summary: DatasetSummary;
  layout: DatasetLayout;
  /** A `privacy_limit` the file carried (BastionAI layout), else null. */
  privacyLimit: number | null;
  /** The converted blob, staged under `target` (without a hash: it never leaves the server); null when none was written. */
  converted: { sha256: null; sizeBytes: number } | null;
}

async function* fromBuffer(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

async function* blobChunks(blobs: BlobStore, identity: BlobIdentity, file: string): AsyncGenerator<Uint8Array> {
  const reader = await openBlob(blobs, identity, file);
  yield* reader.chunks();
}

export async function convertDataset(input: ConvertInput): Promise<ConvertOutput> {
  const { blobs, target, source } = input;
  if (source.kind === 'safetensors') {
    const checked = await convertSafetensors(blobChunks(blobs, source.identity, source.file), null, { sizeBytes: source.sizeBytes });
    return {
      summary: checked.summary,
      layout: { blob: 'dataset', tensors: checked.sourceTensors },
      privacyLimit: checked.extras.privacyLimit ?? null,
      converted: null,
    };
  }
  const csv = source.kind === 'csv' ? source : null;
  const tensors = source.kind === 'tensors' ? source.tensors : [];
  const { staged, result } = await stageBlobFrom(
    blobs,
    target,
    async (sink) => {
      if (csv) {
        const open = () => blobChunks(blobs, csv.identity, csv.file);
        const summary = await convertCsv(open, csv.labelColumn !== undefined ? { labelColumn: csv.labelColumn } : {}, sink);
        return { summary, privacyLimit: null };
      }
      const bytes = encodeSafetensors(tensors.map((t) => ({ ...t, dtype: t.dtype as Dtype })));
      const { summary, extras } = await convertSafetensors(fromBuffer(bytes), sink, { sizeBytes: bytes.length });
      return { summary, privacyLimit: extras.privacyLimit ?? null };
    },
    { hash: false },
  );
  const located = await locateTensors(blobs, target, staged.file, staged.sizeBytes, result.summary);
  return { ...result, layout: { blob: 'dataset-tensors', tensors: located }, converted: { sha256: null, sizeBytes: staged.sizeBytes } };
}

/** Reads back the header of a converted (canonical safetensors) blob: where each tensor's bytes are. */
async function locateTensors(
  blobs: BlobStore,
  identity: BlobIdentity,
  file: string,
  sizeBytes: number,
  summary: DatasetSummary,
): Promise<TensorLocation[]> {
  const parts: Buffer[] = [];
  let have = 0;
  let need = 8;
  for await (const chunk of blobChunks(blobs, identity, file)) {
    parts.push(Buffer.from(chunk));
    have += chunk.length;
    if (have >= 8 && need === 8) need = 8 + safetensorsHeaderLength(Buffer.concat(parts), sizeBytes);
    if (have >= need) break;
  }
  const header = parseSafetensorsHeader(Buffer.concat(parts), sizeBytes);
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  return [...summary.inputs, summary.labels].map((t) => {
    const info = byName.get(t.name)!;
    return { ...t, offsetBytes: header.dataStartBytes + info.dataOffsets[0], sizeBytes: info.dataOffsets[1] - info.dataOffsets[0] };
  });
}
