// The one typed door into the libtorch addon (build/Release/bastion.node). It loads the addon on
// first use, so importing this module is cheap, and re-throws every native failure as a
// NativeError with a stable code and the caller's JS stack. Heavy functions (inspectModel,
// extractTensors and what follows) belong in pool workers or the disposable sandbox child, never
// on the event loop.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import bindings from 'bindings';
import type { Dtype, LossName, OptimizerType } from './vocabulary.js';

/** Stable codes of native failures; `code` of every NativeError. */
export const NativeErrorCode = {
  /** An argument has the wrong type or range (a bug in the caller). */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** The bytes are not a TorchScript archive libtorch can load (garbage, truncated, not TorchScript). */
  MODEL_LOAD_FAILED: 'MODEL_LOAD_FAILED',
  /** A training step met a NaN or infinite loss, gradient or parameter; the step was undone. */
  NON_FINITE: 'NON_FINITE',
  /** libtorch raised an error outside loading. */
  TORCH_ERROR: 'TORCH_ERROR',
  OUT_OF_MEMORY: 'OUT_OF_MEMORY',
  /** Any other C++ exception. */
  NATIVE_ERROR: 'NATIVE_ERROR',
  /** The addon itself could not be loaded (not built, libtorch missing, ABI mismatch). */
  ADDON_LOAD_FAILED: 'ADDON_LOAD_FAILED',
} as const;
export type NativeErrorCode = (typeof NativeErrorCode)[keyof typeof NativeErrorCode];

const codes: ReadonlySet<string> = new Set(Object.values(NativeErrorCode));

/** A failure inside the addon; `cause` is the original error thrown by the addon. */
export class NativeError extends Error {
  override readonly name = 'NativeError';
  readonly code: NativeErrorCode;

