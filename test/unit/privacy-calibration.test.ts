import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { BastionError } from '../../src/errors.js';
import { createPldAccountant, createRdpAccountant, type PrivacyEvent } from '../../src/privacy/accountant.js';
import { calibrateNoiseMultiplier, calibrateTrainingNoise, jointNoiseMultiplier, maxSteps } from '../../src/privacy/calibration.js';
import { testdataPath } from '../helpers/testdata.js';

interface CalibrationVector {
  targetEpsilon: number;
  delta: number;
  q: number;
  steps: number;
  sigma_rdp_dpacc: number;
  sigma_opacus: number;
}
const { calibration } = JSON.parse(readFileSync(testdataPath('accounting', 'vectors.json'), 'utf8')) as {
  calibration: CalibrationVector[];
};

const rdp = createRdpAccountant();
const pld = createPldAccountant();
const event = (sampleRate: number, noiseMultiplier: number, count: number): PrivacyEvent[] => [
  { kind: 'poisson-gaussian', sampleRate, noiseMultiplier, count },
];

test('RDP calibration of all 20 reference cases: σ within 1e-3 relative of dp_accounting’s, and ε(σ) ≤ target', () => {
  let worst = 0;
  for (const c of calibration) {
    const sigma = calibrateNoiseMultiplier({
      accountant: rdp,
      targetEpsilon: c.targetEpsilon,
      delta: c.delta,
      sampleRate: c.q,
      steps: c.steps,
    });
    const deviation = Math.abs(sigma - c.sigma_rdp_dpacc) / c.sigma_rdp_dpacc;
    worst = Math.max(worst, deviation);
    const at = `target ${c.targetEpsilon}, q=${c.q}, T=${c.steps}: σ=${sigma} vs ${c.sigma_rdp_dpacc}`;
    assert.ok(deviation <= 1e-3, at);
    assert.ok(rdp.epsilon(event(c.q, sigma, c.steps), { delta: c.delta }) <= c.targetEpsilon, `${at}: ε above target`);
    // dp_accounting returns a σ within 1e-4 above the root; ours is within 1e-5, so never larger by more.
    assert.ok(sigma <= c.sigma_rdp_dpacc + 1e-5, at);
  }
  assert.ok(worst <= 1e-3, `worst relative deviation ${worst}`);
});

test('PLD calibration meets the target under PLD and needs less noise than RDP', () => {
  // Two cases only: each PLD calibration composes the PLD a dozen times.
  for (const c of calibration.filter((x) => (x.steps === 234 && x.targetEpsilon === 1) || (x.steps === 1000 && x.targetEpsilon === 8))) {
    const sigma = calibrateNoiseMultiplier({
      accountant: pld,
      targetEpsilon: c.targetEpsilon,
      delta: c.delta,
      sampleRate: c.q,
      steps: c.steps,
      tolerance: 1e-3,
      initialNoiseMultiplier: c.sigma_rdp_dpacc,
    });
    assert.ok(pld.epsilon(event(c.q, sigma, c.steps), { delta: c.delta }) <= c.targetEpsilon, `target ${c.targetEpsilon}: σ=${sigma}`);
    assert.ok(sigma < c.sigma_rdp_dpacc, `PLD σ ${sigma} not below RDP σ ${c.sigma_rdp_dpacc}`);
    assert.ok(pld.epsilon(event(c.q, sigma - 2e-3, c.steps), { delta: c.delta }) > c.targetEpsilon, `σ=${sigma} is not the smallest`);
  }
});

