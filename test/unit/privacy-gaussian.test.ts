// The analytic Gaussian mechanism (Balle & Wang 2018): exact ε(δ) against dp_accounting's
// get_epsilon_gaussian, and the calibration evaluations use, which must meet its target.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createPldAccountant } from '../../src/privacy/accountant.js';
import { analyticGaussianDelta, analyticGaussianEpsilon } from '../../src/privacy/analysis/gaussian.js';
import { calibrateGaussianNoiseMultiplier } from '../../src/privacy/calibration.js';
import { testdataPath } from '../helpers/testdata.js';

interface GaussianVector {
  sigma: number;
  steps: number;
  delta: number;
  eps_exact_dpacc: number;
}
const vectors = (JSON.parse(readFileSync(testdataPath('accounting', 'vectors.json'), 'utf8')) as { gaussian: GaussianVector[] }).gaussian;

test('analytic Gaussian ε equals dp_accounting’s exact value for every Gaussian vector (T releases = one at σ/√T)', () => {
  assert.ok(vectors.length >= 40);
  let worst = 0;
  for (const v of vectors) {
    const epsilon = analyticGaussianEpsilon({ noiseMultiplier: v.sigma / Math.sqrt(v.steps), delta: v.delta });
    const relative = Math.abs(epsilon - v.eps_exact_dpacc) / v.eps_exact_dpacc;
    worst = Math.max(worst, relative);
    assert.ok(relative < 1e-6, `σ ${v.sigma} T ${v.steps} δ ${v.delta}: ${epsilon} vs ${v.eps_exact_dpacc}`);
  }
  assert.ok(worst < 1e-6);
});

test('the calibrated σ meets the target exactly, a slightly smaller one does not, and PLD agrees within its discretization', () => {
  for (const [targetEpsilon, delta, releases] of [
    [0.5, 1e-5, 1],
    [1, 1e-6, 1],
    [3, 1e-5, 10],
    [50, 1e-5, 1],
  ] as const) {
    const sigma = calibrateGaussianNoiseMultiplier({ targetEpsilon, delta, releases });
    const effective = sigma / Math.sqrt(releases);
    assert.ok(analyticGaussianDelta({ noiseMultiplier: effective, epsilon: targetEpsilon }) <= delta);
    assert.ok(analyticGaussianDelta({ noiseMultiplier: effective * (1 - 1e-6), epsilon: targetEpsilon }) > delta);
    const pld = createPldAccountant().epsilon([{ kind: 'gaussian', noiseMultiplier: sigma, count: releases }], { delta });
    assert.ok(pld >= targetEpsilon * (1 - 1e-6) && pld <= targetEpsilon * 1.002, `PLD ε ${pld} for target ${targetEpsilon}`);
  }
  assert.throws(() => calibrateGaussianNoiseMultiplier({ targetEpsilon: 0, delta: 1e-5 }), /targetEpsilon/);
});
