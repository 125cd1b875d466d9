// Rényi differential privacy of the Gaussian and the Poisson-subsampled Gaussian mechanism, and its
// conversion to (ε, δ). Pure math: per-order RDP of one step (it composes by addition), and the tight
// RDP → (ε, δ) conversion. Invariant: every value returned is an upper bound on the true privacy loss
// at that order (fractional orders exact to the series' e^-30 stopping rule, never an under-estimate by
// more than that), and the ε returned is the minimum of valid bounds over the orders given.
import { logAdd, logErfc, logSub } from './gaussian.js';

/**
 * dp_accounting's `RdpAccountant` default orders (156): 1.1, 1.2, …, 10.9, 11, 12, …, 63, 128, 256,
 * 512, 1024. Written as integers over 10 so that the fractional orders are the doubles 1.1, 1.2, …
 * that dp_accounting uses (`1 + x / 10.0`).
 */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10.0),
  ...Array.from({ length: 53 }, (_, i) => 11 + i),
  128,
  256,
  512,
  1024,
]);

/** Opacus `RDPAccountant` default alphas (151): dp_accounting's without 11 and without 128 … 1024. */
export const OPACUS_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10.0),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
]);

/** Most terms of the fractional-order series before an order is reported as +∞ (dropped). */
const MAX_FRACTIONAL_TERMS = 100_000;

/**
 * log A_α for integer α ≥ 2: A_α = Σ_{i=0}^{α} C(α,i) (1-q)^{α-i} q^i exp((i² - i)/(2σ²)).
 * Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism",
 * Section 3.3 (integer α); summed in log space term by term, as Opacus and dp_accounting do.
 */
function logAInteger(sampleRate: number, noiseMultiplier: number, order: number): number {
  const logQ = Math.log(sampleRate);
  const log1MinusQ = Math.log(1 - sampleRate);
  const twoSigmaSq = 2 * noiseMultiplier * noiseMultiplier;
  let logA = -Infinity;
  let logBinom = 0; // log C(α, i), built up as Σ log((α - k + 1)/k)
  for (let i = 0; i <= order; i++) {
    if (i > 0) logBinom += Math.log((order - i + 1) / i);
    const term = logBinom + i * logQ + (order - i) * log1MinusQ + (i * i - i) / twoSigmaSq;
    logA = logAdd(logA, term);
  }
  return logA;
}

/**
 * log A_α for fractional α > 1, exactly: the two-sided series of Mironov, Talwar & Zhang 2019,
 * Section 3.3 (fractional α), split at z0 = σ² log(1/q - 1) + 1/2 and summed WITH the signs of the
 * generalised binomial coefficients C(α, i) (the series alternates for i > α). This is Opacus's and
 * TF-Privacy's `_compute_log_a_frac`, including its stopping rule (both terms below e^-30); it is not
 * dp_accounting ≥ 0.5's absolute-value variant, which is a looser upper bound. Returns +∞ when the
 * series does not settle within MAX_FRACTIONAL_TERMS terms or the signed partial sums cross zero
 * numerically (the order is then unusable, never silently under-estimated).
 */
function logAFractional(sampleRate: number, noiseMultiplier: number, order: number): number {
  const sigma = noiseMultiplier;
  const logQ = Math.log(sampleRate);
  const log1MinusQ = Math.log(1 - sampleRate);
  const twoSigmaSq = 2 * sigma * sigma;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  const z0 = sigma * sigma * Math.log(1 / sampleRate - 1) + 0.5;
  const logHalf = Math.log(0.5);
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  let logAbsBinom = 0; // log |C(α, i)|
  let binomPositive = true;
  for (let i = 0; i < MAX_FRACTIONAL_TERMS; i++) {
    if (i > 0) {
      const factor = (order - i + 1) / i;
      logAbsBinom += Math.log(Math.abs(factor));
      if (factor < 0) binomPositive = !binomPositive;
    }
    const j = order - i;
    const logT0 = logAbsBinom + i * logQ + j * log1MinusQ;
    const logT1 = logAbsBinom + j * logQ + i * log1MinusQ;
    const logE0 = logHalf + logErfc((i - z0) / sqrt2Sigma);
    const logE1 = logHalf + logErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) / twoSigmaSq + logE0;
    const logS1 = logT1 + (j * j - j) / twoSigmaSq + logE1;
    if (binomPositive) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
      if (Number.isNaN(logA0) || Number.isNaN(logA1)) return Infinity;
    }
    if (Math.max(logS0, logS1) < -30) return logAdd(logA0, logA1);
  }
  return Infinity;
}

/** The options of a Poisson-subsampled Gaussian step. */
export interface SampledGaussianOptions {
  /** q: probability that each record is in the batch, in [0, 1]. */
  sampleRate: number;
  /** σ: noise standard deviation over the L2 sensitivity (1), > 0. */
  noiseMultiplier: number;
  /** Rényi orders α > 1 at which to evaluate. */
  orders: readonly number[];
}

/**
 * Per-step RDP ε(α) of the Poisson-subsampled Gaussian mechanism (add/remove-one adjacency), at each
 * order: log(A_α)/(α - 1) (Mironov, Talwar & Zhang 2019, Theorem 11 with Section 3.3's A_α). q = 1
 * gives the plain Gaussian α/(2σ²); q = 0 gives 0. Integer orders use the finite binomial sum,
 * fractional orders the exact signed series. An entry is +∞ where the order is unusable.
 */
