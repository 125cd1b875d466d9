// The entry of a disposable child process that is the first to hand an uploaded archive to libtorch
// (src/artifacts/sandbox.ts starts it under prlimit). It is, besides the pool workers, the only place
// that calls heavy addon functions: whatever libtorch does with a hostile file (crash, hang, eat
// memory, run its code) happens here, to a process that holds nothing but that file.
//
// Protocol (see sandbox.ts, which owns both ends):
//   stdin: u32le n, n bytes of JSON { mode: 'inspect' | 'extract', maxBytes?, byteLength }, then
//          byteLength bytes of the archive.
//   fd 3:  u32le n, n bytes of JSON, then a payload:
//          { ok: true, value: SandboxInspection }                                   (inspect)
//          { ok: true, tensors: [{ name, dtype, shape, byteLength }], payloadBytes } (extract; the
//            tensors' bytes follow, concatenated in order)
//          { ok: false, error: { code, message } }                                  (a native error)
// The result goes to fd 3, never stdout: a model's prim::Print writes to stdout, and the parent
// discards stdout and stderr. Exit status 0 after a complete result; anything else is a failure.
import { closeSync, writeSync } from 'node:fs';
import { extractTensors, inspectModel, NativeError, setThreads } from '../native.js';
import { analyseBatchIndependence } from './batch-analysis.js';
import type { SandboxInspection } from './sandbox.js';

const RESULT_FD = 3;
const HEADER_BYTES = 4;
/** Request JSON is a few dozen bytes; anything larger is not from our parent. */
const MAX_REQUEST_JSON_BYTES = 64 * 1024;

interface Request {
  mode: 'inspect' | 'extract';
  maxBytes?: number;
  byteLength: number;
}

/** Exit statuses for failures outside libtorch (the parent reports them as a failed load). */
const EXIT_BAD_REQUEST = 64;
const EXIT_WRITE_FAILED = 74;

/**
 * Reads the request: the JSON header, then the archive straight into one buffer of the announced
 * size (a dataset may be gigabytes; chunks plus a concatenated copy would double the memory).
 * Undefined when the input is not a well-formed request.
 */
async function readRequest(): Promise<{ request: Request; bytes: Buffer } | undefined> {
  let head = Buffer.alloc(0);
  let request: Request | undefined;
  let bytes: Buffer | undefined;
  let filled = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    let rest = chunk;
    if (!request) {
      head = Buffer.concat([head, rest]);
      if (head.length < HEADER_BYTES) continue;
      const jsonBytes = head.readUInt32LE(0);
      if (jsonBytes > MAX_REQUEST_JSON_BYTES) return undefined;
      if (head.length < HEADER_BYTES + jsonBytes) continue;
      request = parseRequest(head.subarray(HEADER_BYTES, HEADER_BYTES + jsonBytes));
      if (!request) return undefined;
      bytes = Buffer.allocUnsafeSlow(request.byteLength);
      rest = head.subarray(HEADER_BYTES + jsonBytes);
      head = Buffer.alloc(0);
    }
    if (filled + rest.length > bytes!.length) return undefined;
    rest.copy(bytes!, filled);
    filled += rest.length;
  }
  return request && filled === bytes!.length ? { request, bytes: bytes! } : undefined;
}

function parseRequest(json: Buffer): Request | undefined {
  let request: Partial<Request>;
  try {
    request = JSON.parse(json.toString('utf8')) as Partial<Request>;
  } catch {
    return undefined;
  }
  if (request.mode !== 'inspect' && request.mode !== 'extract') return undefined;
  if (!Number.isSafeInteger(request.byteLength) || request.byteLength! < 0) return undefined;
  return request as Request;
}

function frame(header: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(HEADER_BYTES);
  prefix.writeUInt32LE(json.length, 0);
  return Buffer.concat([prefix, json]);
}

// fd 3 is a socket the parent created; it is blocking in the child, but a write may still be
// partial, and EAGAIN is retried after a short wait rather than lost.
const pause = new Int32Array(new SharedArrayBuffer(4));
function writeAll(data: Uint8Array): void {
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(RESULT_FD, data, offset, data.length - offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      Atomics.wait(pause, 0, 0, 5);
    }
  }
}

function run(request: Request, bytes: Buffer): Uint8Array[] {
  try {
    if (request.mode === 'inspect') {
      // The batch-independence analysis runs here too: it is pure TypeScript, but it takes tens of
      // milliseconds per model (more for deep transformers), which the server's event loop should not.
      const inspection = inspectModel(bytes);
      const batchAnalysis = inspection.forward ? analyseBatchIndependence(inspection.forward.graph) : null;
      return [frame({ ok: true, value: { ...inspection, batchAnalysis } satisfies SandboxInspection })];
    }
    const tensors = extractTensors(bytes, request.maxBytes ?? 0);
    const payloadBytes = tensors.reduce((sum, tensor) => sum + tensor.data.length, 0);
    const header = {
      ok: true,
      payloadBytes,
      tensors: tensors.map(({ name, dtype, shape, data }) => ({ name, dtype, shape, byteLength: data.length })),
    };
    return [frame(header), ...tensors.map((tensor) => tensor.data)];
  } catch (error) {
    const code = error instanceof NativeError ? error.code : 'SANDBOX_CHILD_ERROR';
    const message = error instanceof Error ? error.message : String(error);
    return [frame({ ok: false, error: { code, message } })];
  }
}

async function main(): Promise<void> {
  const parsed = await readRequest();
  if (!parsed) process.exit(EXIT_BAD_REQUEST);
  // One libtorch thread: the child is one of possibly several, and a load does little compute.
  setThreads(1);
  const parts = run(parsed.request, parsed.bytes);
  try {
    for (const part of parts) writeAll(part);
    closeSync(RESULT_FD);
  } catch {
    process.exit(EXIT_WRITE_FAILED);
  }
  process.exit(0);
}

await main();