test('PLD calibration places its bracket on a 10× coarser grid and judges σ at full precision: the σ of a one-pass search in half the full evaluations', () => {
  const c = { targetEpsilon: 1, delta: 1e-6, sampleRate: 64 / 512, steps: 16 };
  let evaluations = 0;
  const counted = {
    ...pld,
    epsilon: (events: readonly PrivacyEvent[], options: { delta: number }) => (evaluations++, pld.epsilon(events, options)),
  };
  const onePass = calibrateNoiseMultiplier({ ...c, accountant: counted, bracketRatio: 2 });
  const onePassEvaluations = evaluations;
  evaluations = 0;
  const sigma = calibrateNoiseMultiplier({ ...c, accountant: counted });
  assert.ok(
    pld.epsilon(event(c.sampleRate, sigma, c.steps), { delta: c.delta }) <= c.targetEpsilon,
    `σ ${sigma} meets the target at full precision`,
  );
  assert.ok(
    pld.epsilon(event(c.sampleRate, sigma - 2e-5, c.steps), { delta: c.delta }) > c.targetEpsilon,
    `σ ${sigma} is the smallest to 2 tolerances`,
  );
  assert.ok(Math.abs(sigma - onePass) <= 1e-5, `${sigma} vs one pass ${onePass}`);
  assert.ok(evaluations * 2 <= onePassEvaluations, `${evaluations} full-precision evaluations against ${onePassEvaluations}`);
});

test('calibration round-trips: the σ found meets the target and σ − 2·tolerance does not', () => {
  fc.assert(
    fc.property(
      fc.double({ min: 1e-3, max: 0.2, noNaN: true }),
      fc.integer({ min: 1, max: 20_000 }),
      fc.double({ min: 0.3, max: 10, noNaN: true }),
      fc.constantFrom(1e-6, 1e-5),
      (sampleRate, steps, targetEpsilon, delta) => {
        const tolerance = 1e-5;
        const sigma = calibrateNoiseMultiplier({ accountant: rdp, targetEpsilon, delta, sampleRate, steps, tolerance });
        assert.ok(rdp.epsilon(event(sampleRate, sigma, steps), { delta }) <= targetEpsilon);
        assert.ok(rdp.epsilon(event(sampleRate, sigma - 2 * tolerance, steps), { delta }) > targetEpsilon);
      },
    ),
    { numRuns: 15 },
  );
});

test('calibration refuses bad arguments, listing every problem at once', () => {
  assert.throws(
    () => calibrateNoiseMultiplier({ accountant: rdp, targetEpsilon: -1, delta: 2, sampleRate: 0, steps: 1.5 }),
    (error: unknown) => {
      assert.ok(error instanceof BastionError);
      assert.equal(error.code, 'VALIDATION_FAILED');
      assert.deepEqual(
        error.details.errors?.map((e) => e.parameter),
        ['targetEpsilon', 'delta', 'sampleRate', 'steps'],
      );
      assert.match(error.message, /Expected finite number > 0 for targetEpsilon but received -1 of type number/);
      return true;
    },
  );
});

test('calibration refuses a target no σ in range can reach, and returns the least σ allowed when any σ will do', () => {
  assert.throws(
    () =>
      calibrateNoiseMultiplier({ accountant: rdp, targetEpsilon: 1e-3, delta: 1e-5, sampleRate: 1, steps: 1000, maxNoiseMultiplier: 100 }),
    (error: unknown) =>
      error instanceof BastionError && error.code === 'VALIDATION_FAILED' && /No noiseMultiplier up to 100/.test(error.message),
  );
  const sigma = calibrateNoiseMultiplier({
    accountant: rdp,
    targetEpsilon: 1e6,
    delta: 1e-5,
    sampleRate: 1e-3,
    steps: 1,
    minNoiseMultiplier: 0.05,
  });
  assert.equal(sigma, 0.05);
});

