// The discrete Gaussian N_Z(0, σ²) on the integers (Canonne, Kamath & Steinke 2020, "The Discrete
// Gaussian for Differential Privacy", NeurIPS 2020; numbering of arXiv:2004.00010): an exact sampler
// driven by uniform random integers, its exact privacy curve δ(ε), and the calibration of σ² to a
// target (ε, δ). Pure math. Invariants: the sampler uses only exact rational arithmetic on BigInts (no
// floating point touches a released value, so there is nothing of the Mironov 2012 kind to attack),
// and every δ returned here is an UPPER bound on the mechanism's true δ (truncated sums are bounded
// rigorously and floating-point rounding is paid for on the pessimistic side).
//
// f(j) = exp(−j²/(2σ²)) is the unnormalised pmf and C = Σ_{j∈ℤ} f(j) its normaliser; all sums below are
// of f, divided by C at the end.
import { normalTail } from './gaussian.js';

/** A positive rational numerator/denominator, both BigInt > 0. */
export interface Rational {
  readonly numerator: bigint;
  readonly denominator: bigint;
}

/** A source of uniform random integers; production draws from the OS CSPRNG, tests may inject a seeded one. */
export interface RandomSource {
  /** A uniform integer in [0, n), for an integer n ≥ 1. */
  uniformBelow(n: bigint): bigint;
}

/**
 * A RandomSource reading bytes from `fill` (which must fill its argument with independent uniform
 * bytes), buffered 4 KiB at a time. Integers below n come from rejection sampling on the bit length of
 * n − 1, so they are exactly uniform (no modulo bias).
 */
export function randomSourceFromBytes(fill: (bytes: Uint8Array) => void): RandomSource {
  const pool = new Uint8Array(4096);
  let used = pool.length;
  const nextByte = (): number => {
    if (used === pool.length) {
      fill(pool);
      used = 0;
    }
    return pool[used++]!;
  };
  return {
    uniformBelow(n: bigint): bigint {
      if (typeof n !== 'bigint' || n < 1n) throw new RangeError(`Expected bigint ≥ 1 for n but received ${String(n)}`);
      if (n === 1n) return 0n;
      const bits = (n - 1n).toString(2).length;
      if (bits <= 48) {
        const limit = Number(n);
        const bytes = Math.ceil(bits / 8);
        const topMask = 0xff >> (bytes * 8 - bits);
        for (;;) {
          let value = nextByte() & topMask;
          for (let i = 1; i < bytes; i++) value = value * 256 + nextByte();
          if (value < limit) return BigInt(value);
        }
      }
      const bytes = Math.ceil(bits / 8);
      const topMask = BigInt(0xff >> (bytes * 8 - bits));
      for (;;) {
        let value = BigInt(nextByte()) & topMask;
        for (let i = 1; i < bytes; i++) value = (value << 8n) | BigInt(nextByte());
        if (value < n) return value;
      }
    },
  };
}

/** The exact rational value of a finite double x > 0 (every double is m·2^e). */
export function rationalFromDouble(x: number): Rational {
  if (!(x > 0) || !Number.isFinite(x)) throw new RangeError(`Expected finite number > 0 but received ${x}`);
  let exponent = 0;
  let mantissa = x;
  // Scale to an integer mantissa: at most 1074 doublings for subnormals, 1023 halvings for huge x.
  while (!Number.isInteger(mantissa)) {
    mantissa *= 2;
    exponent -= 1;
  }
  let numerator = BigInt(mantissa);
  let denominator = 1n;
  if (exponent < 0) denominator = 1n << BigInt(-exponent);
  while (numerator % 2n === 0n && denominator % 2n === 0n) {
    numerator /= 2n;
    denominator /= 2n;
  }
  return { numerator, denominator };
}

/** ⌊√n⌋ for a BigInt n ≥ 0 (Newton's method on integers). */
function integerSqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n)))) + 1n;
  for (;;) {
    const y = (x + n / x) / 2n;
    if (y >= x) break;
    x = y;
  }
  while (x * x > n) x -= 1n;
  while ((x + 1n) * (x + 1n) <= n) x += 1n;
  return x;
}

