import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createPldAccountant, createRdpAccountant } from '../../src/privacy/accountant.js';
import { fft, inverseFft, nextPowerOfTwo } from '../../src/privacy/analysis/fft.js';
import {
  composePlds,
  discretePldDelta,
  discretePldEpsilon,
  gaussianPld,
  pldDelta,
  pldEpsilon,
  sampledGaussianPld,
} from '../../src/privacy/analysis/pld.js';
import {
  assertGaussianVectors,
  assertGridVectors,
  assertHeterogeneousVectors,
  gaussianVectors,
  gridVectors,
  heterogeneousVectors,
  step,
} from '../helpers/pld-vectors.js';
import { prng } from '../helpers/prng.js';

const pld = createPldAccountant();

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
// reference vectors: a representative subset (see test/data/accounting/README.md for every field and
// tolerance); test/slow/privacy-pld-grid.test.ts checks the whole grid under the same rule

// Every q, σ, T and δ of the grid, at its cheap corners: one step, σ = 4, or σ ≥ 2 with T ≤ 10 (about 1 s).
const gridSample = gridVectors.filter((v) => v.steps === 1 || v.sigma === 4 || (v.sigma >= 2 && v.steps <= 10));

test(`PLD ε of ${gridSample.length} grid vectors, spanning every q, σ, T and δ of the grid, meets the README rule`, () => {
  for (const key of ['q', 'sigma', 'steps', 'delta'] as const) {
    assert.deepEqual(new Set(gridSample.map((v) => v[key])), new Set(gridVectors.map((v) => v[key])), `the sample spans every ${key}`);
  }
  assertGridVectors(gridSample);
});

test('plain Gaussian releases of one step (every σ and δ): PLD ε within 1e-3 relative of the exact ε and never below it', () => {
  const oneStep = gaussianVectors.filter((g) => g.steps === 1);
  assert.ok(oneStep.length >= 10, `${oneStep.length} cases`);
  assertGaussianVectors(oneStep);
});

test('a composition of a subsampled and a plain Gaussian event meets the PLD rule', () => {
  const mixed = heterogeneousVectors.filter(
    (h) => h.parts.length === 2 && h.parts.some((p) => p.q === 1) && h.parts.every((p) => p.steps <= 1000),
  );
  assert.equal(mixed.length, 1);
  assertHeterogeneousVectors(mixed);
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
    fc.property(
      qArb,
      sigmaArb,
      fc.integer({ min: 1, max: 500 }),
      fc.double({ min: 1.05, max: 2, noNaN: true }),
      (q, sigma, steps, factor) => {
        const delta = 1e-5;
        const eps = (qq: number, s: number, t: number) => pld.epsilon([step(qq, s, t)], { delta });
        const base = eps(q, sigma, steps);
        assert.ok(eps(q, sigma, Math.ceil(steps * factor)) >= base, 'more steps');
        assert.ok(eps(q * factor, sigma, steps) >= base, 'larger q');
        assert.ok(eps(q, sigma * factor, steps) <= base, 'larger σ');
      },
    ),
    { numRuns: 6 },
  );
});

test('composing events one by one equals composing them at once, within the discretization', () => {
  const rdp = createRdpAccountant();
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.option(qArb, { nil: 1 }), fc.double({ min: 1.5, max: 6, noNaN: true }), fc.integer({ min: 1, max: 200 })), {
        minLength: 1,
        maxLength: 3,
      }),
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
