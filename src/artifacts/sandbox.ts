// Runs the first libtorch load of an uploaded archive in a disposable child process
// (sandbox-child.ts) and turns every way that can go wrong into a 422 for the uploader, never an
// outage: libtorch 1.13's loader can crash on crafted files, run code from them (__setstate__),
// loop, or allocate without bound, and none of that may reach the server process. This module is
// pure process management on the event loop; it never loads the addon.
//
// The child runs under prlimit: RLIMIT_DATA caps its heap (malloc and anonymous mappings, which is
// what libtorch's tensors and V8's heap use), RLIMIT_FSIZE = 0 makes every write to a file fail
// with EFBIG (node ignores SIGXFSZ; a file may still be created empty, which is why archives with
// __setstate__ are refused before they get here), RLIMIT_CORE = 0 keeps a crash from dumping the
// uploaded data to disk. Its environment holds no secrets (no BASTION_* settings, no
// tokens), its stdout and stderr are discarded (a model's prim::Print writes there), and it is
// killed with SIGKILL after timeoutMs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { BastionError } from '../errors.js';
import type { ExtractedTensor, ModelInspection } from '../native.js';
import type { BatchAnalysis } from './batch-analysis.js';

/** What an inspection in the sandbox returns: libtorch's inspection and the batch analysis of its forward graph. */
export type SandboxInspection = ModelInspection & { batchAnalysis: BatchAnalysis | null };

/** What the child is asked to do with the archive. */
export type SandboxRequest =
  | { mode: 'inspect' }
  /** maxBytes: cap on the tensors' total size, an integer ≥ 0. */
  | { mode: 'extract'; maxBytes: number };

export interface SandboxOptions {
  /** Wall-clock limit in ms, ≥ 1; the child is killed with SIGKILL when it is reached. */
  timeoutMs: number;
  /** RLIMIT_DATA of the child in bytes; DEFAULT_SANDBOX_MEMORY_BYTES is what a model needs. */
  memoryBytes: number;
  /** Error code for everything the file causes (default UNPROCESSABLE_MODEL). */
  errorCode?: 'UNPROCESSABLE_MODEL' | 'UNPROCESSABLE_DATASET';
  /** The script the child runs instead of sandbox-child (tests: children that crash or hang). */
  childScript?: string;
}

/**
 * Defaults, measured with node 20.20 + Debian's libtorch 1.13.1 (2 vCPUs): the child that loads
 * the addon and inspects the reference MNIST CNN and transformers needs a data limit of 192 MiB
 * under plain node (256 MiB under tsx); at 160 MiB it aborts or hangs (the timeout ends it), below
 * that node or libtorch fails to start (exit status 1, SIGABRT). 2 GiB leaves room for models of a
 * few hundred MB. Extraction peaks at about 3× the archive plus 200 MiB (the archive in JS, its copy
 * in libtorch's reader, the loaded tensors, their contiguous copies): a 200 MB dataset needed
 * 800 MiB. A load takes 0.4–0.6 s, most of it starting node and libtorch.
 */
export const DEFAULT_SANDBOX_MEMORY_BYTES = 2 * 1024 ** 3;
export const DEFAULT_SANDBOX_TIMEOUT_MS = 60_000;

export const PRLIMIT_PATH = '/usr/bin/prlimit';

/**
 * At most one child per core at a time: each may use memoryBytes, and uploads beyond that wait their
 * turn rather than multiplying the server's memory use.
 */
const children = pLimit(Math.max(1, os.availableParallelism()));

/** JSON of the child's result frame: larger than any inspection, which lists each node kind once. */
const MAX_RESULT_JSON_BYTES = 64 * 1024 ** 2;
const HEADER_BYTES = 4;