export function sampledGaussianRdp({ sampleRate, noiseMultiplier, orders }: SampledGaussianOptions): Float64Array {
  const out = new Float64Array(orders.length);
  for (let k = 0; k < orders.length; k++) {
    const order = orders[k]!;
    if (!(order > 1) || !Number.isFinite(order)) throw new RangeError(`RDP order must be a finite number > 1, got ${order}`);
    if (sampleRate === 0) out[k] = 0;
    else if (sampleRate === 1) out[k] = order / (2 * noiseMultiplier * noiseMultiplier);
    else if (Number.isInteger(order)) out[k] = logAInteger(sampleRate, noiseMultiplier, order) / (order - 1);
    else out[k] = logAFractional(sampleRate, noiseMultiplier, order) / (order - 1);
  }
  return out;
}

/**
 * Per-release RDP of the Gaussian mechanism with sensitivity 1: ε(α) = α/(2σ²)
 * (Mironov 2017, "Rényi Differential Privacy", Proposition 7 / Table II).
 */
export function gaussianRdp({ noiseMultiplier, orders }: { noiseMultiplier: number; orders: readonly number[] }): Float64Array {
  return Float64Array.from(orders, (order) => order / (2 * noiseMultiplier * noiseMultiplier));
}

/**
 * An upper bound on the RDP curve of the discrete Gaussian mechanism (integer statistic of sensitivity
 * Δ plus N_Z(0, σ²)): D_α(N_Z(0,σ²) ‖ N_Z(Δ,σ²)) ≤ αΔ²/(2σ²), the continuous Gaussian's (Canonne, Kamath
 * & Steinke 2020, Proposition 14 — ½(Δ/σ)²-concentrated DP). Rounded up by 4 ulps so it never under-states.
 */
export function discreteGaussianRdp({
  sigmaSquared,
  sensitivity,
  orders,
}: {
  sigmaSquared: number;
  sensitivity: number;
  orders: readonly number[];
}): Float64Array {
  return Float64Array.from(orders, (order) => ((order * sensitivity * sensitivity) / (2 * sigmaSquared)) * (1 + 2 ** -50));
}

/** An (ε or δ) bound and the order where it was attained. */
export interface RdpConversion {
  /** ε (natural log) for rdpToEpsilon, δ for rdpToDelta. */
  value: number;
  /** The order α at which the minimum was attained (NaN when no order is usable). */
  order: number;
}

/**
 * ε for a target δ from composed RDP curve values:
 * ε = min_α [ RDP(α) + log(1 - 1/α) - (log δ + log α)/(α - 1) ]
 * (Balle, Barthe, Gaboardi, Hsu & Sato 2020, "Hypothesis testing interpretations and Rényi DP",
 * Theorem 21; Canonne, Kamath & Steinke 2020, "The Discrete Gaussian for DP", Proposition 12).
 * As dp_accounting's `compute_epsilon`: orders ≤ 1.01 are ignored (the bound is unstable there), an
 * order whose RDP(α) < -log(1 - δ²) gives ε = 0 (KL bound δ ≤ √(1 - e^{-RDP})), and ε is floored at 0.
 * δ in (0, 1).
 */
export function rdpToEpsilon({ orders, rdp, delta }: { orders: readonly number[]; rdp: ArrayLike<number>; delta: number }): RdpConversion {
  let best = Infinity;
  let bestOrder = NaN;
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k]!;
    const r = rdp[k]!;
    let epsilon: number;
    if (Number.isNaN(r) || r === Infinity) continue;
    if (delta * delta + Math.expm1(-r) > 0) epsilon = 0;
    else if (a > 1.01) epsilon = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    else continue;
    if (epsilon < best) {
      best = epsilon;
      bestOrder = a;
    }
  }
  return { value: Math.max(0, best), order: bestOrder };
}

/**
 * δ for a target ε from composed RDP curve values: the smallest, over α, of
 * min( √(1 - e^{-RDP(α)}) (KL bound), exp((α - 1)(RDP(α) - ε + log(1 - 1/α)) - log α) )
 * (Canonne, Kamath & Steinke 2020, Proposition 12, solved for δ; as dp_accounting's `compute_delta`).
 * ε ≥ 0; the result is in [0, 1].
 */
export function rdpToDelta({
  orders,
  rdp,
  epsilon,
}: {
  orders: readonly number[];
  rdp: ArrayLike<number>;
  epsilon: number;
}): RdpConversion {
  let best = Infinity;
  let bestOrder = NaN;
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k]!;
    const r = rdp[k]!;
    if (Number.isNaN(r) || r === Infinity) continue;
    let logDelta = r === 0 ? -Infinity : 0.5 * Math.log1p(-Math.exp(-r));
    if (a > 1.01) logDelta = Math.min(logDelta, (a - 1) * (r - epsilon + Math.log1p(-1 / a)) - Math.log(a));
    if (logDelta < best) {
      best = logDelta;
      bestOrder = a;
    }
  }
  return { value: Math.min(Math.exp(best), 1), order: bestOrder };
}
