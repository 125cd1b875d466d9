// The check of a safetensors dataset while it is being uploaded. Its bytes already are the canonical
// tensors (a layout points into the upload), so once the upload has streamed through the check there
// is nothing left to read again: the disk writes a 1 GiB upload once, and no second pass reads it
// back. The check runs on the event loop beside the hashing and sealing of the same chunks: it costs
// less per byte than either (about 0.3 s of CPU per GiB, in slices of one chunk), and running it in a
// pool worker would pin that worker to the client's upload speed for as long as the upload lasts.
import { PassThrough } from 'node:stream';
import type { ConvertOutput } from './convert.js';
import { DETECT_PREFIX_BYTES, detectDatasetFormat } from './formats/detect.js';
import { convertSafetensors } from './formats/safetensors.js';

export interface StreamCheck {
  /** Runs `source` through the check as it is consumed; yields the same chunks. */
  tap(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array>;
  /** The check's result once the source ended: null when the upload does not look like safetensors. */
  result(): Promise<ConvertOutput | null>;
}

/** Bytes buffered between the upload and the check before the upload waits for the check. */
const BUFFER_BYTES = 1024 * 1024;

export function createStreamCheck(): StreamCheck {
  let running: Promise<ConvertOutput> | null = null;
  let pipe: PassThrough | null = null;

  const start = (prefix: Uint8Array[]) => {
    const stream = new PassThrough({ highWaterMark: BUFFER_BYTES });
    pipe = stream;
    running = convertSafetensors(stream, null, { sizeBytes: null }).then((checked) => ({
      summary: checked.summary,
      layout: { blob: 'dataset' as const, tensors: checked.sourceTensors },
      privacyLimit: checked.extras.privacyLimit ?? null,
      converted: null,
    }));
    // A refusal is read through result(); until then it must not count as unhandled.
    running.catch(() => undefined);
    for (const chunk of prefix) stream.write(chunk);
  };
  const feed = async (chunk: Uint8Array) => {
    const stream = pipe;
    if (!stream || stream.destroyed) return; // no check, or it stopped (a refusal): the upload goes on
    if (!stream.write(chunk)) {
      await new Promise<void>((resolve) => {
        stream.once('drain', resolve);
        stream.once('close', resolve);
      });
    }
  };

  return {
    async *tap(source) {
      const prefix: Uint8Array[] = [];
      let prefixBytes = 0;
      let decided = false;
      const decide = () => {
        decided = true;
        if (detectDatasetFormat(Buffer.concat(prefix)) === 'safetensors') start(prefix);
      };
      try {
        for await (const chunk of source) {
          if (decided) {
            await feed(chunk);
          } else {
            prefix.push(chunk);
            prefixBytes += chunk.length;
            if (prefixBytes >= DETECT_PREFIX_BYTES) decide();
          }
          yield chunk;
        }
        if (!decided) decide();
        pipe?.end();
      } catch (err) {
        // The upload failed: stop the check too (it then sees a truncated stream).
        pipe?.destroy(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    },
    result: () => running ?? Promise.resolve(null),
  };
}