// Under tsx (tests, development) this file is src/artifacts/sandbox.ts and the child is
// sandbox-child.ts; after `tsc` both are .js in dist/ (the same trick as workers/pool.ts).
const defaultChildScript = fileURLToPath(new URL(`./sandbox-child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

/**
 * Loads `bytes` in a disposable child and inspects it, or copies its tensors out. The bytes are
 * only read. Throws BastionError(options.errorCode) when the file makes libtorch fail, crash, run
 * past timeoutMs or past memoryBytes; BastionError INTERNAL when the sandbox itself cannot run
 * (prlimit missing, the child refusing our own request).
 */
export function runSandboxed(request: { mode: 'inspect' }, bytes: Uint8Array, options: SandboxOptions): Promise<SandboxInspection>;
export function runSandboxed(
  request: { mode: 'extract'; maxBytes: number },
  bytes: Uint8Array,
  options: SandboxOptions,
): Promise<ExtractedTensor[]>;
export function runSandboxed(
  request: SandboxRequest,
  bytes: Uint8Array,
  options: SandboxOptions,
): Promise<SandboxInspection | ExtractedTensor[]>;
export async function runSandboxed(
  request: SandboxRequest,
  bytes: Uint8Array,
  options: SandboxOptions,
): Promise<SandboxInspection | ExtractedTensor[]> {
  const errorCode = options.errorCode ?? 'UNPROCESSABLE_MODEL';
  checkOptions(request, options);
  const outcome = await children(() => runChild(request, bytes, options));
  const failure = (reason: string): BastionError => new BastionError(errorCode, reason);

  if (outcome.timedOut) {
    throw failure(`Loading the file took longer than ${formatSeconds(options.timeoutMs)}`);
  }
  if (outcome.resultTooLarge) throw failure('Loading the file produced a result larger than the sandbox accepts');
  if (outcome.signal) {
    if (outcome.signal === 'SIGXFSZ') throw failure("Loading the file tried to write to the server's disk (SIGXFSZ)");
    throw failure(`libtorch crashed while loading the file (${outcome.signal})`);
  }
  if (outcome.exitCode !== 0) {
    throw failure(`The process loading the file exited with status ${outcome.exitCode} (out of memory or crashed)`);
  }
  const result = decodeResult(request, outcome.result);
  if (!result) throw failure('The process loading the file returned no usable result');
  if ('error' in result) throw nativeFailure(result.error, errorCode, options.memoryBytes);
  return result.value;
}

function checkOptions(request: SandboxRequest, options: SandboxOptions): void {
  const bad = (what: string): never => {
    throw new BastionError('INTERNAL', `runSandboxed: ${what}`);
  };
  if (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs < 1) bad(`timeoutMs must be an integer ≥ 1, got ${options.timeoutMs}`);
  if (!Number.isSafeInteger(options.memoryBytes) || options.memoryBytes < 1)
    bad(`memoryBytes must be an integer ≥ 1, got ${options.memoryBytes}`);
  if (request.mode === 'extract' && (!Number.isSafeInteger(request.maxBytes) || request.maxBytes < 0)) {
    bad(`maxBytes must be an integer ≥ 0, got ${request.maxBytes}`);
  }
  if (!existsSync(PRLIMIT_PATH)) {
    bad(`${PRLIMIT_PATH} does not exist; install util-linux, which the sandbox needs to limit memory`);
  }
}

interface ChildOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  resultTooLarge: boolean;
  /** The frame, when the child wrote a complete, parseable one. */
  result: { header: unknown; payload: Buffer } | undefined;
}

/**
 * Reassembles the child's result frame as it streams in: the JSON header (at most
 * MAX_RESULT_JSON_BYTES), then a payload copied straight into one buffer of the size the header
 * announces (at most maxPayloadBytes), so a large dataset is held once, not chunked and then
 * concatenated.
 */
class ResultCollector {
  private head: Buffer[] = [];
  private headBytes = 0;
  private header: unknown;
  private headerDone = false;
  private payload: Buffer | undefined;
  private payloadFilled = 0;
  private malformed = false;

  constructor(private readonly maxPayloadBytes: number) {}

  /** False when the child sends more than the limits allow (the caller then kills it). */
  push(chunk: Buffer): boolean {
    if (this.headerDone) return this.fill(chunk);
    this.head.push(chunk);
    this.headBytes += chunk.length;
    if (this.headBytes < HEADER_BYTES) return true;
    const head = Buffer.concat(this.head);
    const jsonBytes = head.readUInt32LE(0);
    if (jsonBytes > MAX_RESULT_JSON_BYTES) return false;
    if (head.length < HEADER_BYTES + jsonBytes) {
      this.head = [head];
      return true;
    }
    this.head = [];
    this.headerDone = true;
    try {
      this.header = JSON.parse(head.subarray(HEADER_BYTES, HEADER_BYTES + jsonBytes).toString('utf8'));
    } catch {
      this.malformed = true;
    }
    const announced = isRecord(this.header) ? this.header.payloadBytes : 0;
    const payloadBytes = announced === undefined ? 0 : announced;
    if (!isCount(payloadBytes)) {
      this.malformed = true;
    } else if (payloadBytes > this.maxPayloadBytes) {
      return false;
    } else {
      this.payload = Buffer.allocUnsafeSlow(payloadBytes);
    }
    return this.fill(head.subarray(HEADER_BYTES + jsonBytes));
  }

  finish(): { header: unknown; payload: Buffer } | undefined {
    if (!this.headerDone || this.malformed || !this.payload || this.payloadFilled !== this.payload.length) return undefined;
    return { header: this.header, payload: this.payload };
  }

  private fill(chunk: Buffer): boolean {
    if (chunk.length === 0 || this.malformed) return true;
    if (!this.payload || this.payloadFilled + chunk.length > this.payload.length) return false;
    chunk.copy(this.payload, this.payloadFilled);
    this.payloadFilled += chunk.length;
    return true;
  }
}

/**
 * The parent's module-loader flags (--import, --require, --loader, --conditions and their values),
 * so that tsx reaches the child under tests; nothing else: --eval, --test, --inspect and the like
 * would make the child run something other than its script.
 */
function childExecArgv(): string[] {
  const withValue = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader', '--conditions', '-C']);
  const kept: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i]!;
    const name = flag.split('=', 1)[0]!;
    if (!withValue.has(name)) continue;
    if (flag.includes('=')) {
      kept.push(flag);
    } else if (i + 1 < argv.length) {
      kept.push(flag, argv[i + 1]!);
      i += 1;
    }
  }
  return kept;
}

/**
 * What the child may see of the environment: nothing of the server's configuration. Library search
 * paths stay, as libtorch may be found through them.
 */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: '/usr/bin:/bin',
    OPENBLAS_NUM_THREADS: '1',
    OMP_NUM_THREADS: '1',
    // tsx (tests only) would otherwise write its transform cache, which RLIMIT_FSIZE = 0 forbids.
    TSX_DISABLE_CACHE: '1',
  };
  if (process.env.LD_LIBRARY_PATH) env.LD_LIBRARY_PATH = process.env.LD_LIBRARY_PATH;
  return env;
}

function runChild(request: SandboxRequest, bytes: Uint8Array, options: SandboxOptions): Promise<ChildOutcome> {
  const script = options.childScript ?? defaultChildScript;
  const limits = [`--data=${options.memoryBytes}`, '--fsize=0', '--core=0'];
  const child = spawn(PRLIMIT_PATH, [...limits, '--', process.execPath, ...childExecArgv(), script], {
    stdio: ['pipe', 'ignore', 'ignore', 'pipe'],
    env: childEnv(),
  });

  return new Promise((resolve, reject) => {
    const collector = new ResultCollector(request.mode === 'extract' ? request.maxBytes : 0);
    let timedOut = false;
    let resultTooLarge = false;
    let spawnError: Error | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);

    child.on('error', (error) => {
      spawnError = error; // 'close' follows
    });
    const result = child.stdio[3] as Readable;
    result.on('data', (chunk: Buffer) => {
      if (resultTooLarge || collector.push(chunk)) return;
      resultTooLarge = true;
      child.kill('SIGKILL');
    });
    result.on('error', () => undefined); // a killed child resets the socket; 'close' reports it

    // The child may die before reading everything (EPIPE); its exit status tells why.
    const stdin = child.stdio[0] as Writable; // 'pipe' above, so never null
    stdin.on('error', () => undefined);
    const json = Buffer.from(JSON.stringify({ ...request, byteLength: bytes.length }), 'utf8');
    const prefix = Buffer.alloc(HEADER_BYTES);
    prefix.writeUInt32LE(json.length, 0);
    stdin.write(prefix);
    stdin.write(json);
    stdin.end(bytes);

    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      if (spawnError && exitCode === null && signal === null) {
        reject(new BastionError('INTERNAL', `Cannot start the sandbox process: ${spawnError.message}`, {}, { cause: spawnError }));
        return;
      }
      resolve({ exitCode, signal, timedOut, resultTooLarge, result: collector.finish() });
    });
  });
}

type Decoded = { value: SandboxInspection | ExtractedTensor[] } | { error: { code: string; message: string } };

/** The child's result, or undefined when its frame is not one (truncated, garbled, wrong shape). */
function decodeResult(request: SandboxRequest, frame: ChildOutcome['result']): Decoded | undefined {
  if (!frame || !isRecord(frame.header)) return undefined;
  const { header, payload } = frame;
  if (header.ok === false) {
    const error = header.error;
    if (!isRecord(error) || typeof error.code !== 'string' || typeof error.message !== 'string') return undefined;
    return payload.length === 0 ? { error: { code: error.code, message: error.message } } : undefined;
  }
  if (header.ok !== true) return undefined;
  if (request.mode === 'inspect') {
    return payload.length === 0 && isSandboxInspection(header.value) ? { value: header.value } : undefined;
  }
  const tensors = decodeTensors(header, payload);
  return tensors ? { value: tensors } : undefined;
}

function decodeTensors(header: Record<string, unknown>, payload: Buffer): ExtractedTensor[] | undefined {
  const entries = header.tensors;
  if (!Array.isArray(entries) || header.payloadBytes !== payload.length) return undefined;
  const tensors: ExtractedTensor[] = [];
  let offset = 0;
  for (const entry of entries as unknown[]) {
    if (!isRecord(entry) || typeof entry.name !== 'string' || typeof entry.dtype !== 'string') return undefined;
    if (!isShape(entry.shape) || !isCount(entry.byteLength) || offset + entry.byteLength > payload.length) return undefined;
    tensors.push({ name: entry.name, dtype: entry.dtype, shape: entry.shape, data: payload.subarray(offset, offset + entry.byteLength) });
    offset += entry.byteLength;
  }
  return offset === payload.length ? tensors : undefined;
}

/** The first line of a native message: libtorch appends source excerpts and backtraces. */
function firstLine(message: string): string {
  return message.trim().split('\n')[0]!.trim();
}

function nativeFailure(
  error: { code: string; message: string },
  errorCode: NonNullable<SandboxOptions['errorCode']>,
  memoryBytes: number,
): BastionError {
  switch (error.code) {
    case 'MODEL_LOAD_FAILED':
    case 'TORCH_ERROR':
    case 'NATIVE_ERROR':
      // An allocation libtorch's loader could not make is the memory limit, not a broken file.
      if (/DefaultCPUAllocator: can't allocate memory/.test(error.message)) return outOfMemory(errorCode, memoryBytes);
      return new BastionError(errorCode, firstLine(error.message));
    case 'OUT_OF_MEMORY':
      return outOfMemory(errorCode, memoryBytes);
    default:
      // INVALID_ARGUMENT, ADDON_LOAD_FAILED, SANDBOX_CHILD_ERROR: our own fault, not the file's.
      return new BastionError('INTERNAL', `The sandbox failed (${error.code}): ${firstLine(error.message)}`);
  }
}

function outOfMemory(errorCode: NonNullable<SandboxOptions['errorCode']>, memoryBytes: number): BastionError {
  return new BastionError(errorCode, `Loading the file needs more than the ${formatMebibytes(memoryBytes)} of memory allowed`);
}

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

function formatMebibytes(bytes: number): string {
  return `${Math.round(bytes / 1024 ** 2)} MiB`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every(isCount);
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function isTensorInfo(value: unknown): boolean {
  return isRecord(value) && typeof value.name === 'string' && typeof value.dtype === 'string' && isShape(value.shape);
}

/** The shape of an inspection and its batch analysis, checked as far as the policy reads them. */
function isSandboxInspection(value: unknown): value is SandboxInspection {
  if (!isRecord(value) || !isModelInspection(value)) return false;
  const analysis = (value as Record<string, unknown>).batchAnalysis;
  if (analysis === null) return value.forward === null;
  if (!isRecord(analysis) || !isCount(analysis.inputs) || !isRecord(analysis.ranks)) return false;
  return Object.values(analysis.ranks).every(
    (problems) =>
      Array.isArray(problems) &&
      problems.every(
        (p) =>
          isRecord(p) &&
          typeof p.operator === 'string' &&
          typeof p.location === 'string' &&
          typeof p.message === 'string' &&
          (p.rule === 'batch-mixing' || p.rule === 'data-control-flow'),
      ),
  );
}

/** The shape of an inspection, checked as far as the policy reads it. */
function isModelInspection(value: unknown): value is ModelInspection {
  if (!isRecord(value) || !isStrings(value.methods) || typeof value.training !== 'boolean') return false;
  if (
    !Array.isArray(value.parameters) ||
    !value.parameters.every(
      (p) =>
        isTensorInfo(p) &&
        typeof (p as Record<string, unknown>).requiresGrad === 'boolean' &&
        typeof (p as Record<string, unknown>).contiguous === 'boolean',
    )
  ) {
    return false;
  }
  if (!Array.isArray(value.buffers) || !value.buffers.every(isTensorInfo)) return false;
  const forward = value.forward;
  if (forward === null) return true;
  if (!isRecord(forward) || !isCount(forward.inputs) || typeof forward.batchNormTraining !== 'boolean' || typeof forward.graph !== 'string')
    return false;
  const constants = forward.tensorConstants;
  if (!isRecord(constants) || !isCount(constants.count) || !isCount(constants.elements)) return false;
  const operatorsOk =
    Array.isArray(forward.operators) &&
    forward.operators.every(
      (op) =>
        isRecord(op) &&
        typeof op.kind === 'string' &&
        isCount(op.count) &&
        isCount(op.unconditional) &&
        isCount(op.inTraining) &&
        isStrings(op.locations),
    );
  const mutationsOk =
    Array.isArray(forward.mutations) &&
    forward.mutations.every(
      (m) => isRecord(m) && typeof m.kind === 'string' && typeof m.attribute === 'string' && typeof m.location === 'string',
    );
  return operatorsOk && mutationsOk;
}
