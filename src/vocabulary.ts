// The closed vocabularies the HTTP API, the planner and the addon share: loss functions, optimizer
// types and tensor element types, each listed once here. The API's schemas, the TypeScript types and
// the messages are derived from these lists, and the addon reads the same names (its C++ parsers,
// core/dp/loss.cc and core/tensors.cc, are the other side of this contract), so a name cannot mean
// one thing on the wire and another in the trainer. Base layer: imports nothing.

/** Per-sample loss functions, by the names of torch.nn.functional (cross_entropy, nll_loss, …). */
export const LOSSES = ['cross_entropy', 'nll', 'mse', 'l1', 'bce_with_logits'] as const;
export type LossName = (typeof LOSSES)[number];

/** The losses whose labels are int64 class indices of shape [samples]; the others take float labels shaped as the output. */
export const CLASS_INDEX_LOSSES = ['cross_entropy', 'nll'] as const satisfies readonly LossName[];

/** The privacy accountants: Rényi DP (Mironov 2017) and privacy loss distributions (Koskela et al. 2020). */
export const ACCOUNTANTS = ['rdp', 'pld'] as const;
export type AccountantName = (typeof ACCOUNTANTS)[number];

/**
 * The accountant that calibrates σ when a request names none: PLD, the tighter of the two (at the
 * Fashion-MNIST recipe, q = 2048/60000, 1172 steps, δ = 1e-5, ε = 3, it gives σ ≈ 1.808 against RDP's
 * ≈ 1.929), so the same ε buys less noise. About a second of pool time per calibration.
 */
export const DEFAULT_ACCOUNTANT: AccountantName = 'pld';

/** torch.optim's SGD, Adam and AdamW. */
export const OPTIMIZERS = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerType = (typeof OPTIMIZERS)[number];

/**
 * Tensor element types, by their safetensors names: what datasets hold, what training and the
 * per-sample gradient engine take, and what the addon reports for parameters, buffers, extracted
 * tensors and predictions. The addon names a type outside this list by libtorch's own name
 * (c10::toString: "ComplexFloat", "QInt8", …).
 */
export const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
export type Dtype = (typeof DTYPES)[number];

/** Bytes per element of each dtype. */
export const dtypeSizeBytes: Readonly<Record<Dtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};