/**
 * One draw of Bernoulli(exp(−γ)) for a rational γ = numerator/denominator ≥ 0, exactly
 * (CKS20 Algorithm 1). For γ ∈ [0, 1]: K ← 1; while Bernoulli(γ/K) = 1, K ← K + 1; return K odd —
 * P[K odd] = Σ_k (−γ)^k/k! = e^{−γ}. For γ > 1: ⌊γ⌋ draws of Bernoulli(e^{−1}) must all be 1, then
 * one Bernoulli(e^{−(γ−⌊γ⌋)}); it stops at the first 0, so it costs O(1) draws on average for any γ.
 * Bernoulli(a/b) is "a uniform integer below b is below a".
 */
export function sampleBernoulliExp(gamma: Rational, random: RandomSource): boolean {
  let { numerator } = gamma;
  const { denominator } = gamma;
  if (numerator < 0n || denominator < 1n) throw new RangeError(`Expected a rational γ ≥ 0 but received ${numerator}/${denominator}`);
  while (numerator > denominator) {
    if (!bernoulliExpAtMostOne(1n, 1n, random)) return false;
    numerator -= denominator;
  }
  return bernoulliExpAtMostOne(numerator, denominator, random);
}

function bernoulliExpAtMostOne(numerator: bigint, denominator: bigint, random: RandomSource): boolean {
  let k = 1n;
  while (random.uniformBelow(denominator * k) < numerator) k += 1n;
  return k % 2n === 1n;
}

/**
 * One draw of the discrete Laplace distribution with scale t (P[Y = y] ∝ e^{−|y|/t}), for an integer
 * t ≥ 1, exactly (CKS20 Algorithm 2 with s = 1): U uniform in {0, …, t−1} kept with probability
 * e^{−U/t}; V geometric (count of Bernoulli(e^{−1}) successes); X = U + tV; a fair sign, rejecting
 * "−0" so that 0 is not counted twice.
 */
export function sampleDiscreteLaplace(scale: bigint, random: RandomSource): bigint {
  if (scale < 1n) throw new RangeError(`Expected integer ≥ 1 for scale but received ${scale}`);
  for (;;) {
    const u = random.uniformBelow(scale);
    if (!sampleBernoulliExp({ numerator: u, denominator: scale }, random)) continue;
    let v = 0n;
    while (sampleBernoulliExp({ numerator: 1n, denominator: 1n }, random)) v += 1n;
    const x = u + scale * v;
    const negative = random.uniformBelow(2n) === 1n;
    if (negative && x === 0n) continue;
    return negative ? -x : x;
  }
}

/**
 * One draw of N_Z(0, σ²), P[Z = z] = e^{−z²/(2σ²)} / Σ_{y∈ℤ} e^{−y²/(2σ²)}, for a rational σ² > 0,
 * exactly (CKS20 Algorithm 3): t = ⌊σ⌋ + 1; Y from the discrete Laplace of scale t, accepted with
 * probability exp(−(|Y| − σ²/t)²/(2σ²)). With σ² = p/q the exponent is the rational
 * (|Y|·q·t − p)² / (2·p·q·t²). The expected number of rounds is below 2 for every σ (their Section 5).
 */
export function sampleDiscreteGaussian(sigmaSquared: Rational, random: RandomSource): bigint {
  const p = sigmaSquared.numerator;
  const q = sigmaSquared.denominator;
  if (p < 1n || q < 1n) throw new RangeError(`Expected a rational σ² > 0 but received ${p}/${q}`);
  const t = integerSqrt(p / q) + 1n; // ⌊√⌊σ²⌋⌋ = ⌊σ⌋
  const gammaDenominator = 2n * p * q * t * t;
  for (;;) {
    const y = sampleDiscreteLaplace(t, random);
    const magnitude = y < 0n ? -y : y;
    const d = magnitude * q * t - p;
    if (sampleBernoulliExp({ numerator: d * d, denominator: gammaDenominator }, random)) return y;
  }
}

// ---------------------------------------------------------------------------------------------------
// Exact sums of the pmf, with rigorous two-sided bounds.

/** Up to this σ the pmf is summed term by term; above it Euler–Maclaurin with a bounded remainder. */
const EXPLICIT_MAX_SIGMA = 2048;
/** Terms summed explicitly reach ⌈TERMS_PER_SIGMA·σ⌉ + 2 past 0: f there is below e^{−84}. */
const TERMS_PER_SIGMA = 13;
const ULP = 2 ** -52;

