// Privacy loss distributions (PLDs) of the Gaussian and the Poisson-subsampled Gaussian mechanism:
// pessimistic discretization, composition by FFT, and conversion to (ε, δ). Pure math, following
// Google dp_accounting's PLD accountant (Koskela, Jälkö & Honkela 2020, "Computing tight differential
// privacy guarantees using FFT"; Doroshenko, Ghazi, Kamath, Kumar & Manurangsi 2022, "Connect the
// Dots: Tighter Discrete Approximations of Privacy Loss Distributions").
//
// Which side it errs on: every PLD built here DOMINATES the true one (its hockey-stick curve δ(ε) is
// ≥ the mechanism's at every ε), composition preserves domination, tail mass cut during composition
// is counted as infinite loss, and the ε reported for a δ is therefore an UPPER bound on the true ε up
// to floating-point error (δ is accurate to ~1e-12 absolute, which moves ε by far less than 1e-6 in
// the regimes tested). The over-estimate is the discretization error: with connect-the-dots it is a
// small fraction of one grid step per composed step in the worst case, and in practice well under 1%
// of ε at a 1e-4 grid (checked against dp_accounting and Opacus PRV references in the tests).
import { discreteGaussianDeltaCurve } from './discrete-gaussian.js';
import { fft, inverseFft, nextPowerOfTwo } from './fft.js';
import { logAdd, logNormalTail, logSub } from './gaussian.js';

/** dp_accounting's PLDAccountant default grid step for privacy losses. */
export const DEFAULT_VALUE_DISCRETIZATION_INTERVAL = 1e-4;
/** dp_accounting's default tail mass that self-composition may truncate (counted as infinite loss). */
export const DEFAULT_TAIL_MASS_TRUNCATION = 1e-15;
/**
 * Thrown, before the work is done, when a PLD would need more grid points than the caller's
 * `maxGridPoints`: one mechanism's discretization, or the FFT of a composition. The work and memory of
 * a PLD grow with its grid (about ε/h points for a composition whose ε is asked about, so ε = 1000 at
 * h = 1e-4 needs an FFT of 2^25 points and tens of seconds); a caller that must bound its work catches
 * this and falls back to another accountant. Nothing about privacy is wrong when it is thrown.
 */
export class PldGridLimitError extends RangeError {
  override readonly name = 'PldGridLimitError';
  constructor(
    /** Points the PLD would have needed (a power of two for an FFT). */
    readonly gridPoints: number,
    readonly maxGridPoints: number,
  ) {
    super(`The PLD needs ${gridPoints} grid points, more than the limit of ${maxGridPoints}`);
  }
}

function checkGridPoints(gridPoints: number, maxGridPoints: number): void {
  if (gridPoints > maxGridPoints) throw new PldGridLimitError(gridPoints, maxGridPoints);
}

/** log of the noise tail mass left out of the per-step grid (dp_accounting's log_mass_truncation_bound). */
const LOG_MASS_TRUNCATION_BOUND = -50;

/**
 * A discrete privacy loss distribution on the grid h·ℤ: mass probs[i] at loss (lowerIndex + i)·h,
 * plus `infinityMass` at +∞ (outcomes possible under one neighbour and not the other, or cut tails).
 * Σ probs + infinityMass ≤ 1.
 */
export interface DiscretePld {
  readonly valueDiscretizationInterval: number;
  readonly lowerIndex: number;
  readonly probs: Float64Array;
  readonly infinityMass: number;
}

/**
 * The two PLDs of a mechanism under add-or-remove-one adjacency, as dp_accounting keeps them:
 * `remove` is the loss of the dataset with the record against the one without it, `add` the reverse.
 * Both are composed separately; (ε, δ) takes the worse of the two. For the plain Gaussian the two are
 * the same distribution and `add === remove`.
 */
export interface PldDirections {
  readonly remove: DiscretePld;
  readonly add: DiscretePld;
}

