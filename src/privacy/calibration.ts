// Noise calibration and step budgeting for DP-SGD: the smallest noise multiplier σ that keeps a
// training within a target ε, and the most steps a remaining ε budget allows. Invariant: whatever is
// returned satisfies the budget under the accountant used (ε(σ) ≤ targetEpsilon, ε(maxSteps) ≤
// epsilonBudget); the search only trades how close to the optimum it lands, never feasibility.
import { BastionError, type FieldError } from '../errors.js';
import type { AccountantName } from '../vocabulary.js';
import {
  type Accountant,
  createPldAccountant,
  createRdpAccountant,
  type PldAccountant,
  PldGridLimitError,
  type PrivacyEvent,
  SERVER_PLD_MAX_GRID_POINTS,
} from './accountant.js';
import { calibrateDiscreteGaussian } from './analysis/discrete-gaussian.js';
import { analyticGaussianDelta } from './analysis/gaussian.js';

export interface CalibrationOptions {
  /** The accountant that judges ε (RDP or PLD). */
  accountant: Accountant;
  /** ε the training may spend, > 0. */
  targetEpsilon: number;
  /** δ in (0, 1). */
  delta: number;
  /** q: Poisson sampling rate in (0, 1]. */
  sampleRate: number;
  /** Number of DP-SGD steps, integer ≥ 1. */
  steps: number;
  /**
   * Absolute tolerance in σ (default 1e-5): the returned σ is at most this far above the smallest σ
   * whose ε is ≤ targetEpsilon (ε is monotone in σ).
   */
  tolerance?: number;
  /** Where the bracket search starts (default 1); a good guess (e.g. the RDP σ for PLD) saves evaluations. */
  initialNoiseMultiplier?: number;
  /** Search range for σ (defaults 1e-3 and 1e4); a target unreachable below `maxNoiseMultiplier` is refused. */
  minNoiseMultiplier?: number;
  maxNoiseMultiplier?: number;
  /**
   * First step of the bracket search from initialNoiseMultiplier, as a ratio > 1 (default 2: doubling or
   * halving). A smaller one suits a guess known to be close; the ratio squares at each further step up to 2.
   */
  bracketRatio?: number;
}

/** How much coarser PLD's grid is in the first pass of a PLD calibration (calibrateNoiseMultiplier). */
const COARSE_PLD_FACTOR = 10;
/** The bracket ratio of the full-precision pass around the coarse pass's σ (which lands within ~2e-4 of it). */
const FINE_BRACKET_RATIO = 1.002;

const describe = (value: unknown): string => `${String(value)} of type ${typeof value}`;

function refuse(errors: FieldError[]): never {
  throw new BastionError('VALIDATION_FAILED', errors.map((e) => e.detail).join('; '), { errors });
}

function checkCommon(o: { delta: number; sampleRate: number }, errors: FieldError[]): void {
  if (typeof o.delta !== 'number' || !(o.delta > 0 && o.delta < 1)) {
    errors.push({ parameter: 'delta', detail: `Expected number in (0, 1) for delta but received ${describe(o.delta)}` });
  }
  if (typeof o.sampleRate !== 'number' || !(o.sampleRate > 0 && o.sampleRate <= 1)) {
    errors.push({ parameter: 'sampleRate', detail: `Expected number in (0, 1] for sampleRate but received ${describe(o.sampleRate)}` });
  }
}

/**
 * Brent's root finding (Brent 1973, "Algorithms for Minimization without Derivatives", ch. 4, zero)
 * for a decreasing f on [a, b] with f(a) > 0 ≥ f(b). Returns the end of the final bracket where
 * f ≤ 0, once the bracket is narrower than `tolerance`.
 */