/** Lower and upper bounds on a non-negative quantity. */
interface Bounds {
  lo: number;
  hi: number;
}

/**
 * Bounds on the tail sums T(n) = Σ_{j≥n} f(j) (any integer n) and on C, for one σ² > 0.
 *
 * σ ≤ 2048: every f(j), 0 ≤ j ≤ J = ⌈13σ⌉ + 2, summed exactly from the smallest up (suffix sums), the
 * rest bounded by a geometric series: f(j+1)/f(j) = e^{−(2j+1)/(2σ²)} ≤ r = e^{−(2J+1)/(2σ²)} for j ≥ J,
 * so Σ_{j>J} f(j) ≤ f(J)·r/(1 − r). Rounding: each suffix sum is within J ulps (relative), paid for.
 *
 * σ > 2048: Euler–Maclaurin to order p = 2 (e.g. Apostol 1999, "An elementary view of Euler's summation
 * formula"): T(n) = ∫_n^∞ f + f(n)/2 − f'(n)/12 + f'''(n)/720 + R with
 * |R| ≤ 2ζ(4)/(2π)⁴ · ∫|f⁗| ≤ 2ζ(4)/(2π)⁴ · √(2π·4!)/σ³ < 0.01706/σ³ (Cauchy–Schwarz on
 * f⁗ = f·He₄(x/σ)/σ⁴, E[He₄²] = 4!), where ∫_n^∞ f = σ√(2π)·Φ̄(n/σ); relative to C ≈ 2.5σ that is
 * below 1e-15 at σ = 2048. C itself by Poisson summation: C = σ√(2π)(1 + 2Σ_{k≥1} e^{−2π²σ²k²}), the
 * correction far below one ulp there. Φ̄ is accurate to a few ulps (./gaussian.ts); 1e-12 relative is paid.
 */
function tailSums(sigmaSquared: number): { tail: (n: number) => Bounds; normaliser: Bounds } {
  const sigma = Math.sqrt(sigmaSquared);
  const f = (j: number): number => Math.exp(-(j * j) / (2 * sigmaSquared));
  if (sigma <= EXPLICIT_MAX_SIGMA) {
    const last = Math.ceil(TERMS_PER_SIGMA * sigma) + 2;
    const suffix = new Float64Array(last + 2); // suffix[j] = Σ_{i=j}^{last} f(i); suffix[last + 1] = 0
    for (let j = last; j >= 0; j--) suffix[j] = suffix[j + 1]! + f(j);
    const ratio = Math.exp(-(2 * last + 1) / (2 * sigmaSquared));
    const remainder = (f(last) * ratio) / (1 - ratio); // bound on Σ_{j>last} f(j)
    const slack = (last + 8) * ULP;
    const beyond = (n: number): Bounds => {
      // n > last: Σ_{j≥n} f(j) ≤ f(n)/(1 − r_n), r_n = e^{−(2n+1)/(2σ²)}.
      const r = Math.exp(-(2 * n + 1) / (2 * sigmaSquared));
      return { lo: 0, hi: (f(n) / (1 - r)) * (1 + 8 * ULP) };
    };
    const nonNegative = (n: number): Bounds =>
      n > last ? beyond(n) : { lo: suffix[n]! * (1 - slack), hi: (suffix[n]! + remainder) * (1 + slack) };
    const normaliser: Bounds = { lo: (2 * suffix[0]! - 1) * (1 - slack), hi: (2 * (suffix[0]! + remainder) - 1) * (1 + slack) };
    const tail = (n: number): Bounds => {
      if (n >= 0) return nonNegative(n);
      // Σ_{j≥n} = C − Σ_{j≤n−1} f(j) = C − T(1 − n) by symmetry.
      const rest = nonNegative(1 - n);
      return { lo: Math.max(0, normaliser.lo - rest.hi), hi: normaliser.hi - rest.lo };
    };
    return { tail, normaliser };
  }
  const root2pi = Math.sqrt(2 * Math.PI);
  const remainder = 0.01706 / (sigma * sigma * sigma);
  const rel = 1e-12;
  const normaliser: Bounds = { lo: sigma * root2pi * (1 - rel), hi: sigma * root2pi * (1 + rel) };
  const tail = (n: number): Bounds => {
    const y = n / sigma;
    const fn = f(n);
    const integral = sigma * root2pi * normalTail(y);
    const value = integral + fn / 2 + (n * fn) / (12 * sigmaSquared) - ((y * y * y - 3 * y) * fn) / (720 * sigma * sigma * sigma);
    return { lo: Math.max(0, value * (1 - rel) - remainder), hi: value * (1 + rel) + remainder };
  };
  return { tail, normaliser };
}