/** z with log P(N(0,1) > z) = LOG_MASS_TRUNCATION_BOUND, by bisection (computed once). */
const truncationZ = (() => {
  let lo = 0;
  let hi = 40;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (logNormalTail(mid) > LOG_MASS_TRUNCATION_BOUND) lo = mid;
    else hi = mid;
  }
  return hi;
})();

/**
 * log δ_G(ε) for the Gaussian mechanism with sensitivity 1 and noise σ:
 * δ_G(ε) = Φ̄(σε - 1/(2σ)) - e^ε Φ̄(σε + 1/(2σ)) (Balle & Wang 2018, "Improving the Gaussian
 * mechanism", Theorem 8), in log space; -∞ where the difference rounds to ≤ 0.
 */
function logGaussianDelta(noiseMultiplier: number, epsilon: number): number {
  const a = noiseMultiplier * epsilon;
  const b = 1 / (2 * noiseMultiplier);
  const value = logSub(logNormalTail(a - b), epsilon + logNormalTail(a + b));
  return Number.isNaN(value) ? -Infinity : value;
}

/**
 * Hockey-stick divergence δ(ε) = sup_S P(S) - e^ε Q(S) of the remove direction,
 * P = (1-q)N(0,σ²) + qN(1,σ²) against Q = N(0,σ²). The loss is log(1 - q + q e^{(2x-1)/(2σ²)}), so
 * for e^ε > 1 - q, δ(ε) = q δ_G(ε') with ε' = log(1 + (e^ε - 1)/q) (the subsampled mechanism's δ is
 * the Gaussian's at the "amplified" ε'; Balle, Barthe & Gaboardi 2018, "Privacy amplification by
 * subsampling", Theorem 8); for ε ≤ log(1 - q), δ(ε) = 1 - e^ε.
 */
function removeDelta(sampleRate: number, noiseMultiplier: number, epsilon: number): number {
  const shifted = Math.expm1(epsilon) / sampleRate;
  if (!(shifted > -1)) return -Math.expm1(epsilon);
  const amplified = Math.log1p(shifted);
  return Math.exp(Math.log(sampleRate) + logGaussianDelta(noiseMultiplier, amplified));
}

/**
 * δ(ε) of the add direction, P = N(0,σ²) against Q = (1-q)N(0,σ²) + qN(1,σ²). The loss is
 * -log(1 - q + q e^{(2x-1)/(2σ²)}) < -log(1 - q), so δ = 0 for ε ≥ -log(1 - q); below it,
 * δ(ε) = q e^{ε - η} δ_G(η) with η = -log(1 + (e^{-ε} - 1)/q) (same substitution, mirrored).
 */
function addDelta(sampleRate: number, noiseMultiplier: number, epsilon: number): number {
  const shifted = Math.expm1(-epsilon) / sampleRate;
  if (!(shifted > -1)) return 0;
  const eta = -Math.log1p(shifted);
  return Math.exp(Math.log(sampleRate) + epsilon - eta + logGaussianDelta(noiseMultiplier, eta));
}

/**
 * The pessimistic connect-the-dots PLD on the grid points lowerIndex·h … upperIndex·h (Doroshenko et
 * al. 2022, Algorithm 1 with equally spaced ε; dp_accounting's
 * `create_pmf_pessimistic_connect_dots_fixed_gap`). With δ_i the mechanism's exact δ at ε_i and
 * d = h: mass at ε_1 is (1 - δ_1) + (δ_2 - δ_1)/(e^d - 1), at interior ε_i it is
 * ((δ_{i+1} - δ_i) - e^d (δ_i - δ_{i-1}))/(e^d - 1), at ε_n it is (δ_n - δ_{n-1})/(e^{-d} - 1), and
 * δ_n goes to +∞. Its δ(ε) interpolates the true curve at the grid points and, the true curve being
 * convex in e^ε, lies above it everywhere: the PLD dominates the mechanism.
 */
