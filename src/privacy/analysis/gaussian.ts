// Special functions the accountants need, in double precision and log space: erfc and log erfc to
// about one ulp over the whole real line (so that tails of e^-1000 stay finite in log space), the
// standard normal tail, and numerically safe log-sum helpers. Everything here is pure and total.

// erfc follows the rational approximations of FreeBSD msun s_erf.c (Sun Microsystems, 1993:
// "Permission to use, copy, modify, and distribute this software is freely granted, provided that this
// notice is preserved"); the coefficients below are that file's. logErfc evaluates the same formula
// without the final exp, so it never underflows.
const erx = 8.45062911510467529297e-1;
const pp0 = 1.28379167095512558561e-1;
const pp1 = -3.2504210724700149937e-1;
const pp2 = -2.84817495755985104766e-2;
const pp3 = -5.77027029648944159157e-3;
const pp4 = -2.37630166566501626084e-5;
const qq1 = 3.97917223959155352819e-1;
const qq2 = 6.50222499887672944485e-2;
const qq3 = 5.08130628187576562776e-3;
const qq4 = 1.32494738004321644526e-4;
const qq5 = -3.9602282787753681232e-6;
const pa0 = -2.36211856075265944077e-3;
const pa1 = 4.14856118683748331666e-1;
const pa2 = -3.72207876035701323847e-1;
const pa3 = 3.18346619901161753674e-1;
const pa4 = -1.10894694282396677476e-1;
const pa5 = 3.54783043256182359371e-2;
const pa6 = -2.166375594868790843e-3;
const qa1 = 1.06420880400844228286e-1;
const qa2 = 5.40397917702171048937e-1;
const qa3 = 7.18286544141962662868e-2;
const qa4 = 1.26171219808761642112e-1;
const qa5 = 1.36370839120290507362e-2;
const qa6 = 1.1984499846799107417e-2;
const ra0 = -9.86494403484714822705e-3;
const ra1 = -6.93858572707181764372e-1;
const ra2 = -1.05586262253232909814e1;
const ra3 = -6.23753324503260060396e1;
const ra4 = -1.62396669462573470355e2;
const ra5 = -1.84605092906711035994e2;
const ra6 = -8.12874355063065934246e1;
const ra7 = -9.81432934416914548592;
const sa1 = 1.96512716674392571292e1;
const sa2 = 1.376577541435190426e2;
const sa3 = 4.34565877475229228821e2;
const sa4 = 6.45387271733267880336e2;
const sa5 = 4.29008140027567833386e2;
const sa6 = 1.08635005541779435134e2;
const sa7 = 6.57024977031928170135;
const sa8 = -6.04244152148580987438e-2;
const rb0 = -9.86494292470009928597e-3;
const rb1 = -7.99283237680523006574e-1;
const rb2 = -1.77579549177547519889e1;
const rb3 = -1.60636384855821916062e2;
const rb4 = -6.37566443368389627722e2;
const rb5 = -1.02509513161107724954e3;
const rb6 = -4.83519191608651397019e2;
const sb1 = 3.03380607434824582924e1;
const sb2 = 3.25792512996573918826e2;
const sb3 = 1.53672958608443695994e3;
const sb4 = 3.19985821950859553908e3;
const sb5 = 2.55305040643316442583e3;
const sb6 = 4.74528541206955367215e2;
const sb7 = -2.24409524465858183362e1;

const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);

/**
 * log(erfc(x)) - the part of erfc(|x|) for |x| ≥ 1.25 that s_erf.c computes as
 * exp(-z² - 0.5625) · exp((z - x)(z + x) + R/S) / x, kept in log space.
 */
function logErfcLarge(ax: number): number {
  if (ax >= 28) {
    // Asymptotic series erfc(x) ~ e^{-x²}/(x√π) · (1 - 1/(2x²) + 3/(4x⁴) - 15/(8x⁶) + 105/(16x⁸));
    // at x ≥ 28 the first omitted term is below 1e-13 of the sum, far below one ulp of the log.
    const s = 1 / (ax * ax);
    return -ax * ax - Math.log(ax) - LOG_SQRT_PI + Math.log1p(s * (-0.5 + s * (0.75 + s * (-1.875 + s * 6.5625))));
  }
  const s = 1 / (ax * ax);
  let r: number;
  let big: number;
  if (ax < 1 / 0.35) {
    r = ra0 + s * (ra1 + s * (ra2 + s * (ra3 + s * (ra4 + s * (ra5 + s * (ra6 + s * ra7))))));
    big = 1 + s * (sa1 + s * (sa2 + s * (sa3 + s * (sa4 + s * (sa5 + s * (sa6 + s * (sa7 + s * sa8)))))));
  } else {
    r = rb0 + s * (rb1 + s * (rb2 + s * (rb3 + s * (rb4 + s * (rb5 + s * rb6)))));
    big = 1 + s * (sb1 + s * (sb2 + s * (sb3 + s * (sb4 + s * (sb5 + s * (sb6 + s * sb7))))));
  }
  // z: ax rounded to single precision, so that z² is exact in double precision (s_erf.c, Note 1).
  const z = Math.fround(ax);
  return -z * z - 0.5625 + ((z - ax) * (z + ax) + r / big) - Math.log(ax);
}