/** One discrete Gaussian release: σ² > 0 (the exact rational value of the double) and integer sensitivity Δ ≥ 1. */
export interface DiscreteGaussianMechanism {
  sigmaSquared: number;
  sensitivity: number;
}

function assertMechanism(sigmaSquared: number, sensitivity: number): void {
  if (typeof sigmaSquared !== 'number' || !(sigmaSquared > 0) || !Number.isFinite(sigmaSquared)) {
    throw new RangeError(`Expected finite number > 0 for sigmaSquared but received ${sigmaSquared}`);
  }
  if (!Number.isSafeInteger(sensitivity) || sensitivity < 1) {
    throw new RangeError(`Expected integer ≥ 1 for sensitivity but received ${sensitivity}`);
  }
}

/**
 * The privacy curve ε ↦ δ(ε) of the discrete Gaussian mechanism M(x) = q(x) + N_Z(0, σ²) for an
 * integer-valued q of sensitivity Δ (σ² > 0 the exact rational value of the double given, Δ integer
 * ≥ 1), under either neighbour order (the two are symmetric). CKS20 Theorem 7:
 *   δ(ε) = P[Z > εσ²/Δ − Δ/2] − e^ε·P[Z > εσ²/Δ + Δ/2],   Z ~ N_Z(0, σ²),
 * i.e. with m = ⌊εσ²/Δ − Δ/2⌋ + 1, δ = (T(m) − e^ε·T(m + Δ))/C. For every integer m the right side is a
 * LOWER bound on δ (it is P(S) − e^ε Q(S) for the set S = {≥ m}), and its maximum over m is δ; so
 * the function takes the largest upper bound over m − 1, m, m + 1, which covers a threshold rounded the
 * wrong way. Each candidate uses the upper bound of T(m), the lower bound of T(m + Δ) and the lower
 * bound of C (see tailSums), with e^ε rounded pessimistically: the result is never below the true δ,
 * and exceeds it by about 1e-15 (relative to the probabilities subtracted) at most. Valid for any
 * real ε (negative ε too, which the PLD construction queries); returns a value in [0, 1].
 */
export function discreteGaussianDeltaCurve({ sigmaSquared, sensitivity }: DiscreteGaussianMechanism): (epsilon: number) => number {
  assertMechanism(sigmaSquared, sensitivity);
  const { tail, normaliser } = tailSums(sigmaSquared);
  return (epsilon: number): number => {
    if (Number.isNaN(epsilon)) return Number.NaN;
    if (epsilon === Infinity) return 0;
    const threshold = (epsilon * sigmaSquared) / sensitivity - sensitivity / 2;
    if (!Number.isFinite(threshold)) return threshold > 0 ? 0 : 1;
    const m = Math.floor(threshold) + 1;
    const expEpsilon = Math.exp(epsilon) * (1 - 4 * ULP);
    let best = 0;
    for (const candidate of [m - 1, m, m + 1]) {
      const upper = tail(candidate).hi - expEpsilon * tail(candidate + sensitivity).lo * (1 - 2 * ULP);
      best = Math.max(best, upper);
    }
    return Math.min(1, (best / normaliser.lo) * (1 + 4 * ULP));
  };
}

/** δ(ε) of one discrete Gaussian release (see discreteGaussianDeltaCurve): σ² > 0, integer Δ ≥ 1, any ε; in [0, 1]. */
export function discreteGaussianDelta({ sigmaSquared, sensitivity, epsilon }: DiscreteGaussianMechanism & { epsilon: number }): number {
  return discreteGaussianDeltaCurve({ sigmaSquared, sensitivity })(epsilon);
}