function connectTheDots(options: {
  valueDiscretizationInterval: number;
  lowerIndex: number;
  upperIndex: number;
  deltaAt: (epsilon: number) => number;
  maxGridPoints: number;
}): DiscretePld {
  const { valueDiscretizationInterval: h, lowerIndex, upperIndex, deltaAt } = options;
  const n = upperIndex - lowerIndex + 1;
  checkGridPoints(n, options.maxGridPoints);
  const deltas = new Float64Array(n);
  let running = 1;
  for (let i = 0; i < n; i++) {
    const value = Math.min(1, Math.max(0, deltaAt((lowerIndex + i) * h)));
    // δ(ε) is non-increasing; rounding may break that by an ulp (dp_accounting: minimum.accumulate).
    running = Math.min(running, Number.isNaN(value) ? running : value);
    deltas[i] = running;
  }
  const probs = new Float64Array(n);
  if (n === 1) {
    probs[0] = 1 - deltas[0]!;
    return { valueDiscretizationInterval: h, lowerIndex, probs, infinityMass: deltas[0]! };
  }
  const expD = Math.exp(h);
  const expm1D = Math.expm1(h);
  probs[0] = Math.max(0, 1 - deltas[0]! + (deltas[1]! - deltas[0]!) / expm1D);
  for (let i = 1; i < n - 1; i++) {
    probs[i] = Math.max(0, (deltas[i + 1]! - deltas[i]! - expD * (deltas[i]! - deltas[i - 1]!)) / expm1D);
  }
  probs[n - 1] = Math.max(0, (deltas[n - 1]! - deltas[n - 2]!) / Math.expm1(-h));
  return { valueDiscretizationInterval: h, lowerIndex, probs, infinityMass: deltas[n - 1]! };
}

function assertInterval(h: number): void {
  if (!(h > 0) || !Number.isFinite(h)) throw new RangeError(`valueDiscretizationInterval must be a finite number > 0, got ${h}`);
}

/**
 * The pessimistic PLDs (both directions) of one Poisson-subsampled Gaussian step: sampleRate q in
 * (0, 1], noiseMultiplier σ > 0 (sensitivity 1), grid step valueDiscretizationInterval (default 1e-4).
 * The grid covers the losses of all outcomes x except noise tails of mass e^-50; losses beyond the
 * top of the grid are counted at +∞ and those below the bottom at the bottom point (both pessimistic).
 * q = 1 is the plain Gaussian (one symmetric PLD).
 */
export function sampledGaussianPld({
  sampleRate,
  noiseMultiplier,
  valueDiscretizationInterval = DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
  maxGridPoints = Infinity,
}: {
  sampleRate: number;
  noiseMultiplier: number;
  valueDiscretizationInterval?: number;
  /** Largest grid of either direction; above it, PldGridLimitError before any work (default: none). */
  maxGridPoints?: number;
}): PldDirections {
  assertInterval(valueDiscretizationInterval);
  if (!(sampleRate > 0 && sampleRate <= 1)) throw new RangeError(`sampleRate must be in (0, 1], got ${sampleRate}`);
  if (!(noiseMultiplier > 0) || !Number.isFinite(noiseMultiplier))
    throw new RangeError(`noiseMultiplier must be a finite number > 0, got ${noiseMultiplier}`);
  if (sampleRate === 1) return gaussianPld({ noiseMultiplier, valueDiscretizationInterval, maxGridPoints });
  const h = valueDiscretizationInterval;
  const sigma = noiseMultiplier;
  const logQ = Math.log(sampleRate);
  const log1MinusQ = Math.log1p(-sampleRate);
  // The remove direction's loss at outcome x; increasing in x.
  const removeLoss = (x: number): number => logAdd(log1MinusQ, logQ + (2 * x - 1) / (2 * sigma * sigma));
  const z = truncationZ;
  // Remove: outcomes under P = (1-q)N(0,σ²) + qN(1,σ²) lie in [-σz, 1 + σz] but for mass ≤ 2e^-50.
  const removeGrid = { lowerIndex: Math.floor(removeLoss(-sigma * z) / h), upperIndex: Math.ceil(removeLoss(1 + sigma * z) / h) };
  const addGrid = { lowerIndex: Math.floor(-removeLoss(sigma * z) / h), upperIndex: Math.ceil(-removeLoss(-sigma * z) / h) };
  for (const grid of [removeGrid, addGrid]) checkGridPoints(grid.upperIndex - grid.lowerIndex + 1, maxGridPoints);
  const remove = connectTheDots({
    valueDiscretizationInterval: h,
    ...removeGrid,
    deltaAt: (epsilon) => removeDelta(sampleRate, sigma, epsilon),
    maxGridPoints,
  });
  // Add: outcomes under P = N(0,σ²) lie in [-σz, σz]; the loss is -removeLoss(x), decreasing in x.
  const add = connectTheDots({
    valueDiscretizationInterval: h,
    ...addGrid,
    deltaAt: (epsilon) => addDelta(sampleRate, sigma, epsilon),
    maxGridPoints,
  });
  return { remove, add };
}

