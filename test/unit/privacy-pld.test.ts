import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { createPldAccountant, createRdpAccountant, type PrivacyEvent } from '../../src/privacy/accountant.js';
import { fft, inverseFft, nextPowerOfTwo } from '../../src/privacy/analysis/fft.js';
import { composePlds, discretePldDelta, discretePldEpsilon, gaussianPld, pldDelta, pldEpsilon, sampledGaussianPld } from '../../src/privacy/analysis/pld.js';
import { prng } from '../helpers/prng.js';
import { testdataPath } from '../helpers/testdata.js';

// ---------------------------------------------------------------------------------------------------
// reference data (see test/data/accounting/README.md for every field and tolerance)

interface GridVector {
  q: number;
  sigma: number;
  steps: number;
  delta: number;
  eps_pld_dpacc: number;
  eps_pld_dpacc_optimistic: number;
  eps_rdp_dpacc: number;
}
interface GaussianVector {
  sigma: number;
  steps: number;
  delta: number;
  eps_exact_dpacc: number;
  eps_pld_dpacc: number;
}
interface HeterogeneousVector {
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

const step = (q: number, sigma: number, count: number): PrivacyEvent =>
  q === 1 ? { kind: 'gaussian', noiseMultiplier: sigma, count } : { kind: 'poisson-gaussian', sampleRate: q, noiseMultiplier: sigma, count };

const pld = createPldAccountant();

/** The README's PLD rule: ≤ 1.01·ref, ≥ ref − max(0.01·ref, 0.004), and never below the optimistic estimate. */
function assertPldTolerance(epsilon: number, ref: number, optimistic: number | undefined, at: string): void {
  assert.ok(epsilon <= 1.01 * ref, `${at}: ε=${epsilon} above 1.01 × dp_accounting ${ref}`);
  assert.ok(epsilon >= ref - Math.max(0.01 * ref, 0.004), `${at}: ε=${epsilon} below dp_accounting ${ref} by more than its discretization error`);
  if (optimistic !== undefined) assert.ok(epsilon >= optimistic, `${at}: ε=${epsilon} below the optimistic lower estimate ${optimistic}`);
}

// ---------------------------------------------------------------------------------------------------
// FFT

test('fft matches a direct DFT and inverseFft undoes it', () => {
  const random = prng(7);
  for (const n of [1, 2, 8, 64]) {
    const re = Float64Array.from({ length: n }, () => random() - 0.5);
    const im = Float64Array.from({ length: n }, () => random() - 0.5);
    const [re0, im0] = [re.slice(), im.slice()];
    fft(re, im);
    for (let k = 0; k < n; k++) {
      let sr = 0;
      let si = 0;
      for (let j = 0; j < n; j++) {
        const angle = (-2 * Math.PI * j * k) / n;
        sr += re0[j]! * Math.cos(angle) - im0[j]! * Math.sin(angle);
        si += re0[j]! * Math.sin(angle) + im0[j]! * Math.cos(angle);
      }
      assert.ok(Math.abs(re[k]! - sr) < 1e-12 && Math.abs(im[k]! - si) < 1e-12, `n=${n} k=${k}`);
    }
    inverseFft(re, im);
    for (let j = 0; j < n; j++) assert.ok(Math.abs(re[j]! - re0[j]!) < 1e-14 && Math.abs(im[j]! - im0[j]!) < 1e-14);
  }
  assert.equal(nextPowerOfTwo(1), 1);
  assert.equal(nextPowerOfTwo(1025), 2048);
  assert.throws(() => fft(new Float64Array(3), new Float64Array(3)), /power of two/);
});

// ---------------------------------------------------------------------------------------------------
// reference vectors

// Subset (to keep this file near 10 s): σ ≥ 0.7 with T ≤ 1000 and q ≤ 0.05, T ≤ 10000 and q ≤ 0.01,
// or T ≤ 100 and σ ≥ 1. Every other grid vector (T ≤ 100000) also meets the rule, checked outside
// the test suite: their composed losses span 2^21–2^24 grid points and take 0.3–8 s each.
const inSubset = (v: GridVector): boolean =>
  v.sigma >= 0.7 && ((v.steps <= 1000 && v.q <= 0.05) || (v.steps <= 10_000 && v.q <= 0.01) || (v.steps <= 100 && v.sigma >= 1));
const gridSubset = data.vectors.filter(inSubset);

test(`PLD ε of ${gridSubset.length} grid vectors meets the README rule against dp_accounting`, () => {
  assert.ok(gridSubset.length >= 150, `${gridSubset.length} vectors`);
  let worstAbove = -Infinity;
  let worstBelow = -Infinity;
  for (const v of gridSubset) {
    const epsilon = pld.epsilon([step(v.q, v.sigma, v.steps)], { delta: v.delta });
    worstAbove = Math.max(worstAbove, epsilon / v.eps_pld_dpacc - 1);
    worstBelow = Math.max(worstBelow, 1 - epsilon / v.eps_pld_dpacc);
    assertPldTolerance(epsilon, v.eps_pld_dpacc, v.eps_pld_dpacc_optimistic, `q=${v.q} σ=${v.sigma} T=${v.steps} δ=${v.delta}`);
    assert.ok(epsilon <= v.eps_rdp_dpacc, 'PLD is never looser than RDP');
  }
  // The same discretization as dp_accounting lands on its value, far inside the 1% band.
  assert.ok(worstAbove < 1e-6 && worstBelow < 1e-6, `worst relative deviation above ${worstAbove}, below ${worstBelow}`);
});

// Left out for time: σ ≤ 1 with T ≥ 100 (8 cases; composed losses over 2^23 grid points, 1–3 s each).
// They also meet the rule when run by hand.
const gaussianSubset = data.gaussian.filter((g) => !(g.sigma <= 1 && g.steps >= 100));

test(`plain Gaussian releases (${gaussianSubset.length} of 48 cases): PLD ε within 1e-3 relative of the exact ε and never below it`, () => {
  for (const g of gaussianSubset) {
    const epsilon = pld.epsilon([{ kind: 'gaussian', noiseMultiplier: g.sigma, count: g.steps }], { delta: g.delta });
    const at = `σ=${g.sigma} T=${g.steps} δ=${g.delta}: ε=${epsilon} vs exact ${g.eps_exact_dpacc}`;
    assert.ok(epsilon >= g.eps_exact_dpacc * (1 - 1e-11), at);
    assert.ok(epsilon <= g.eps_exact_dpacc * (1 + 1e-3), at);
    assertPldTolerance(epsilon, g.eps_pld_dpacc, undefined, at);
  }
});

test('heterogeneous compositions (6 cases) meet the PLD rule', () => {
  for (const h of data.heterogeneous) {
    const epsilon = pld.epsilon(
      h.parts.map((p) => step(p.q, p.sigma, p.steps)),
      { delta: h.delta },
    );
    assertPldTolerance(epsilon, h.eps_pld_dpacc, undefined, JSON.stringify(h.parts));
    assert.ok(epsilon <= h.eps_rdp_dpacc);
  }
});

// ---------------------------------------------------------------------------------------------------
// structure of the discretized PLDs

test('each PLD is a sub-probability measure whose hockey-stick curve bounds the mechanism from above', () => {
  const { remove, add } = sampledGaussianPld({ sampleRate: 0.01, noiseMultiplier: 1 });
  for (const d of [remove, add]) {
    const total = d.probs.reduce((a, b) => a + b, 0) + d.infinityMass;
    // Never short of 1; slightly over where rounding noise in δ ≈ 1 (far-negative losses of the add
    // direction) gives negative second differences that are clipped to 0 (pessimistic).
    assert.ok(total >= 1 - 1e-12 && total <= 1 + 1e-6, `total mass ${total}`);
    assert.ok(d.probs.every((p) => p >= 0));
  }
  // Connect-the-dots interpolates the exact δ at grid points and dominates it between them; compare
  // with a one-step PLD at a 10× finer grid (a closer upper bound).
  const fine = sampledGaussianPld({ sampleRate: 0.01, noiseMultiplier: 1, valueDiscretizationInterval: 1e-5 });
  for (const epsilon of [0, 0.00015, 0.01, 0.05, 0.3]) {
    assert.ok(pldDelta({ remove, add }, { epsilon }) >= pldDelta(fine, { epsilon }) * (1 - 1e-9), `ε=${epsilon}`);
  }
});

test('the Gaussian PLD is one symmetric distribution; q = 1 gives the same PLD', () => {
  const g = gaussianPld({ noiseMultiplier: 2 });
  assert.equal(g.add, g.remove);
  const viaSampled = sampledGaussianPld({ sampleRate: 1, noiseMultiplier: 2 });
  assert.deepEqual([...viaSampled.remove.probs], [...g.remove.probs]);
});

test('δ(ε) and ε(δ) are inverse on a composed PLD', () => {
  const composed = composePlds([{ pld: sampledGaussianPld({ sampleRate: 0.02, noiseMultiplier: 1.1 }), count: 300 }]);
  for (const delta of [1e-7, 1e-5, 1e-3]) {
    const epsilon = pldEpsilon(composed, { delta });
    const back = pldDelta(composed, { epsilon });
    assert.ok(Math.abs(back - delta) <= 1e-9 * delta, `δ=${delta}: ε=${epsilon} gives back ${back}`);
    // Both directions: ε is the worse one's.
    assert.equal(epsilon, Math.max(discretePldEpsilon(composed.remove, { delta }), discretePldEpsilon(composed.add, { delta })));
    assert.ok(discretePldDelta(composed.remove, { epsilon }) <= delta * (1 + 1e-9));
  }
});

test('infinite-loss mass above δ makes ε infinite', () => {
  const pmf = { valueDiscretizationInterval: 1e-4, lowerIndex: 0, probs: Float64Array.of(0.5), infinityMass: 0.5 };
  assert.equal(discretePldEpsilon(pmf, { delta: 0.1 }), Infinity);
  assert.equal(discretePldDelta(pmf, { epsilon: 3 }), 0.5);
});

// ---------------------------------------------------------------------------------------------------
// properties (kept small: each case composes a PLD by FFT)

const qArb = fc.double({ min: 1e-3, max: 0.05, noNaN: true });
const sigmaArb = fc.double({ min: 0.8, max: 4, noNaN: true });

test('ε grows with steps and with the sampling rate, and falls with the noise multiplier', () => {
  fc.assert(
    fc.property(qArb, sigmaArb, fc.integer({ min: 1, max: 500 }), fc.double({ min: 1.05, max: 2, noNaN: true }), (q, sigma, steps, factor) => {
      const delta = 1e-5;
      const eps = (qq: number, s: number, t: number) => pld.epsilon([step(qq, s, t)], { delta });
      const base = eps(q, sigma, steps);
      assert.ok(eps(q, sigma, Math.ceil(steps * factor)) >= base, 'more steps');
      assert.ok(eps(q * factor, sigma, steps) >= base, 'larger q');
      assert.ok(eps(q, sigma * factor, steps) <= base, 'larger σ');
    }),
    { numRuns: 6 },
  );
});

test('composing events one by one equals composing them at once, within the discretization', () => {
  const rdp = createRdpAccountant();
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.option(qArb, { nil: 1 }), fc.double({ min: 1.5, max: 6, noNaN: true }), fc.integer({ min: 1, max: 200 })), { minLength: 1, maxLength: 3 }),
      (parts) => {
        const delta = 1e-5;
        const events = parts.map(([q, s, t]) => step(q, s, t));
        const once = pld.epsilon(events, { delta });
        const split = pld.epsilon(
          parts.flatMap(([q, s, t]) => [step(q, s, Math.ceil(t / 2)), step(q, s, t - Math.ceil(t / 2))]),
          { delta },
        );
        const reversed = pld.epsilon([...events].reverse(), { delta });
        const slack = Math.max(1e-6 * once, 1e-9);
        assert.ok(Math.abs(split - once) <= slack, `split ${split} vs ${once}`);
        assert.ok(Math.abs(reversed - once) <= slack, `reversed ${reversed} vs ${once}`);
        assert.ok(once <= rdp.epsilon(events, { delta }) * (1 + 1e-9), 'PLD ≤ RDP');
      },
    ),
    { numRuns: 6 },
  );
});