function brentFeasible(f: (x: number) => number, a: number, fa: number, b: number, fb: number, tolerance: number): number {
  // Invariant: the root lies between b and c; f(b) and f(c) have opposite signs; |f(b)| ≤ |f(c)|.
  let c = a;
  let fc = fa;
  let d = b - a;
  let e = d;
  for (let iteration = 0; iteration < 200; iteration++) {
    if ((fb > 0 && fc > 0) || (fb <= 0 && fc <= 0)) {
      c = a;
      fc = fa;
      d = b - a;
      e = d;
    }
    if (Math.abs(fc) < Math.abs(fb)) {
      a = b;
      b = c;
      c = a;
      fa = fb;
      fb = fc;
      fc = fa;
    }
    const tol = 2 * Number.EPSILON * Math.abs(b) + 0.5 * tolerance;
    const m = 0.5 * (c - b);
    if (Math.abs(m) <= tol || fb === 0) break;
    if (Math.abs(e) >= tol && Math.abs(fa) > Math.abs(fb)) {
      // Inverse quadratic interpolation, or the secant step when only two points differ.
      const s = fb / fa;
      let p: number;
      let q: number;
      if (a === c) {
        p = 2 * m * s;
        q = 1 - s;
      } else {
        const qa = fa / fc;
        const r = fb / fc;
        p = s * (2 * m * qa * (qa - r) - (b - a) * (r - 1));
        q = (qa - 1) * (r - 1) * (s - 1);
      }
      if (p > 0) q = -q;
      else p = -p;
      if (2 * p < Math.min(3 * m * q - Math.abs(tol * q), Math.abs(e * q))) {
        e = d;
        d = p / q;
      } else {
        d = m;
        e = m;
      }
    } else {
      d = m;
      e = m;
    }
    a = b;
    fa = fb;
    b += Math.abs(d) > tol ? d : m > 0 ? tol : -tol;
    fb = f(b);
  }
  // The bracket is [b, c] (either order); return its feasible end.
  return fb <= 0 ? b : c;
}

/**
 * The smallest noise multiplier σ (to `tolerance`, default 1e-5 absolute) with
 * accountant.epsilon([{poisson-gaussian q, σ, steps}], { delta }) ≤ targetEpsilon. Brackets the root
 * by doubling/halving from initialNoiseMultiplier (default 1), then narrows it by Brent's method; the σ returned always meets the
 * target under `accountant`. Throws VALIDATION_FAILED listing every bad argument, or when no σ up to
 * maxNoiseMultiplier reaches the target (for instance when δ is too small for the accountant).
 */
export function calibrateNoiseMultiplier(options: CalibrationOptions): number {
  const { accountant } = options;
  // PLD: a first search on a grid COARSE_PLD_FACTOR times coarser (~20 times faster per evaluation)
  // places the bracket; the second is the whole search again on the accountant itself, from there. The
  // σ returned is therefore judged at full precision like any other (ε(σ) ≤ targetEpsilon under
  // `accountant`); the coarse pass only saves evaluations (about 8 full ones → 4 at the Fashion-MNIST recipe).
  if (accountant.name === 'pld' && 'valueDiscretizationInterval' in accountant && options.bracketRatio === undefined) {
    const pld = accountant as PldAccountant;
    const coarseInterval = pld.valueDiscretizationInterval * COARSE_PLD_FACTOR;
    const coarse = createPldAccountant({ valueDiscretizationInterval: coarseInterval, maxGridPoints: pld.maxGridPoints });
    let guess: number | null = null;
    try {
      guess = searchNoiseMultiplier({ ...options, accountant: coarse, tolerance: Math.max(options.tolerance ?? 1e-5, 1e-4) });
    } catch (err) {
      if (!(err instanceof BastionError)) throw err; // the full-precision search says why
    }
    if (guess !== null) return searchNoiseMultiplier({ ...options, initialNoiseMultiplier: guess, bracketRatio: FINE_BRACKET_RATIO });
  }
  return searchNoiseMultiplier(options);
}