/** The complementary error function erfc(x) = 2/√π ∫_x^∞ e^{-t²} dt, for any real x (0 to 2). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 0.84375) {
    if (ax < 2 ** -56) return 1 - x;
    const z = x * x;
    const r = pp0 + z * (pp1 + z * (pp2 + z * (pp3 + z * pp4)));
    const s = 1 + z * (qq1 + z * (qq2 + z * (qq3 + z * (qq4 + z * qq5))));
    const y = r / s;
    if (x < 0.25) return 1 - (x + x * y);
    return 0.5 - (x * y + (x - 0.5));
  }
  if (ax < 1.25) {
    const s = ax - 1;
    const p = pa0 + s * (pa1 + s * (pa2 + s * (pa3 + s * (pa4 + s * (pa5 + s * pa6)))));
    const q = 1 + s * (qa1 + s * (qa2 + s * (qa3 + s * (qa4 + s * (qa5 + s * qa6)))));
    return x >= 0 ? 1 - erx - p / q : 1 + (erx + p / q);
  }
  if (x < 0) return ax >= 6 ? 2 : 2 - Math.exp(logErfcLarge(ax));
  return Math.exp(logErfcLarge(ax));
}

/** log(erfc(x)) for any real x; finite (about -x²) even where erfc(x) underflows to 0. */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return -Infinity;
  if (x >= 1.25) return logErfcLarge(x);
  if (x > 0.25) return Math.log(erfc(x));
  // erfc(x) ≥ 0.72 here: log1p of -erf keeps full precision.
  return Math.log1p(-erfOfSmallOrNegative(x));
}

/** erf(x) = 1 - erfc(x) for x ≤ 0.25, computed without cancellation where |x| is small. */
function erfOfSmallOrNegative(x: number): number {
  const ax = Math.abs(x);
  if (ax < 0.84375) {
    const z = x * x;
    const r = pp0 + z * (pp1 + z * (pp2 + z * (pp3 + z * pp4)));
    const s = 1 + z * (qq1 + z * (qq2 + z * (qq3 + z * (qq4 + z * qq5))));
    return x + x * (r / s);
  }
  return 1 - erfc(x);
}

/** Standard normal upper tail Φ̄(x) = P(N(0,1) > x) = erfc(x/√2)/2, accurate in relative terms. */
export function normalTail(x: number): number {
  return 0.5 * erfc(x / Math.SQRT2);
}

/** Standard normal CDF Φ(x) = P(N(0,1) ≤ x), accurate in relative terms for x → -∞. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** log Φ̄(x) for any real x (finite for x up to about 1e154). */
export function logNormalTail(x: number): number {
  return Math.log(0.5) + logErfc(x / Math.SQRT2);
}

/** log(e^a + e^b), exact for -∞ arguments. */
export function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const hi = Math.max(a, b);
  const lo = Math.min(a, b);
  return hi + Math.log1p(Math.exp(lo - hi));
}

/**
 * log(e^a - e^b) for a ≥ b; NaN when a < b (the difference would be negative). Same branch structure
 * as Opacus/TF-Privacy `_log_sub`, so series summed with it match theirs term by term.
 */
export function logSub(a: number, b: number): number {
  if (a < b) return NaN;
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  const d = a - b;
  // expm1 overflows past ~709; the difference is then a to within one ulp.
  if (d > 700) return a;
  return Math.log(Math.expm1(d)) + b;
}

/**
 * δ(ε) of the Gaussian mechanism with L2 sensitivity 1 and noise multiplier σ, exactly (Balle & Wang
 * 2018, "Improving the Gaussian Mechanism for Differential Privacy", Theorem 8):
 * δ = Φ(1/(2σ) − εσ) − e^ε Φ(−1/(2σ) − εσ). T compositions of it equal one with σ/√T.
 */
export function analyticGaussianDelta({ noiseMultiplier, epsilon }: { noiseMultiplier: number; epsilon: number }): number {
  const a = 1 / (2 * noiseMultiplier);
  const b = epsilon * noiseMultiplier;
  const delta = normalCdf(a - b) - Math.exp(epsilon + logNormalTail(a + b));
  return Math.min(1, Math.max(0, delta));
}

/** ε(δ) of the same mechanism: the smallest ε ≥ 0 with analyticGaussianDelta ≤ δ (bisection to 1e-12 relative). */
export function analyticGaussianEpsilon({ noiseMultiplier, delta }: { noiseMultiplier: number; delta: number }): number {
  const deltaAt = (epsilon: number) => analyticGaussianDelta({ noiseMultiplier, epsilon });
  if (deltaAt(0) <= delta) return 0;
  let hi = 1;
  while (deltaAt(hi) > delta) hi *= 2;
  let lo = 0;
  while (hi - lo > 1e-12 * hi) {
    const mid = (lo + hi) / 2;
    if (deltaAt(mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi; // the upper end: never under-states ε
}