/**
 * The pessimistic PLD of the plain Gaussian mechanism (sensitivity 1, noise σ > 0). Its loss
 * (2x - 1)/(2σ²) with x ~ N(1, σ²) is N(1/(2σ²), 1/σ²) and the same in both directions.
 */
export function gaussianPld({
  noiseMultiplier,
  valueDiscretizationInterval = DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
  maxGridPoints = Infinity,
}: {
  noiseMultiplier: number;
  valueDiscretizationInterval?: number;
  /** Largest grid; above it, PldGridLimitError before any work (default: none). */
  maxGridPoints?: number;
}): PldDirections {
  assertInterval(valueDiscretizationInterval);
  if (!(noiseMultiplier > 0) || !Number.isFinite(noiseMultiplier))
    throw new RangeError(`noiseMultiplier must be a finite number > 0, got ${noiseMultiplier}`);
  const h = valueDiscretizationInterval;
  const sigma = noiseMultiplier;
  const mean = 1 / (2 * sigma * sigma);
  const spread = truncationZ / sigma;
  const pld = connectTheDots({
    valueDiscretizationInterval: h,
    lowerIndex: Math.floor((mean - spread) / h),
    upperIndex: Math.ceil((mean + spread) / h),
    deltaAt: (epsilon) => Math.exp(logGaussianDelta(sigma, epsilon)),
    maxGridPoints,
  });
  return { remove: pld, add: pld };
}

/**
 * The pessimistic PLD of the discrete Gaussian mechanism (CKS20; see ./discrete-gaussian.ts): an
 * integer statistic of sensitivity Δ (integer ≥ 1) plus N_Z(0, σ²), σ² > 0. Its privacy loss at outcome
 * z = Δ + j is ((2jΔ + Δ²)/(2σ²)) for j ~ N_Z(0, σ²), a lattice with the same mean Δ²/(2σ²) and spread
 * as the Gaussian of multiplier σ/Δ; the grid covers j within ±z·σ of 0 (z from the e^-50 truncation)
 * and connect-the-dots is built from the exact δ(ε) upper bound of CKS20 Theorem 7 at every grid point,
 * so it dominates the mechanism (mass beyond the top grid point goes to +∞, below the bottom to the
 * bottom point). The mechanism is symmetric (z ↦ Δ − z swaps the neighbours): one PLD for both directions.
 */
export function discreteGaussianPld({
  sigmaSquared,
  sensitivity,
  valueDiscretizationInterval = DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
  maxGridPoints = Infinity,
}: {
  sigmaSquared: number;
  sensitivity: number;
  valueDiscretizationInterval?: number;
  /** Largest grid; above it, PldGridLimitError before any work (default: none). */
  maxGridPoints?: number;
}): PldDirections {
  assertInterval(valueDiscretizationInterval);
  const deltaAt = discreteGaussianDeltaCurve({ sigmaSquared, sensitivity });
  const h = valueDiscretizationInterval;
  const mean = (sensitivity * sensitivity) / (2 * sigmaSquared);
  const spread = (truncationZ * sensitivity) / Math.sqrt(sigmaSquared);
  const pld = connectTheDots({
    valueDiscretizationInterval: h,
    lowerIndex: Math.floor((mean - spread) / h),
    upperIndex: Math.ceil((mean + spread) / h),
    deltaAt,
    maxGridPoints,
  });
  return { remove: pld, add: pld };
}