function searchNoiseMultiplier(options: CalibrationOptions): number {
  const {
    accountant,
    targetEpsilon,
    delta,
    sampleRate,
    steps,
    tolerance = 1e-5,
    minNoiseMultiplier = 1e-3,
    maxNoiseMultiplier = 1e4,
    initialNoiseMultiplier = 1,
    bracketRatio = 2,
  } = options;
  const errors: FieldError[] = [];
  if (typeof targetEpsilon !== 'number' || !(targetEpsilon > 0) || !Number.isFinite(targetEpsilon)) {
    errors.push({
      parameter: 'targetEpsilon',
      detail: `Expected finite number > 0 for targetEpsilon but received ${describe(targetEpsilon)}`,
    });
  }
  checkCommon({ delta, sampleRate }, errors);
  if (!Number.isSafeInteger(steps) || steps < 1)
    errors.push({ parameter: 'steps', detail: `Expected integer ≥ 1 for steps but received ${describe(steps)}` });
  if (!(tolerance > 0))
    errors.push({ parameter: 'tolerance', detail: `Expected number > 0 for tolerance but received ${describe(tolerance)}` });
  if (!(bracketRatio > 1) || !Number.isFinite(bracketRatio))
    errors.push({
      parameter: 'bracketRatio',
      detail: `Expected finite number > 1 for bracketRatio but received ${describe(bracketRatio)}`,
    });
  if (!(minNoiseMultiplier > 0 && maxNoiseMultiplier > minNoiseMultiplier)) {
    errors.push({
      parameter: 'maxNoiseMultiplier',
      detail: `Expected 0 < minNoiseMultiplier < maxNoiseMultiplier but received ${minNoiseMultiplier} and ${maxNoiseMultiplier}`,
    });
  } else if (!(initialNoiseMultiplier >= minNoiseMultiplier && initialNoiseMultiplier <= maxNoiseMultiplier)) {
    errors.push({
      parameter: 'initialNoiseMultiplier',
      detail:
        `Expected number in [${minNoiseMultiplier}, ${maxNoiseMultiplier}] for initialNoiseMultiplier but ` +
        `received ${describe(initialNoiseMultiplier)}`,
    });
  }
  if (errors.length > 0) refuse(errors);

  const excess = (noiseMultiplier: number): number => {
    const events: PrivacyEvent[] = [{ kind: 'poisson-gaussian', sampleRate, noiseMultiplier, count: steps }];
    return accountant.epsilon(events, { delta }) - targetEpsilon;
  };
  // Bracket: lo infeasible (excess > 0), hi feasible (excess ≤ 0).
  let hi = initialNoiseMultiplier;
  let fHi = excess(hi);
  let lo: number;
  let fLo: number;
  let ratio = bracketRatio;
  if (fHi > 0) {
    lo = hi;
    fLo = fHi;
    while (fHi > 0) {
      if (hi >= maxNoiseMultiplier) {
        refuse([
          {
            parameter: 'targetEpsilon',
            detail:
              `No noiseMultiplier up to ${maxNoiseMultiplier} reaches targetEpsilon ${targetEpsilon} at delta ${delta} ` +
              `with the ${accountant.name} accountant`,
          },
        ]);
      }
      lo = hi;
      fLo = fHi;
      hi = Math.min(ratio * hi, maxNoiseMultiplier);
      ratio = Math.min(2, ratio * ratio);
      fHi = excess(hi);
    }
  } else {
    lo = hi;
    fLo = fHi;
    while (fLo <= 0) {
      if (lo <= minNoiseMultiplier) return lo; // Even the least noise allowed meets the target.
      hi = lo;
      fHi = fLo;
      lo = Math.max(lo / ratio, minNoiseMultiplier);
      ratio = Math.min(2, ratio * ratio);
      fLo = excess(lo);
    }
  }
  // ε = +∞ (an unusable accountant state) cannot drive interpolation; bisect until finite.
  while (!Number.isFinite(fLo) && hi - lo > tolerance) {
    const mid = 0.5 * (lo + hi);
    const fMid = excess(mid);
    if (fMid > 0) {
      lo = mid;
      fLo = fMid;
    } else {
      hi = mid;
      fHi = fMid;
    }
  }
  if (hi - lo <= tolerance) return hi;
  return brentFeasible(excess, lo, fLo, hi, fHi, tolerance);
}

