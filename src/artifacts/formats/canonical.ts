// The canonical form every dataset is converted to, whatever format it was uploaded in: the named
// tensors `inputs.0` … `inputs.<k-1>` and `labels`, all with the sample count as first dimension,
// little-endian, each a contiguous byte range of one sealed blob, located by a DatasetLayout. For CSV
// and TorchScript uploads that blob is a converted safetensors file
// (https://github.com/huggingface/safetensors) whose `__metadata__` is `{"format": "bastion.dataset.v1"}`;
// a safetensors upload already holds the bytes in this form, so its layout points into the upload
// itself and nothing is written twice. Training reads only this form, so the upload formats are parsed
// in one place each and never again.
import type { Dtype } from '../../vocabulary.js';

export const CANONICAL_FORMAT = 'bastion.dataset.v1';

export interface TensorSummary {
  /** Canonical name: `inputs.<i>` or `labels`. */
  name: string;
  dtype: Dtype;
  /** Full shape; shape[0] is the sample count. */
  shape: number[];
}

/** What the dataset check found; stored with the dataset and returned by the API. */
export interface DatasetSummary {
  /** Number of samples (first dimension shared by every tensor), ≥ 1. */
  sampleCount: number;
  /** Feature tensors, in canonical order. */
  inputs: TensorSummary[];
  labels: TensorSummary;
  /**
   * Distinct label values, ascending, when labels are integers (or bool: class indices in
   * [0, MAX_CLASS_INDEX]) and there are at most MAX_LABEL_CLASSES of them; null for float labels
   * (regression) or more classes.
   */
  labelClasses: number[] | null;
}

export const MAX_LABEL_CLASSES = 10_000;

/**
 * The largest class index an integer (or bool) label may hold: 2^24 − 1 = 16 777 215. Integer labels
 * are class indices: the losses that take them (cross_entropy, nll) read the label's logit from a
 * model output of one logit per class, so a negative label, or one past every output, fails every
 * loss, and the dataset could only fail at training. 2^24 classes already need 64 MiB of float32
 * logits per sample, beyond any model trained here; every index up to 2^24 is exact in float32 and in
 * a JSON number, whereas int64 labels beyond 2^53 cannot even be represented in JSON or a double.
 * Float labels (regression targets) are not class indices and have no such bound.
 */
export const MAX_CLASS_INDEX = 2 ** 24 - 1;

/** The rule every integer label must meet, as refusals state it. */
export const CLASS_INDEX_RULE = `integer labels must be class indices from 0 to ${MAX_CLASS_INDEX}`;

/**
 * Why the integer `label` (bigint for int64) is not a class index, as refusals name it ("a negative
 * label", "a label above 16777215"); null when it is an integer in [0, MAX_CLASS_INDEX]. Every
 * dataset format applies this one rule to every integer or bool label element, before anything
 * (class counting, conversion to a number) is derived from the labels.
 */
export function classIndexProblem(label: number | bigint): string | null {
  if (label < 0) return 'a negative label';
  if (label > MAX_CLASS_INDEX) return `a label above ${MAX_CLASS_INDEX}`;
  return null;
}

/** Where one canonical tensor's bytes are: a range of a blob's plaintext. */
export interface TensorLocation extends TensorSummary {
  /** Byte offset of the first element in the blob's plaintext. */
  offsetBytes: number;
  /** numel × dtype size. */
  sizeBytes: number;
}

/** Where a dataset's canonical tensors are. */
export interface DatasetLayout {
  /** The blob that holds them: the upload itself (safetensors) or its conversion. */
  blob: 'dataset' | 'dataset-tensors';
  /** Feature tensors in canonical order, then labels. */
  tensors: TensorLocation[];
}

/** The canonical name of the i-th feature tensor. */
export function inputName(index: number): string {
  return `inputs.${index}`;
}

/** The canonical name of the label tensor. */
export const LABELS_NAME = 'labels';

/**
 * Where a converter writes the canonical safetensors bytes, in order (in production a sealed-blob
 * writer). Converters await each write before producing the next chunk and never modify a chunk after
 * handing it over; a chunk may be a view into the source's own chunk. When a converter rejects, what
 * the sink received is a partial file that the caller must discard.
 */
export interface ByteSink {
  write(chunk: Uint8Array): Promise<void>;
}

/**
 * A short JSON-quoted form of `text` for error messages: at most `maxChars` characters (default 20)
 * followed by `…` when cut. Dataset rows are private, so messages quote at most this much of any value.
 */
export function quoteToken(text: string, maxChars = 20): string {
  const chars = Array.from(text);
  return JSON.stringify(chars.length > maxChars ? `${chars.slice(0, maxChars).join('')}…` : text);
}