/**
 * Log moment generating function log Σ_j p_j e^{λ j} of a sub-probability vector (index units),
 * without overflow: weights are built by repeated multiplication from the end that dominates.
 */
function logMgf(probs: Float64Array, lambda: number): number {
  const n = probs.length;
  let acc = 0;
  if (lambda > 0) {
    const factor = Math.exp(-lambda);
    let w = 1;
    for (let j = n - 1; j >= 0 && w > 1e-300; j--, w *= factor) acc += probs[j]! * w;
    return lambda * (n - 1) + Math.log(acc);
  }
  const factor = Math.exp(lambda);
  let w = 1;
  for (let j = 0; j < n && w > 1e-300; j++, w *= factor) acc += probs[j]! * w;
  return Math.log(acc);
}

/**
 * The index window [lower, upper] (offsets from Σ count·lowerIndex) outside which the composed mass
 * is at most tailMassTruncation/2 on each side, by the Chernoff bound P(S ≥ a) ≤ e^{-λa} E e^{λS}
 * over a grid of λ (dp_accounting `compute_self_convolve_bounds`, with a wider λ grid so heterogeneous
 * and long compositions get tight windows).
 */
function compositionWindow(
  parts: readonly { pld: DiscretePld; count: number }[],
  tailMassTruncation: number,
): { lower: number; upper: number } {
  let upper = 0;
  let longest = 1;
  for (const { pld, count } of parts) {
    upper += (pld.probs.length - 1) * count;
    longest = Math.max(longest, pld.probs.length);
  }
  let lower = 0;
  if (tailMassTruncation === 0) return { lower, upper };
  const logTwoOverTail = Math.log(2 / tailMassTruncation);
  for (let k = 0; k <= 40; k++) {
    const magnitude = 2 ** (k / 2) / longest;
    for (const lambda of [magnitude, -magnitude]) {
      let total = 0;
      for (const { pld, count } of parts) total += count * logMgf(pld.probs, lambda);
      const bound = (total + logTwoOverTail) / lambda;
      if (!Number.isFinite(bound)) continue;
      if (lambda > 0) upper = Math.min(upper, Math.ceil(bound));
      else lower = Math.max(lower, Math.floor(bound));
    }
  }
  if (lower > upper) lower = upper;
  return { lower, upper };
}

/** (x + iy)^c for an integer c ≥ 1, in polar form (relative error about c ulps). */
function complexPower(x: number, y: number, c: number): [number, number] {
  if (c === 1) return [x, y];
  const logMagnitude = 0.5 * Math.log(x * x + y * y);
  // Below e^-745 the power underflows to 0; skip the trigonometry (most frequencies of a long
  // composition land here).
  if (!(c * logMagnitude > -745)) return ZERO;
  const m = Math.exp(c * logMagnitude);
  const angle = c * Math.atan2(y, x);
  return [m * Math.cos(angle), m * Math.sin(angle)];
}
const ZERO: [number, number] = [0, 0];

/**
 * The composition of `count` copies of each part's PLDs (all parts on the same grid step), both
 * directions. All parts are convolved at once in the frequency domain: each part's two directions go
 * through one complex FFT as its real and imaginary parts, each spectrum is raised to its count and
 * multiplied in, and one inverse FFT returns both composed directions. The FFT size covers the
 * Chernoff window of the composed loss; mass outside it (≤ tailMassTruncation, default 1e-15) is
 * added to the infinite-loss mass, so the result still dominates the true composition (pessimistic).
 * An FFT of more than `maxGridPoints` points (default: no limit) throws PldGridLimitError before it runs.
 */
