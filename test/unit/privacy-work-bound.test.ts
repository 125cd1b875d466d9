// PLD's work bound (SERVER_PLD_MAX_GRID_POINTS): a PLD grid or FFT over the bound is refused before the
// work is done, and the server's calibration and ledger then use RDP, whose ε is an upper bound too, so
// a plan at a very large ε takes milliseconds instead of holding a pool worker for minutes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createPldAccountant,
  createRdpAccountant,
  PldGridLimitError,
  type PrivacyEvent,
  SERVER_PLD_MAX_GRID_POINTS,
} from '../../src/privacy/accountant.js';
import { composePlds, discreteGaussianPld, gaussianPld, sampledGaussianPld } from '../../src/privacy/analysis/pld.js';
import { calibrateTrainingNoise } from '../../src/privacy/calibration.js';
import { composedEpsilon } from '../../src/privacy/ledger.js';

const DELTA = 1e-5;
const mnist = { sampleRate: 256 / 60_000, steps: 704 }; // 3 epochs of batches of 256 from 60 000 samples
const steps = (noiseMultiplier: number): PrivacyEvent[] => [
  { kind: 'poisson-gaussian', sampleRate: mnist.sampleRate, noiseMultiplier, count: mnist.steps },
];

test('a mechanism whose PLD grid would exceed maxGridPoints is refused with PldGridLimitError before it is built', () => {
  const cases = [
    () => sampledGaussianPld({ sampleRate: 0.01, noiseMultiplier: 0.1, maxGridPoints: 10_000 }),
    () => gaussianPld({ noiseMultiplier: 0.1, maxGridPoints: 10_000 }),
    () => discreteGaussianPld({ sigmaSquared: 0.01, sensitivity: 1, maxGridPoints: 10_000 }),
  ];
  for (const build of cases) {
    assert.throws(build, (err: unknown) => err instanceof PldGridLimitError && err.gridPoints > 10_000 && err.maxGridPoints === 10_000);
  }
  // Within the bound, the same PLD as without one.
  const bounded = sampledGaussianPld({ sampleRate: 0.01, noiseMultiplier: 1, maxGridPoints: 1_000_000 });
  assert.deepEqual(bounded, sampledGaussianPld({ sampleRate: 0.01, noiseMultiplier: 1 }));
});

test('a composition whose FFT would exceed maxGridPoints is refused before the FFT runs', () => {
  const pld = sampledGaussianPld({ sampleRate: 0.01, noiseMultiplier: 1 });
  assert.throws(() => composePlds([{ pld, count: 1000 }], { maxGridPoints: 2 ** 16 }), PldGridLimitError);
  assert.ok(composePlds([{ pld, count: 1000 }], { maxGridPoints: 2 ** 22 }).remove.probs.length > 2 ** 16);
});

test('a bounded PLD accountant gives the same ε as an unbounded one within its bound, and refuses beyond it', () => {
  const events = steps(1);
  const bounded = createPldAccountant({ maxGridPoints: SERVER_PLD_MAX_GRID_POINTS }).epsilon(events, { delta: DELTA });
  assert.equal(bounded, createPldAccountant().epsilon(events, { delta: DELTA }));
  assert.throws(() => createPldAccountant({ maxGridPoints: 2 ** 16 }).epsilon(events, { delta: DELTA }), PldGridLimitError);
  assert.throws(() => createPldAccountant({ maxGridPoints: 1 }), RangeError);
});

test('a PLD calibration at ε = 1000 is done with RDP, whose σ meets the target under RDP and in the ledger', () => {
  const noise = calibrateTrainingNoise({ accountant: 'pld', targetEpsilon: 1000, extraEpsilon: 0, delta: DELTA, ...mnist });
  assert.equal(noise.accountant, 'rdp');
  const rdp = createRdpAccountant().epsilon(steps(noise.noiseMultiplier), { delta: DELTA });
  assert.ok(rdp <= 1000 && rdp > 999, `RDP ε ${rdp}`);
  assert.equal(noise.epsilon, rdp);
  const ledger = composedEpsilon(steps(noise.noiseMultiplier), DELTA);
  assert.deepEqual(ledger, { epsilon: rdp, accountant: 'rdp' }, 'PLD over its bound is skipped; RDP stands alone');
});

test('a PLD calibration whose search meets the bound midway gives way to RDP; within the bound it stays PLD', () => {
  const options = { accountant: 'pld' as const, targetEpsilon: 3, extraEpsilon: 0, delta: DELTA, ...mnist };
  const small = calibrateTrainingNoise({ ...options, maxPldGridPoints: 2 ** 16 });
  assert.equal(small.accountant, 'rdp');
  const usual = calibrateTrainingNoise(options);
  assert.equal(usual.accountant, 'pld');
  assert.ok(usual.noiseMultiplier < small.noiseMultiplier, 'PLD, the tighter, buys the target with less noise');
  assert.equal(calibrateTrainingNoise({ ...options, accountant: 'rdp' }).accountant, 'rdp');
});