/**
 * Var[N_Z(0, σ²)] = Σ j² f(j)/C for σ² > 0, summed from the pmf (σ ≤ 2048, to about 1e-12 relative);
 * above that CKS20's bound Var < σ² is returned (by Poisson summation the two differ by a factor
 * 1 − O(σ²e^{−2π²σ²}), far below one ulp). Always ≤ σ².
 */
export function discreteGaussianVariance(sigmaSquared: number): number {
  assertMechanism(sigmaSquared, 1);
  const sigma = Math.sqrt(sigmaSquared);
  if (sigma > EXPLICIT_MAX_SIGMA) return sigmaSquared;
  const last = Math.ceil(TERMS_PER_SIGMA * sigma) + 2;
  let weighted = 0;
  let mass = 0;
  for (let j = last; j >= 1; j--) {
    const term = Math.exp(-(j * j) / (2 * sigmaSquared));
    weighted += j * j * term;
    mass += term;
  }
  return Math.min(sigmaSquared, (2 * weighted) / (1 + 2 * mass));
}

/** Rounds x > 0 up to a double with at most `bits` significant bits (so its exact rational stays small). */
export function roundUpSignificant(x: number, bits = 24): number {
  if (!(x > 0) || !Number.isFinite(x)) throw new RangeError(`Expected finite number > 0 but received ${x}`);
  const scale = 2 ** (bits - 1 - Math.floor(Math.log2(x)));
  const rounded = Math.ceil(x * scale) / scale;
  return rounded >= x ? rounded : (Math.ceil(x * scale) + 1) / scale;
}

export interface DiscreteGaussianCalibration {
  /** σ² of the noise (the exact rational value of this double, ≤ 24 significant bits). */
  sigmaSquared: number;
  /** The δ(ε) bound at the target ε (≤ the target δ). */
  delta: number;
}

/**
 * The smallest σ² (to 1e-6 relative, on the grid of doubles with 24 significant bits) whose δ(ε) bound
 * (discreteGaussianDeltaCurve) at `epsilon` > 0 is ≤ `delta` in (0, 1), for integer sensitivity Δ ≥ 1.
 * Bisection from the continuous Gaussian's σ (Balle & Wang 2018), keeping as the upper end only grid
 * points whose δ bound was computed and met the target: the answer always meets it, whether or not
 * δ(ε) is monotone in σ².
 */
export function calibrateDiscreteGaussian(options: {
  epsilon: number;
  delta: number;
  sensitivity: number;
  initialSigmaSquared: number;
}): DiscreteGaussianCalibration {
  const { epsilon, delta, sensitivity, initialSigmaSquared } = options;
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new RangeError(`Expected finite number > 0 for epsilon but received ${epsilon}`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`Expected number in (0, 1) for delta but received ${delta}`);
  assertMechanism(initialSigmaSquared, sensitivity);
  const deltaAt = (sigmaSquared: number) => discreteGaussianDelta({ sigmaSquared, sensitivity, epsilon });
  let hi = roundUpSignificant(initialSigmaSquared);
  let hiDelta = deltaAt(hi);
  let lo: number;
  if (hiDelta <= delta) {
    lo = hi;
    for (;;) {
      lo = roundUpSignificant(lo / 1.25);
      if (lo < 1e-6) return { sigmaSquared: hi, delta: hiDelta };
      const d = deltaAt(lo);
      if (d > delta) break;
      hi = lo;
      hiDelta = d;
    }
  } else {
    for (;;) {
      lo = hi;
      hi = roundUpSignificant(hi * 1.25);
      if (!Number.isFinite(hi) || hi > 1e300) throw new RangeError(`No σ² reaches δ = ${delta} at ε = ${epsilon}`);
      hiDelta = deltaAt(hi);
      if (hiDelta <= delta) break;
    }
  }
  while (hi - lo > 1e-6 * hi) {
    const mid = roundUpSignificant((lo + hi) / 2);
    if (mid >= hi) break;
    const d = deltaAt(mid);
    if (d <= delta) {
      hi = mid;
      hiDelta = d;
    } else {
      lo = mid;
    }
  }
  return { sigmaSquared: hi, delta: hiDelta };
}