export function composePlds(
  parts: readonly { pld: PldDirections; count: number }[],
  options: { tailMassTruncation?: number; maxGridPoints?: number } = {},
): PldDirections {
  const { tailMassTruncation = DEFAULT_TAIL_MASS_TRUNCATION, maxGridPoints = Infinity } = options;
  const active = parts.filter((p) => p.count > 0);
  if (active.length === 0) throw new RangeError('composePlds needs at least one part with count ≥ 1');
  const h = active[0]!.pld.remove.valueDiscretizationInterval;
  for (const { pld, count } of active) {
    if (!Number.isSafeInteger(count)) throw new RangeError(`count must be a safe integer, got ${count}`);
    if (pld.remove.valueDiscretizationInterval !== h || pld.add.valueDiscretizationInterval !== h) {
      throw new RangeError('composePlds needs every PLD on the same valueDiscretizationInterval');
    }
  }
  if (active.length === 1 && active[0]!.count === 1) return active[0]!.pld;
  const symmetric = active.every((p) => p.pld.add === p.pld.remove);
  const removeParts = active.map((p) => ({ pld: p.pld.remove, count: p.count }));
  const addParts = active.map((p) => ({ pld: p.pld.add, count: p.count }));
  const removeWindow = compositionWindow(removeParts, tailMassTruncation);
  const addWindow = symmetric ? removeWindow : compositionWindow(addParts, tailMassTruncation);
  const n = nextPowerOfTwo(Math.max(removeWindow.upper - removeWindow.lower + 1, addWindow.upper - addWindow.lower + 1));
  checkGridPoints(n, maxGridPoints); // the FFT's size: its time and memory (eight arrays of n doubles)

  // Spectra of the composed remove (R) and add (A) directions, accumulated as products over parts.
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  let accRemoveRe: Float64Array | null = null;
  let accRemoveIm: Float64Array | null = null;
  let accAddRe: Float64Array | null = null;
  let accAddIm: Float64Array | null = null;
  const single = active.length === 1;
  for (const { pld, count } of active) {
    re.fill(0);
    im.fill(0);
    // Wrap each input modulo n: cyclic convolution of wrapped inputs is the wrapped convolution.
    const r = pld.remove.probs;
    for (let j = 0; j < r.length; j++) re[j % n]! += r[j]!;
    if (!symmetric) {
      const a = pld.add.probs;
      for (let j = 0; j < a.length; j++) im[j % n]! += a[j]!;
    }
    fft(re, im);
    if (!single && accRemoveRe === null) {
      accRemoveRe = new Float64Array(n).fill(1);
      accRemoveIm = new Float64Array(n);
      accAddRe = new Float64Array(n).fill(1);
      accAddIm = new Float64Array(n);
    }
    for (let k = 0; k <= n / 2; k++) {
      const kk = (n - k) % n;
      const zr = re[k]!;
      const zi = im[k]!;
      const wr = re[kk]!;
      const wi = im[kk]!;
      // Separate the two real inputs' spectra: R[k] = (Z[k] + conj Z[n-k])/2, A[k] = (Z[k] - conj Z[n-k])/(2i).
      const [rr, ri] = complexPower((zr + wr) / 2, (zi - wi) / 2, count);
      const [ar, ai] = symmetric ? [0, 0] : complexPower((zi + wi) / 2, (wr - zr) / 2, count);
      if (single) {
        // W = R' + i A' at k, and conj(R') + i conj(A') at n - k.
        re[k] = rr - ai;
        im[k] = ri + ar;
        re[kk] = rr + ai;
        im[kk] = -ri + ar;
      } else {
        const mulInto = (accRe: Float64Array, accIm: Float64Array, x: number, y: number): void => {
          const pr = accRe[k]!;
          const pi = accIm[k]!;
          accRe[k] = pr * x - pi * y;
          accIm[k] = pr * y + pi * x;
          if (kk !== k) {
            accRe[kk] = accRe[k]!;
            accIm[kk] = -accIm[k]!;
          }
        };
        mulInto(accRemoveRe!, accRemoveIm!, rr, ri);
        if (!symmetric) mulInto(accAddRe!, accAddIm!, ar, ai);
      }
    }
  }
  if (!single) {
    for (let k = 0; k < n; k++) {
      re[k] = accRemoveRe![k]! - (symmetric ? 0 : accAddIm![k]!);
      im[k] = accRemoveIm![k]! + (symmetric ? 0 : accAddRe![k]!);
    }
  }
  inverseFft(re, im);

  const extract = (directionParts: typeof removeParts, window: { lower: number; upper: number }, values: Float64Array): DiscretePld => {
    let base = 0;
    let fullUpper = 0;
    let logFinite = 0; // log Π (1 - infinityMass)^count
    for (const { pld, count } of directionParts) {
      base += pld.lowerIndex * count;
      fullUpper += (pld.probs.length - 1) * count;
      logFinite += count * Math.log1p(-pld.infinityMass);
    }
    const size = window.upper - window.lower + 1;
    const probs = new Float64Array(size);
    for (let s = 0; s < size; s++) probs[s] = Math.max(0, values[(window.lower + s) % n]!);
    const truncated = window.lower > 0 || window.upper < fullUpper;
    return {
      valueDiscretizationInterval: h,
      lowerIndex: base + window.lower,
      probs,
      infinityMass: Math.min(1, -Math.expm1(logFinite) + (truncated ? tailMassTruncation : 0)),
    };
  };
  const remove = extract(removeParts, removeWindow, re);
  const add = symmetric ? remove : extract(addParts, addWindow, im);
  return { remove, add };
}