export interface MaxStepsOptions {
  accountant: Accountant;
  /** q: Poisson sampling rate in (0, 1]. */
  sampleRate: number;
  /** σ > 0. */
  noiseMultiplier: number;
  /** δ in (0, 1). */
  delta: number;
  /** ε still available, ≥ 0. */
  epsilonBudget: number;
  /** Largest answer considered (default 10^9 steps). */
  limit?: number;
}

/**
 * The largest number of steps T ≥ 0 of (q, σ) with ε(T) ≤ epsilonBudget at δ (0 when even one step
 * exceeds it; `limit` when the budget allows at least that many). ε grows with T, so this is an
 * exponential search for a bracket followed by bisection over the integers.
 */
export function maxSteps(options: MaxStepsOptions): number {
  const { accountant, sampleRate, noiseMultiplier, delta, epsilonBudget, limit = 1e9 } = options;
  const errors: FieldError[] = [];
  checkCommon({ delta, sampleRate }, errors);
  if (typeof noiseMultiplier !== 'number' || !(noiseMultiplier > 0) || !Number.isFinite(noiseMultiplier)) {
    errors.push({
      parameter: 'noiseMultiplier',
      detail: `Expected finite number > 0 for noiseMultiplier but received ${describe(noiseMultiplier)}`,
    });
  }
  if (typeof epsilonBudget !== 'number' || !(epsilonBudget >= 0)) {
    errors.push({ parameter: 'epsilonBudget', detail: `Expected number ≥ 0 for epsilonBudget but received ${describe(epsilonBudget)}` });
  }
  if (!Number.isSafeInteger(limit) || limit < 1)
    errors.push({ parameter: 'limit', detail: `Expected integer ≥ 1 for limit but received ${describe(limit)}` });
  if (errors.length > 0) refuse(errors);

  const fits = (steps: number): boolean =>
    accountant.epsilon([{ kind: 'poisson-gaussian', sampleRate, noiseMultiplier, count: steps }], { delta }) <= epsilonBudget;
  if (!fits(1)) return 0;
  // Invariant: fits(good) and !fits(bad).
  let good = 1;
  let bad = 2;
  for (;;) {
    if (bad > limit) {
      if (fits(limit)) return limit;
      bad = limit;
      break;
    }
    if (!fits(bad)) break;
    good = bad;
    bad *= 2;
  }
  while (bad - good > 1) {
    const mid = Math.floor((good + bad) / 2);
    if (fits(mid)) good = mid;
    else bad = mid;
  }
  return good;
}

/**
 * The smallest noise multiplier σ of `releases` plain Gaussian releases (sensitivity 1) whose
 * composition is (targetEpsilon, delta)-DP, from the exact analytic Gaussian ε(δ) (Balle & Wang 2018;
 * T releases at σ equal one at σ/√T). Microseconds, so it can run on the event loop. The σ returned
 * meets the target; it is at most 1e-9 relative above the smallest that does.
 */