test('maxSteps is the largest T with ε(T) ≤ budget (RDP)', () => {
  fc.assert(
    fc.property(
      fc.double({ min: 1e-3, max: 0.1, noNaN: true }),
      fc.double({ min: 0.7, max: 3, noNaN: true }),
      fc.double({ min: 0.5, max: 8, noNaN: true }),
      (sampleRate, noiseMultiplier, epsilonBudget) => {
        const delta = 1e-5;
        const t = maxSteps({ accountant: rdp, sampleRate, noiseMultiplier, delta, epsilonBudget, limit: 1e7 });
        const eps = (steps: number) => rdp.epsilon(event(sampleRate, noiseMultiplier, steps), { delta });
        if (t > 0) assert.ok(eps(t) <= epsilonBudget, `ε(${t}) over budget`);
        if (t < 1e7) assert.ok(eps(t + 1) > epsilonBudget, `ε(${t + 1}) still within budget`);
      },
    ),
    { numRuns: 15 },
  );
});

test('maxSteps returns 0 when one step exceeds the budget, the limit when the budget is ample, and agrees under PLD', () => {
  assert.equal(maxSteps({ accountant: rdp, sampleRate: 0.1, noiseMultiplier: 0.5, delta: 1e-5, epsilonBudget: 0.01 }), 0);
  assert.equal(maxSteps({ accountant: rdp, sampleRate: 1e-3, noiseMultiplier: 50, delta: 1e-5, epsilonBudget: 10, limit: 1000 }), 1000);
  const t = maxSteps({ accountant: pld, sampleRate: 0.01, noiseMultiplier: 1, delta: 1e-5, epsilonBudget: 1 });
  assert.ok(pld.epsilon(event(0.01, 1, t), { delta: 1e-5 }) <= 1);
  assert.ok(pld.epsilon(event(0.01, 1, t + 1), { delta: 1e-5 }) > 1);
  // PLD is tighter than RDP, so it allows at least as many steps.
  assert.ok(t >= maxSteps({ accountant: rdp, sampleRate: 0.01, noiseMultiplier: 1, delta: 1e-5, epsilonBudget: 1 }));
});

test('maxSteps refuses bad arguments, listing every problem at once', () => {
  assert.throws(
    () => maxSteps({ accountant: rdp, sampleRate: 2, noiseMultiplier: 0, delta: 0, epsilonBudget: -1 }),
    (error: unknown) => {
      assert.ok(error instanceof BastionError);
      assert.deepEqual(
        error.details.errors?.map((e) => e.parameter),
        ['delta', 'sampleRate', 'noiseMultiplier', 'epsilonBudget'],
      );
      return true;
    },
  );
});

test('a second release from the same batches: σ stays as without it, the joint σ spends target + extra, σ₂ completes it', () => {
  const base = { accountant: 'rdp' as const, targetEpsilon: 3, delta: 1e-5, sampleRate: 256 / 60000, steps: 703 };
  const alone = calibrateTrainingNoise({ ...base, extraEpsilon: 0 });
  assert.equal(alone.extraNoiseMultiplier, null);
  assert.equal(alone.chargedNoiseMultiplier, alone.noiseMultiplier);
  assert.equal(alone.epsilonTotal, alone.epsilon);
  const both = calibrateTrainingNoise({ ...base, extraEpsilon: 0.5 });
  assert.equal(both.noiseMultiplier, alone.noiseMultiplier);
  assert.ok(both.epsilonTotal <= 3.5 && both.epsilonTotal > 3.49, String(both.epsilonTotal));
  assert.ok(Math.abs(jointNoiseMultiplier(both.noiseMultiplier, both.extraNoiseMultiplier!) - both.chargedNoiseMultiplier) < 1e-12);
  // Calibrating σ₂ to 0.5 alone and composing as if independent would charge about 3.02, but the two
  // share each batch: that same σ₂ is really worth far more next to σ.
  const independent = calibrateNoiseMultiplier({
    accountant: createRdpAccountant(),
    targetEpsilon: 0.5,
    delta: 1e-5,
    sampleRate: base.sampleRate,
    steps: base.steps,
  });
  assert.ok(independent < both.extraNoiseMultiplier!, `${independent} < ${both.extraNoiseMultiplier}`);
  assert.throws(() => calibrateTrainingNoise({ ...base, extraEpsilon: 1e-12 }), /extraEpsilon/);
});