/**
 * The smallest ε ≥ 0 with δ(ε) ≤ delta for one discrete PLD (+∞ when its infinite-loss mass exceeds
 * delta): the hockey-stick curve δ(ε) = m_∞ + Σ_{ℓ > ε} p_ℓ (1 - e^{ε-ℓ}) is solved exactly between
 * grid points, scanning down from the largest loss (dp_accounting `_get_epsilon_for_delta`).
 */
export function discretePldEpsilon(pld: DiscretePld, { delta }: { delta: number }): number {
  if (pld.infinityMass > delta) return Infinity;
  const h = pld.valueDiscretizationInterval;
  let massUpper = pld.infinityMass;
  let massLower = 0;
  for (let i = pld.probs.length - 1; i >= 0; i--) {
    const loss = (pld.lowerIndex + i) * h;
    if (massUpper > delta && massLower > 0 && Math.log((massUpper - delta) / massLower) >= loss) break;
    const p = pld.probs[i]!;
    massUpper += p;
    massLower += Math.exp(-loss) * p;
    if (massUpper >= delta && massLower === 0) return Math.max(0, loss);
  }
  if (massUpper <= massLower + delta) return 0;
  return Math.log((massUpper - delta) / massLower);
}

/** δ(ε) = m_∞ + Σ_{ℓ > ε} p_ℓ (1 - e^{ε-ℓ}) of one discrete PLD, for ε ≥ 0. */
export function discretePldDelta(pld: DiscretePld, { epsilon }: { epsilon: number }): number {
  const h = pld.valueDiscretizationInterval;
  let delta = 0;
  for (let i = pld.probs.length - 1; i >= 0; i--) {
    const loss = (pld.lowerIndex + i) * h;
    if (loss <= epsilon) break;
    delta += -Math.expm1(epsilon - loss) * pld.probs[i]!;
  }
  return Math.min(1, pld.infinityMass + delta);
}

/** ε for δ in (0, 1) of a mechanism given by both PLD directions: the larger direction's ε. */
export function pldEpsilon(pld: PldDirections, { delta }: { delta: number }): number {
  const remove = discretePldEpsilon(pld.remove, { delta });
  return pld.add === pld.remove ? remove : Math.max(remove, discretePldEpsilon(pld.add, { delta }));
}

/** δ for ε ≥ 0 of a mechanism given by both PLD directions: the larger direction's δ. */
export function pldDelta(pld: PldDirections, { epsilon }: { epsilon: number }): number {
  const remove = discretePldDelta(pld.remove, { epsilon });
  return pld.add === pld.remove ? remove : Math.max(remove, discretePldDelta(pld.add, { epsilon }));
}