export function calibrateGaussianNoiseMultiplier({
  targetEpsilon,
  delta,
  releases = 1,
}: {
  targetEpsilon: number;
  delta: number;
  releases?: number;
}): number {
  const errors: FieldError[] = [];
  checkSingleRelease(errors, { targetEpsilon, delta });
  if (!Number.isSafeInteger(releases) || releases < 1)
    errors.push({ parameter: 'releases', detail: `Expected integer ≥ 1 for releases but received ${describe(releases)}` });
  if (errors.length > 0) refuse(errors);
  const fits = (sigma: number) => analyticGaussianDelta({ noiseMultiplier: sigma / Math.sqrt(releases), epsilon: targetEpsilon }) <= delta;
  let hi = 1;
  while (!fits(hi)) hi *= 2;
  let lo = hi / 2;
  while (fits(lo) && lo > 1e-12) lo /= 2;
  while (hi - lo > 1e-9 * hi) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** σ of one Gaussian mechanism equal to Gaussians of multipliers σ₁ and σ₂ on the same batch: (σ₁⁻² + σ₂⁻²)^(−1/2). */
export function jointNoiseMultiplier(first: number, second: number): number {
  return 1 / Math.sqrt(first ** -2 + second ** -2);
}

/** The σ₂ that makes the joint multiplier `joint` next to σ₁ (jointNoiseMultiplier's inverse); NaN unless joint < σ₁. */
export function companionNoiseMultiplier(first: number, joint: number): number {
  return joint < first ? 1 / Math.sqrt(joint ** -2 - first ** -2) : Number.NaN;
}

export interface TrainingNoiseOptions {
  /** The accountant asked for; PLD gives way to RDP where its work would exceed maxPldGridPoints. */
  accountant: AccountantName;
  /** PLD's work bound (PldAccountantOptions.maxGridPoints); default SERVER_PLD_MAX_GRID_POINTS. */
  maxPldGridPoints?: number;
  /** ε of the training's own noise σ. */
  targetEpsilon: number;
  /**
   * ε that a second Gaussian release from the same Poisson batches (sensitivity-normalised, e.g. the
   * clamped loss sums of training metrics) may add; 0: none.
   */
  extraEpsilon: number;
  delta: number;
  sampleRate: number;
  steps: number;
}

export interface TrainingNoise {
  /** The accountant that calibrated σ: the one asked for, or RDP where PLD would exceed its work bound. */
  accountant: AccountantName;
  /** σ: calibrated to targetEpsilon alone. */
  noiseMultiplier: number;
  /** ε of σ alone. */
  epsilon: number;
  /** σ₂ of the second release; null without one. */
  extraNoiseMultiplier: number | null;
  /** What one step charges: σ, or the joint (σ⁻² + σ₂⁻²)^(−1/2) calibrated to targetEpsilon + extraEpsilon. */
  chargedNoiseMultiplier: number;
  /** ε of what is charged. */
  epsilonTotal: number;
}

/**
 * The noise of a DP-SGD training and, optionally, of a second release computed from the same batches.
 * The two share each step's Poisson sample, so they are one Gaussian mechanism of the joint multiplier;
 * with small σ that costs far more than two independently sampled releases would (3 → 4.2 for a σ₂
 * worth 0.5 alone), so the joint σ is calibrated to the total ε and σ₂ derived from it, which leaves σ
 * (the model's noise) as without the extra release. Seconds with PLD: run it off the event loop.
 * Throws VALIDATION_FAILED as calibrateNoiseMultiplier, and for an extraEpsilon too small to resolve.
 *
 * PLD's work is bounded (maxPldGridPoints): where a PLD evaluation would need a larger grid — large ε,
 * hence little noise and a wide privacy-loss range — the whole calibration is done with RDP instead, in
 * milliseconds. Its σ meets the target under RDP, and RDP's ε is an upper bound like PLD's.
 */
export function calibrateTrainingNoise(options: TrainingNoiseOptions): TrainingNoise {
  const pld = createPldAccountant({ maxGridPoints: options.maxPldGridPoints ?? SERVER_PLD_MAX_GRID_POINTS });
  // A composition whose ε is the target has losses from below 0 to above it, so its grid has at least
  // target/h points: beyond the bound, PLD is not tried at all (it would fail only after its coarse pass).
  const totalEpsilon = options.targetEpsilon + Math.max(0, options.extraEpsilon);
  if (options.accountant === 'pld' && totalEpsilon / pld.valueDiscretizationInterval <= pld.maxGridPoints) {
    try {
      return calibrateTrainingNoiseWith(pld, options);
    } catch (err) {
      if (!(err instanceof PldGridLimitError)) throw err;
    }
  }
  return calibrateTrainingNoiseWith(createRdpAccountant(), options);
}

function calibrateTrainingNoiseWith(accountant: Accountant, options: TrainingNoiseOptions): TrainingNoise {
  const { targetEpsilon, extraEpsilon, delta, sampleRate, steps } = options;
  const epsilonOf = (noiseMultiplier: number) =>
    accountant.epsilon([{ kind: 'poisson-gaussian', sampleRate, noiseMultiplier, count: steps }], { delta });
  const noiseMultiplier = calibrateNoiseMultiplier({ accountant, targetEpsilon, delta, sampleRate, steps });
  const epsilon = epsilonOf(noiseMultiplier);
  const calibrated = { accountant: accountant.name, noiseMultiplier, epsilon };
  if (!(extraEpsilon > 0)) {
    return { ...calibrated, extraNoiseMultiplier: null, chargedNoiseMultiplier: noiseMultiplier, epsilonTotal: epsilon };
  }
  const joint = calibrateNoiseMultiplier({
    accountant,
    targetEpsilon: targetEpsilon + extraEpsilon,
    delta,
    sampleRate,
    steps,
    initialNoiseMultiplier: noiseMultiplier,
  });
  const extra = companionNoiseMultiplier(noiseMultiplier, joint);
  if (!Number.isFinite(extra)) {
    refuse([
      {
        parameter: 'extraEpsilon',
        detail: `extraEpsilon ${extraEpsilon} is too small to release anything next to noise σ = ${noiseMultiplier}`,
      },
    ]);
  }
  return { ...calibrated, extraNoiseMultiplier: extra, chargedNoiseMultiplier: joint, epsilonTotal: epsilonOf(joint) };
}

export interface DiscreteGaussianRelease {
  /** σ² of the integer noise, in the statistic's units (the exact rational value of this double). */
  sigmaSquared: number;
  /** Integer L1 = L2 sensitivity Δ of the released statistic. */
  sensitivity: number;
  /** The exact (upper-bounded) δ of this release at targetEpsilon, ≤ the delta asked for. */
  delta: number;
}

/** The (targetEpsilon, delta) of one release: a finite ε > 0 and δ in (0, 1). */
function checkSingleRelease(errors: FieldError[], { targetEpsilon, delta }: { targetEpsilon: number; delta: number }): void {
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1))
    errors.push({ parameter: 'delta', detail: `Expected number in (0, 1) for delta but received ${describe(delta)}` });
  if (typeof targetEpsilon !== 'number' || !(targetEpsilon > 0) || !Number.isFinite(targetEpsilon)) {
    errors.push({
      parameter: 'targetEpsilon',
      detail: `Expected finite number > 0 for targetEpsilon but received ${describe(targetEpsilon)}`,
    });
  }
}