  constructor(code: NativeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** libtorch as this process sees it. */
export interface NativeVersion {
  /** TORCH_VERSION of the headers the addon was built with, e.g. "1.13.0". */
  torch: string;
  /** Whether the addon (and so libtorch) uses the C++11 std::string ABI. */
  cxx11Abi: boolean;
  /** at::get_num_threads() on the calling thread. */
  intraOpThreads: number;
  /** at::get_num_interop_threads(), process-wide. */
  interopThreads: number;
  /** openblas_get_config() when OpenBLAS is the loaded BLAS, else null. */
  blas: string | null;
  /** ATen's parallel backend: "OpenMP", "native" or "TBB". */
  parallelBackend: string;
}

/**
 * A dtype by its safetensors name (vocabulary.ts); a type outside that list by libtorch's own name
 * (c10::toString, e.g. "ComplexFloat", "QInt8").
 */
export type TensorDtype = Dtype | (string & {});

export interface BufferInfo {
  /** Qualified name, e.g. "net.0.running_mean". */
  name: string;
  shape: number[];
  dtype: TensorDtype;
}

export interface ParameterInfo extends BufferInfo {
  requiresGrad: boolean;
  /** Dense, with the contiguous strides of its shape (no zero, overlapping or permuted strides). */
  contiguous: boolean;
}

/** One node kind of the inlined forward graph. */
export interface OperatorUse {
  /** Node kind, e.g. "aten::conv2d" or "prim::Constant". */
  kind: string;
  /** Nodes of this kind, nodes in prim::If/prim::Loop blocks included; ≥ 1. */
  count: number;
  /** Of those, the nodes on the graph's top-level block, which run on every call; 0..count. */
  unconditional: number;
  /**
   * Of those, the nodes left once the branches that cannot run in DP training (training mode, autograd
   * on, as the per-sample gradient engine resolves them) are removed and what they prove constant is
   * folded; 0..count.
   */
  inTraining: number;
  /**
   * Up to 3 distinct places in the archive's serialized source, in graph order, as "file:line",
   * e.g. "code/__torch__/torch/nn/modules/linear.py:12"; empty when libtorch knows none.
   */
  locations: string[];
}

/** A node of the forward graph that writes to the module's own state. */
export interface StateMutation {
  /** "prim::SetAttr", or an operator whose schema writes an argument, e.g. "aten::add_". */
  kind: string;
  /**
   * Qualified name of the parameter, buffer or attribute written, e.g. "bn.running_mean" (the
   * state the written value may alias; "self" for the module object itself).
   */
  attribute: string;
  /** "file:line" as in OperatorUse.locations, or "" when unknown. */
  location: string;
}

export interface ForwardInfo {
  /** Every node kind of the inlined forward graph, sorted by kind, each once. */
  operators: OperatorUse[];
  /** The inlined forward graph as JSON (format: src/artifacts/batch-analysis.ts), for the batch-independence analysis. */
  graph: string;
  /** Graph inputs, self excluded. */
  inputs: number;
  /**
   * Writes to module state, in graph order. In-place operators on fresh values (activations,
   * zeros_like, local lists) are not listed.
   */
  mutations: StateMutation[];
  /** Tensor-valued prim::Constant nodes (torch.jit.freeze turns weights into these). */
  tensorConstants: { count: number; elements: number };
  /**
   * Whether a batch_norm-family node's `training` input is not the constant false (scripted
   * BatchNorm reads self.training, so it is true for them), or an instance_norm with running
   * statistics may use batch statistics: such nodes mix samples and write the batch into buffers.
   */
  batchNormTraining: boolean;
}

export interface ModelInspection {
  /** Names of the module's own methods, sorted. */
  methods: string[];
  /** named_parameters(recurse=true), i.e. PyTorch's parameters() order. */
  parameters: ParameterInfo[];
  /** named_buffers(recurse=true). */
  buffers: BufferInfo[];
  /** Analysis of the inlined forward (the only method a trainer calls); null when the module has none. */
  forward: ForwardInfo | null;
  training: boolean;
}

/** One parameter or buffer copied out of an archive by extractTensors. */
export interface ExtractedTensor {
  /** Qualified name, e.g. "samples_0". */
  name: string;
  dtype: TensorDtype;
  shape: number[];
  /** The elements, contiguous, row-major, little-endian; numel(shape) × element size bytes. */
  data: Buffer;
}

interface Addon {
  version(): NativeVersion;
  setThreads(intraOpThreads: number): void;
  noiseKeystream(key: Uint8Array, nonce: Uint8Array, bytes: number): Buffer | null;
  inspectModel(bytes: Uint8Array): ModelInspection;
  extractTensors(bytes: Uint8Array, maxBytes: number): ExtractedTensor[];
  // Per-sample gradient engine (see the section at the end of this file).
  gradientPlan(bytes: Uint8Array, inputs?: TensorData[]): ParameterPlan[];
  perSampleGradients(bytes: Uint8Array, inputs: TensorData[], labels: TensorData, loss: LossConfig, method: PerSampleMethod): FloatTensor[];
  clippedGradientSum(
    bytes: Uint8Array,
    inputs: TensorData[],
    labels: TensorData,
    loss: LossConfig,
    clip: ClipOptions,
    path?: ClipPath,
    padding?: number,
  ): ClippedGradientSum;
  Trainer: new (model: Uint8Array, data: TrainingData, config: TrainerConfig) => NativeTrainer;
}

// This file is src/native.ts (tsx) or dist/native.js (tsc): the repository root is one level up.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addonFile = path.join(repoRoot, 'build', 'Release', 'bastion.node');

// The exported function a call came through: stacks of re-thrown errors start at its caller.
type Caller = (...args: never[]) => unknown;

let addon: Addon | undefined;
let loadFailure: NativeError | undefined;

/**
 * Loads the addon now (it is otherwise loaded on first use). Throws NativeError ADDON_LOAD_FAILED
 * with the likely cause and fixes; the failure is remembered, as a process cannot retry dlopen usefully.
 */
export function loadNative(): void {
  getAddon(loadNative);
}

function getAddon(caller: Caller): Addon {
  if (addon) return addon;
  if (!loadFailure) {
    // OpenBLAS reads this when the addon's libraries load; its own threads on top of ATen's
    // oversubscribe the cores. Only the main thread's assignment reaches the real environment,
    // so the addon also calls openblas_set_num_threads(1) in setThreads().
    process.env.OPENBLAS_NUM_THREADS ??= '1';
    try {
      addon = bindings({ bindings: 'bastion.node', module_root: repoRoot }) as Addon;
      return addon;
    } catch (error) {
      loadFailure = new NativeError(NativeErrorCode.ADDON_LOAD_FAILED, explainLoadFailure(error), { cause: error });
    }
  }
  const error = new NativeError(loadFailure.code, loadFailure.message, { cause: loadFailure.cause });
  Error.captureStackTrace(error, caller);
  throw error;
}

function explainLoadFailure(error: unknown): string {
  const firstLine = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
  const built = existsSync(addonFile);
  const reason = built ? firstLine.replace(/[:.\s]+$/, '') : `${addonFile} does not exist`;
  const hints: string[] = [];
  if (!built) {
    hints.push('build it with `npm run build:addon`');
    hints.push('on a fresh machine run scripts/setup.sh first (it installs libtorch and builds the addon)');
  } else if (/undefined symbol/.test(reason)) {
    hints.push(
      'the addon was built against another libtorch or C++ ABI than the one loaded: rebuild with ' +
        '`npm run build:addon`, and check `node scripts/libtorch.mjs info` (LIBTORCH_DIR, LIBTORCH_CXX11_ABI)',
    );
  } else if (/cannot open shared object file/.test(reason)) {
    hints.push(
      'libtorch is not installed where the addon was built to find it: run scripts/setup.sh, or set ' +
        'LIBTORCH_DIR to the libtorch used for the build and rebuild with `npm run build:addon`',
    );
  } else if (/NODE_MODULE_VERSION|compiled against a different Node\.js version/.test(reason)) {
    hints.push('the addon was built for another Node.js version: rebuild with `npm run build:addon`');
  } else {
    hints.push('rebuild with `npm run build:addon`; on a fresh machine run scripts/setup.sh');
    hints.push('check LIBTORCH_DIR and the C++11 ABI with `node scripts/libtorch.mjs info`');
  }
  return `Cannot load the libtorch addon: ${reason}. Possible solutions: ${hints.join('; ')}.`;
}

// Runs one addon call; a native error becomes a NativeError whose stack starts at `caller`.
function call<T>(caller: Caller, run: (native: Addon) => T): T {
  const native = getAddon(caller);
  try {
    return run(native);
  } catch (cause) {
    const code = (cause as { code?: unknown } | null)?.code;
    const error = new NativeError(
      typeof code === 'string' && codes.has(code) ? (code as NativeErrorCode) : NativeErrorCode.NATIVE_ERROR,
      cause instanceof Error ? cause.message : String(cause),
      { cause },
    );
    Error.captureStackTrace(error, caller);
    throw error;
  }
}

/** libtorch version, ABI, thread counts and BLAS. Cheap; fine on the main thread. */
export function version(): NativeVersion {
  return call(version, (native) => native.version());
}

/**
 * Sets ATen's intra-op threads for the calling thread (an integer in 1..1024) and OpenBLAS's
 * threads to 1. Call once at the start of each pool worker, with the same value in every worker.
 * Never changes the inter-op pool.
 */
export function setThreads(intraOpThreads: number): void {
  call(setThreads, (native) => native.setThreads(intraOpThreads));
}

/**
 * The keystream that private training's noise and Poisson sampling draw on, for a given key and nonce
 * (16 bytes each): four AEGIS-128L streams (RFC 10032), lane i under the nonce with i XORed into its
 * last byte, interleaved 16 bytes at a time (z0 of lanes 0–3, then z1 of lanes 0–3, per 128 bytes),
 * from VAES or AES-NI as the CPU and BASTION_MAX_CPU_ISA allow. `bytes` must be a multiple of 128. Null
 * where the generator runs OpenSSL's AES-128-CTR instead (no AES-NI, or BASTION_MAX_CPU_ISA=baseline).
 * For tests.
 */
export function noiseKeystream(key: Uint8Array, nonce: Uint8Array, bytes: number): Buffer | null {
  return call(noiseKeystream, (native) => native.noiseKeystream(key, nonce, bytes));
}

/**
 * Loads a TorchScript archive from memory on the CPU and describes it without running it. The
 * bytes are copied; the caller may reuse them after the call. Throws NativeError
 * MODEL_LOAD_FAILED for bytes that are not a loadable TorchScript archive.
 * libtorch's loader is not safe on hostile files: check archives in TypeScript first and call
 * this in a disposable process.
 */
export function inspectModel(bytes: Uint8Array): ModelInspection {
  return call(inspectModel, (native) => native.inspectModel(bytes));
}

/**
 * Loads a TorchScript archive like inspectModel and copies out every parameter, then every buffer
 * (recursively, PyTorch's order), e.g. the tensors of a BastionAI-style dataset module. maxBytes
 * (an integer in 0..Number.MAX_SAFE_INTEGER) caps the tensors' total size and is checked before anything
 * is copied. Throws NativeError MODEL_LOAD_FAILED when the archive does not load, a tensor is not a
 * dense CPU tensor (sparse, quantized, MKL-DNN) or addresses more than its storage, or the total
 * exceeds maxBytes; INVALID_ARGUMENT for a bad maxBytes. Same safety caveat as inspectModel.
 */
export function extractTensors(bytes: Uint8Array, maxBytes: number): ExtractedTensor[] {
  return call(extractTensors, (native) => native.extractTensors(bytes, maxBytes));
}

// ---------------------------------------------------------------------------------------------
// What the per-sample gradient engine and the trainer both take.

/** A tensor handed to the addon: raw little-endian bytes, row-major, the samples as first dimension. */
export interface TensorData {
  dtype: Dtype;
  shape: number[];
  /**
   * numel(shape) × element size bytes. Training tensors are borrowed, not copied (SharedArrayBuffer
   * views excepted): keep them unchanged while the trainer lives, and never transfer or resize their
   * ArrayBuffer (the trainer refuses every later call if one was). The engine's functions copy theirs.
   */
  data: Buffer | NodeJS.TypedArray;
}

/** The per-sample loss l_i; labels are int64 class indices for cross_entropy/nll, floats shaped as the output otherwise. */
export interface LossConfig {
  kind: LossName;
  /** cross_entropy only, in [0, 1); default 0. */
  labelSmoothing?: number;
}

// ---------------------------------------------------------------------------------------------
// Per-sample gradient engine (addon/src/binding/engine.cc, addon/src/core/dp/). Heavy: pool
// workers, the sandbox child and tests only. Each call loads the archive (same loader and checks as
// inspectModel) and builds the engine for it.

/** A float32 result tensor. */
export interface FloatTensor {
  /** Qualified parameter name, e.g. "net.0.weight". */
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * Per-sample clipping, factor min(1, C / (||g_i|| + 1e-6)). Flat: one norm over all parameters,
 * bound maxGradNorm (Infinity: no clipping). Per-layer: groups lists parameter indices (the order of
 * the model's trainable parameters), every parameter in exactly one group, with bounds[k] for group k.
 */
export interface ClipOptions {
  maxGradNorm: number;
  groups?: number[][];
  bounds?: number[];
}

/** How each trainable parameter's per-sample gradients are computed. */
export interface ParameterPlan {
  parameter: string;
  /** "linear", "conv1d", "conv2d", "embedding", "layer_norm", "group_norm", "a+b" for a tied parameter, or "fallback". */
  rule: string;
  /** Why the fallback (batch of one) is used, or what is special (tied parameters); "" otherwise. */
  reason: string;
}

/** 'engine': graph rules plus fallback; 'loop': autograd through forward on each sample alone (the reference). */
export type PerSampleMethod = 'engine' | 'loop';
/** 'auto' chooses per layer by cost; the others force a path where a rule has it (all give the same numbers). */
export type ClipPath = 'auto' | 'materialize' | 'ghost';

export interface ClippedGradientSum {
  /** Σ_i clip(g_i) per trainable parameter, shaped as the parameter. */
  grads: FloatTensor[];
  /** ||g_i|| before clipping, one per sample (over all parameters). */
  perSampleNorms: Float32Array;
  /** l_i, one per sample. */
  losses: Float32Array;
}

/**
 * Which rule covers each trainable parameter. With `inputs` (a batch of at least two), the
 * batch-layout check runs first, so layers whose tensors do not keep the batch first (as inside
 * nn.MultiheadAttention) show as "fallback". Throws MODEL_LOAD_FAILED or INVALID_ARGUMENT (no
 * forward, no trainable parameter, forward not returning one tensor).
 */
export function gradientPlan(bytes: Uint8Array, inputs?: TensorData[]): ParameterPlan[] {
  return call(gradientPlan, (native) => (inputs ? native.gradientPlan(bytes, inputs) : native.gradientPlan(bytes)));
}

/** Every per-sample gradient, [batch, ...shape] per trainable parameter. INVALID_ARGUMENT for bad labels or batch shapes. */
export function perSampleGradients(
  bytes: Uint8Array,
  inputs: TensorData[],
  labels: TensorData,
  loss: LossConfig,
  method: PerSampleMethod,
): FloatTensor[] {
  return call(perSampleGradients, (native) => native.perSampleGradients(bytes, inputs, labels, loss, method));
}

/**
 * Σ_i clip(g_i), the norms ||g_i|| and the losses l_i of one batch. With `padding`, its last rows are
 * copies that run but count for nothing (clip factor 0, no norm or loss returned), as the trainer pads
 * a private batch to a size seen before.
 */
export function clippedGradientSum(
  bytes: Uint8Array,
  inputs: TensorData[],
  labels: TensorData,
  loss: LossConfig,
  clip: ClipOptions,
  path: ClipPath = 'auto',
  padding = 0,
): ClippedGradientSum {
  return call(clippedGradientSum, (native) => native.clippedGradientSum(bytes, inputs, labels, loss, clip, path, padding));
}

// ---------------------------------------------------------------------------------------------
// Trainer: DP-SGD (and non-private) training of one TorchScript model on in-memory tensors.
// ---------------------------------------------------------------------------------------------

/** A model's inputs (forward(inputs[0], inputs[1], …)) and labels. */
export interface TrainingData {
  inputs: TensorData[];
  labels: TensorData;
}

/**
 * The optimizer as the API states it (schemas/trainings.ts), read by the addon under these
 * names: torch.optim.SGD, Adam or AdamW, with PyTorch's defaults. The settings of another type than
 * `type` are ignored (the planner refuses them).
 */
export interface OptimizerConfig {
  type: OptimizerType;
  learningRate: number;
  /** sgd; default 0. */
  momentum?: number;
  /** sgd; default 0. */
  dampening?: number;
  /** sgd; needs momentum > 0 and dampening 0. */
  nesterov?: boolean;
  /** Default 0, and 0.01 for adamw. */
  weightDecay?: number;
  /** adam, adamw: [β1, β2]; default [0.9, 0.999]. */
  betas?: [number, number];
  /** adam, adamw; default 1e-8. */
  eps?: number;
}

/** A per-layer clipping group: these trainable parameters are clipped together to maxGradNorm. */
export interface LayerClipBound {
  /** Qualified names as in Trainer.trainableParameters, e.g. "fc1.weight". */
  parameters: string[];
  maxGradNorm: number;
}

interface TrainerConfigBase {
  loss: LossConfig;
  optimizer: OptimizerConfig;
  /** Largest batch one forward sees (an integer ≥ 1); default: the whole logical batch. */
  maxPhysicalBatchSize?: number;
  /** L > 0: every step also returns clippedLossSum, Σ of its per-sample losses clamped to [0, L]. */
  lossBound?: number;
  /**
   * Pre-flight only: synthetic data (training/preflight.ts). A step or an evaluation throws at the first
   * failure of the model (INVALID_ARGUMENT with the model's own message) or non-finite loss or gradient
   * (NON_FINITE) instead of dropping the sample. Never on records: a record would then decide whether the
   * call fails and what its message says. Default false.
   */
  failFast?: boolean;
}

/**
 * DP-SGD: Poisson sampling with rate q, per-sample clipping to C, Gaussian noise N(0, σ²C²) per
 * coordinate, divided by the expected batch size q·N. With perLayer, every trainable parameter is in
 * exactly one group and C = sqrt(Σ_k C_k²) (Opacus's convention: the noise is σ·C on every coordinate).
 */
export interface PrivateTrainerConfig extends TrainerConfigBase {
  mode: 'private';
  /** q in (0, 1]. */
  sampleRate: number;
  /** σ ≥ 0. */
  noiseMultiplier: number;
  /** C > 0 (flat clipping); Infinity (no clipping) only with noiseMultiplier 0. Exclusive with perLayer. */
  maxGradNorm?: number;
  perLayer?: LayerClipBound[];
}

/** Plain minibatch training: shuffled batches of batchSize (the last of an epoch smaller), no clipping, no noise. */
export interface NonPrivateTrainerConfig extends TrainerConfigBase {
  mode: 'non-private';
  batchSize: number;
}

export type TrainerConfig = PrivateTrainerConfig | NonPrivateTrainerConfig;

/** Why a sample of a private step contributed nothing (its forward, loss or backward threw; l_i; ||g_i||). */
export const dropReasons = ['exception', 'nonFiniteLoss', 'nonFiniteGradient'] as const;
export type DropReason = (typeof dropReasons)[number];

export interface TrainingStep {
  /** 1-based number of the step just taken. */
  step: number;
  /** Samples in the logical batch (Poisson: random, may be 0: a noise-only step), dropped ones included. */
  samples: number;
  /**
   * Private training: the dataset indices (into the training data) of the samples whose contribution
   * the step dropped, by reason; empty arrays otherwise. Computed from the data: only counts per
   * dataset may leave the worker, and only for the datasets' owners (never the model's author, nor logs).
   */
  dropped: Record<DropReason, number[]>;
  /**
   * Σ of the batch's per-sample losses. NOT differentially private (no noise, depends on single
   * samples): never release it outside the enclave, nor put it in anything a client sees.
   */
  lossSum: number;
  /**
   * With config.lossBound L: Σ of the batch's per-sample losses clamped to [0, L], whose sensitivity
   * to one sample is L. Just as private as lossSum until noise is added to it.
   */
  clippedLossSum?: number;
  durationMs: number;
}

export interface Evaluation {
  samples: number;
  meanLoss: number;
  /** cross_entropy and nll: argmax accuracy; bce_with_logits: elementwise (logit > 0) accuracy; else null. */
  accuracy: number | null;
  /**
   * Samples whose forward or loss threw or whose loss is not finite: judged incorrect, adding 0 to the
   * loss. Computed from the data: for the dataset's owner only.
   */
  failed: number;
}

export interface TensorOutput {
  dtype: Dtype;
  shape: number[];
  /** Owned by the Buffer (a copy of the output). */
  data: Buffer;
}

export interface TrainerInfo {
  /** Steps taken (restored with state). */
  steps: number;
  /** Samples in the training data. */
  samples: number;
  /** Parameters that require grad, named_parameters() order. */
  trainableParameters: string[];
  /** How the DP engine computes each one's per-sample gradients (as gradientPlan, after the trainer's probe). */
  gradients: ParameterPlan[];
}

interface NativeTrainer {
  step(): TrainingStep;
  evaluate(data?: TrainingData): Evaluation;
  predict(inputs: TensorData[]): TensorOutput;
  state(): Buffer;
  restore(state: Uint8Array): void;
  exportModel(): Buffer;
  info(): TrainerInfo;
}

/**
 * One training job in one pool worker thread (heavy: never on the event loop). The model bytes
 * must have passed the upload checks. No method sets or reveals the noise or sampling keys: they are
 * drawn from the OS CSPRNG at creation and at every restore. create() checks the model on two
 * synthetic samples (zeros of the data's dtypes and shapes), never on a record. Failures are NativeErrors:
 * INVALID_ARGUMENT (config, tensors, label dtypes and shapes, output batch), MODEL_LOAD_FAILED,
 * NON_FINITE (a step met NaN/Inf and was undone: in private training only a non-finite noisy update,
 * since a failing sample is dropped instead, see TrainingStep.dropped), TORCH_ERROR.
 */
export class Trainer {
  readonly #native: NativeTrainer;

  private constructor(native: NativeTrainer) {
    this.#native = native;
  }

  /** Loads the model and wraps the data (borrowed: see TensorData.data); checks everything up to one forward. */
  static create(model: Uint8Array, data: TrainingData, config: TrainerConfig): Trainer {
    return new Trainer(call(Trainer.create, (native) => new native.Trainer(model, data, config)));
  }

  /** One logical step: sample, (clip, noise,) optimizer step. */
  step(): TrainingStep {
    return call(this.step, () => this.#native.step());
  }

  /** Mean loss and accuracy in eval mode without gradients, on data or (by default) the training data. */
  evaluate(data?: TrainingData): Evaluation {
    return call(this.evaluate, () => (data === undefined ? this.#native.evaluate() : this.#native.evaluate(data)));
  }

  /** The model's output on inputs in eval mode. */
  predict(inputs: TensorData[]): TensorOutput {
    return call(this.predict, () => this.#native.predict(inputs));
  }

  /** Parameters, optimizer state and step count, for restore() (a checkpoint: seal it). */
  state(): Buffer {
    return call(this.state, () => this.#native.state());
  }

  /** Loads a state() of a trainer of the same model, mode and optimizer; re-seeds the noise generator. */
  restore(state: Uint8Array): void {
    call(this.restore, () => this.#native.restore(state));
  }

  /** A TorchScript archive with the trained parameters and the original buffers, loadable by PyTorch. */
  exportModel(): Buffer {
    return call(this.exportModel, () => this.#native.exportModel());
  }

  info(): TrainerInfo {
    return call(this.info, () => this.#native.info());
  }
}
