// The PLD accountant's reference vectors (test/data/accounting/vectors.json, from Google's dp_accounting) and the
// README's tolerance rule, shared by the unit tier's representative subset (test/unit/privacy-pld.test.ts) and the
// slow tier's grid (test/slow/privacy-pld-grid.test.ts), so both hold ε to the same rule.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createPldAccountant, type PrivacyEvent } from '../../src/privacy/accountant.js';
import { testdataPath } from './testdata.js';

export interface GridVector {
  q: number;
  sigma: number;
  steps: number;
  delta: number;
  eps_pld_dpacc: number;
  eps_pld_dpacc_optimistic: number;
  eps_rdp_dpacc: number;
}
export interface GaussianVector {
  sigma: number;
  steps: number;
  delta: number;
  eps_exact_dpacc: number;
  eps_pld_dpacc: number;
}
export interface HeterogeneousVector {
  parts: { q: number; sigma: number; steps: number }[];
  delta: number;
  eps_pld_dpacc: number;
  eps_rdp_dpacc: number;
}
const data = JSON.parse(readFileSync(testdataPath('accounting', 'vectors.json'), 'utf8')) as {
  vectors: GridVector[];
  gaussian: GaussianVector[];
  heterogeneous: HeterogeneousVector[];
};

/**
 * The grid vectors the slow tier checks: σ ≥ 0.7 with T ≤ 1000 and q ≤ 0.05, T ≤ 10000 and q ≤ 0.01, or T ≤ 100
 * and σ ≥ 1 (173 vectors, about 13 s). Every other grid vector (T ≤ 100000) also meets the rule, checked outside
 * the test suite: their composed losses span 2^21–2^24 grid points and take 0.3–8 s each.
 */
export const gridVectors = data.vectors.filter(
  (v) => v.sigma >= 0.7 && ((v.steps <= 1000 && v.q <= 0.05) || (v.steps <= 10_000 && v.q <= 0.01) || (v.steps <= 100 && v.sigma >= 1)),
);

/**
 * The plain Gaussian cases (q = 1) the slow tier checks: all 48 but σ ≤ 1 with T ≥ 100 (8 cases; composed losses
 * over 2^23 grid points, 1–3 s each). They also meet the rule when run by hand.
 */
export const gaussianVectors = data.gaussian.filter((g) => !(g.sigma <= 1 && g.steps >= 100));

/** The compositions of different events (6 cases). */
export const heterogeneousVectors = data.heterogeneous;

/** One event of `count` steps; q = 1 is the plain Gaussian mechanism. */
export const step = (q: number, sigma: number, count: number): PrivacyEvent =>
  q === 1
    ? { kind: 'gaussian', noiseMultiplier: sigma, count }
    : { kind: 'poisson-gaussian', sampleRate: q, noiseMultiplier: sigma, count };

const pld = createPldAccountant();

/** The README's PLD rule: ≤ 1.01·ref, ≥ ref − max(0.01·ref, 0.004), and never below the optimistic estimate. */
export function assertPldTolerance(epsilon: number, ref: number, optimistic: number | undefined, at: string): void {
  assert.ok(epsilon <= 1.01 * ref, `${at}: ε=${epsilon} above 1.01 × dp_accounting ${ref}`);
  assert.ok(
    epsilon >= ref - Math.max(0.01 * ref, 0.004),
    `${at}: ε=${epsilon} below dp_accounting ${ref} by more than its discretization error`,
  );
  if (optimistic !== undefined) assert.ok(epsilon >= optimistic, `${at}: ε=${epsilon} below the optimistic lower estimate ${optimistic}`);
}

/** Asserts the PLD ε of each grid vector meets the rule, is never looser than RDP, and lands on dp_accounting's value. */
export function assertGridVectors(vectors: readonly GridVector[]): void {
  let worstAbove = -Infinity;
  let worstBelow = -Infinity;
  for (const v of vectors) {
    const epsilon = pld.epsilon([step(v.q, v.sigma, v.steps)], { delta: v.delta });
    worstAbove = Math.max(worstAbove, epsilon / v.eps_pld_dpacc - 1);
    worstBelow = Math.max(worstBelow, 1 - epsilon / v.eps_pld_dpacc);
    assertPldTolerance(epsilon, v.eps_pld_dpacc, v.eps_pld_dpacc_optimistic, `q=${v.q} σ=${v.sigma} T=${v.steps} δ=${v.delta}`);
    assert.ok(epsilon <= v.eps_rdp_dpacc, 'PLD is never looser than RDP');
  }
  // The same discretization as dp_accounting lands on its value, far inside the 1% band.
  assert.ok(worstAbove < 1e-6 && worstBelow < 1e-6, `worst relative deviation above ${worstAbove}, below ${worstBelow}`);
}

/** Asserts the PLD ε of each plain Gaussian case is within 1e-3 relative of the exact ε, never below it, and meets the rule. */
export function assertGaussianVectors(cases: readonly GaussianVector[]): void {
  for (const g of cases) {
    const epsilon = pld.epsilon([{ kind: 'gaussian', noiseMultiplier: g.sigma, count: g.steps }], { delta: g.delta });
    const at = `σ=${g.sigma} T=${g.steps} δ=${g.delta}: ε=${epsilon} vs exact ${g.eps_exact_dpacc}`;
    assert.ok(epsilon >= g.eps_exact_dpacc * (1 - 1e-11), at);
    assert.ok(epsilon <= g.eps_exact_dpacc * (1 + 1e-3), at);
    assertPldTolerance(epsilon, g.eps_pld_dpacc, undefined, at);
  }
}

/** Asserts the PLD ε of each composition meets the rule and is never looser than RDP. */
export function assertHeterogeneousVectors(cases: readonly HeterogeneousVector[]): void {
  for (const h of cases) {
    const epsilon = pld.epsilon(
      h.parts.map((p) => step(p.q, p.sigma, p.steps)),
      { delta: h.delta },
    );
    assertPldTolerance(epsilon, h.eps_pld_dpacc, undefined, JSON.stringify(h.parts));
    assert.ok(epsilon <= h.eps_rdp_dpacc);
  }
}