/**
 * The least noise σ² (to 1e-6 relative) for one discrete Gaussian release of an integer statistic of
 * sensitivity Δ (integer ≥ 1) that is (targetEpsilon, delta)-DP by the exact δ(ε) of CKS20 Theorem 7
 * (./analysis/discrete-gaussian.ts), searched from the continuous Gaussian's σ. Milliseconds, so it can
 * run on the event loop. Throws VALIDATION_FAILED listing every bad argument.
 */
export function calibrateDiscreteGaussianRelease({
  targetEpsilon,
  delta,
  sensitivity,
}: {
  targetEpsilon: number;
  delta: number;
  sensitivity: number;
}): DiscreteGaussianRelease {
  const errors: FieldError[] = [];
  checkSingleRelease(errors, { targetEpsilon, delta });
  if (!Number.isSafeInteger(sensitivity) || sensitivity < 1)
    errors.push({ parameter: 'sensitivity', detail: `Expected integer ≥ 1 for sensitivity but received ${describe(sensitivity)}` });
  if (errors.length > 0) refuse(errors);
  const continuous = calibrateGaussianNoiseMultiplier({ targetEpsilon, delta }) * sensitivity;
  const found = calibrateDiscreteGaussian({ epsilon: targetEpsilon, delta, sensitivity, initialSigmaSquared: continuous * continuous });
  return { sigmaSquared: found.sigmaSquared, sensitivity, delta: found.delta };
}
