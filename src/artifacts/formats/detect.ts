// Guessing a dataset upload's format from its first bytes, before any parser sees it. It protects one
// invariant: an answer is only a routing hint — each format's own parser still validates everything —
// and no prefix fits two answers (the zip magic read as a u64 is far above the safetensors header
// cap; both it and a capped safetensors length contain control bytes, which CSV text never does), so
// the order of the tests below never changes an answer.

import { MAX_HEADER_BYTES } from './safetensors.js';

export type DetectedDatasetFormat = 'torchscript' | 'safetensors' | 'csv';

/** How many leading bytes detectDatasetFormat looks at; more are ignored. */
export const DETECT_PREFIX_BYTES = 4096;

/** A byte that may appear in CSV text: printable ASCII, tab, CR, LF, or part of a UTF-8 sequence. */
function isTextByte(byte: number): boolean {
  return byte === 0x09 || byte === 0x0a || byte === 0x0d || (byte >= 0x20 && byte !== 0x7f);
}

/** Whether `bytes` decode as UTF-8, allowing a multi-byte character cut off at the very end. */
function isUtf8(bytes: Uint8Array): boolean {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    decoder.decode(bytes, { stream: true }); // a trailing partial sequence is held, not refused
    return true;
  } catch {
    return false;
  }
}

/**
 * The format the first bytes of an upload suggest (`prefix`: the first bytes of the file, at least a
 * few; only the first DETECT_PREFIX_BYTES are examined):
 * - `torchscript` for a zip archive (`PK\x03\x04`);
 * - `safetensors` for a u64 little-endian header length in 2…MAX_HEADER_BYTES followed by `{`;
 * - `csv` for UTF-8 text without control characters (a BOM allowed) whose first line holds a comma
 *   or a tab;
 * - null otherwise (including an empty prefix).
 */
export function detectDatasetFormat(prefix: Uint8Array): DetectedDatasetFormat | null {
  const head = prefix.subarray(0, DETECT_PREFIX_BYTES);
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'torchscript';
  if (head.length >= 9 && head[8] === 0x7b) {
    const length = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (length >= 2n && length <= BigInt(MAX_HEADER_BYTES)) return 'safetensors';
  }
  const hasBom = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf;
  const text = hasBom ? head.subarray(3) : head;
  if (text.length === 0 || !text.every(isTextByte) || !isUtf8(text)) return null;
  for (const byte of text) {
    if (byte === 0x2c || byte === 0x09) return 'csv';
    if (byte === 0x0a || byte === 0x0d) break;
  }
  return null;
}
