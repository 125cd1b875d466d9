// Per-epoch training metrics (training/metrics.ts): where epochs end, the joint noise multiplier the
// ledger is charged, and the release: noise of std σ_m·L·√k on the sum of k steps, divided by k·q·N.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRdpAccountant } from '../../src/privacy/accountant.js';
import { jointNoiseMultiplier as jointMultiplier, companionNoiseMultiplier as metricsMultiplier } from '../../src/privacy/calibration.js';
import { addStep, emptySums, epochEnds, type MetricsSpec, releaseMetric } from '../../src/training/metrics.js';

test('epochs end at ⌈e · steps / epochs⌉; a fractional last epoch ends at the last step', () => {
  assert.deepEqual(epochEnds(30, 3), [10, 20, 30]);
  assert.deepEqual(epochEnds(469, 2), [235, 469]);
  assert.deepEqual(epochEnds(25, 2.5), [10, 20, 25]);
  assert.deepEqual(epochEnds(7, 0.5), [7]);
  assert.deepEqual(epochEnds(3, 3), [1, 2, 3]);
});

test('the joint multiplier is one Gaussian for both releases, and never spends less than either alone', () => {
  assert.ok(Math.abs(jointMultiplier(1, 1) - Math.SQRT1_2) < 1e-15);
  assert.ok(Math.abs(jointMultiplier(3, 4) - 12 / 5) < 1e-15, '1/σ² adds: 1/9 + 1/16 = 25/144');
  const sigma = 1.1;
  const metrics = 8;
  const joint = jointMultiplier(sigma, metrics);
  assert.ok(joint < sigma && joint > 0.98 * sigma, String(joint));
  const rdp = createRdpAccountant();
  const eps = (noiseMultiplier: number) =>
    rdp.epsilon([{ kind: 'poisson-gaussian', sampleRate: 0.01, noiseMultiplier, count: 1000 }], { delta: 1e-5 });
  assert.ok(eps(joint) > eps(sigma) && eps(joint) > eps(metrics));
  assert.ok(Math.abs(metricsMultiplier(sigma, joint) - metrics) < 1e-9, 'metricsMultiplier inverts it');
  assert.ok(Number.isNaN(metricsMultiplier(sigma, sigma)), 'no σ_m reaches a joint σ that is not below σ');
});

test('a noisy release divides the noisy clamped sum by the expected sample count, with std σ_m·L/(B·√k)', () => {
  const spec: MetricsSpec = { kind: 'noisy', lossBound: 4, noiseMultiplier: 2, expectedBatchSize: 10, epochEnds: [3, 6] };
  const sums = emptySums();
  for (const clippedLossSum of [5, 7, 9]) addStep(spec, sums, { samples: 11, lossSum: 100, clippedLossSum });
  let asked = -1;
  const metric = releaseMetric(spec, 3, sums, (std) => {
    asked = std;
    return 1.5;
  });
  assert.equal(asked, 2 * 4 * Math.sqrt(3));
  assert.deepEqual(metric, { epoch: 1, step: 3, steps: 3, meanLoss: (21 + 1.5) / 30, noiseStd: (8 * Math.sqrt(3)) / 30 });
  assert.throws(() => releaseMetric(spec, 4, sums), /ends no epoch/);
  assert.throws(() => releaseMetric(spec, 6, emptySums()), /at least one step/);
});

test('the noise of a release has the stated standard deviation (CSPRNG draws)', () => {
  const spec: MetricsSpec = { kind: 'noisy', lossBound: 1, noiseMultiplier: 1, expectedBatchSize: 1, epochEnds: [1] };
  const n = 20_000;
  let squares = 0;
  let std = 0;
  for (let i = 0; i < n; i += 1) {
    const metric = releaseMetric(spec, 1, { steps: 1, lossSum: 0, samples: 1 });
    squares += metric.meanLoss ** 2;
    std = metric.noiseStd;
  }
  const observed = Math.sqrt(squares / n);
  assert.equal(std, 1);
  assert.ok(Math.abs(observed - 1) < 5 / Math.sqrt(2 * n), `observed std ${observed}`);
});

test('an exact release (non-private training) is the realised mean loss, without noise', () => {
  const spec: MetricsSpec = { kind: 'exact', epochEnds: [2] };
  const sums = emptySums();
  addStep(spec, sums, { samples: 3, lossSum: 6 });
  addStep(spec, sums, { samples: 1, lossSum: 2 });
  assert.deepEqual(releaseMetric(spec, 2, sums), { epoch: 1, step: 2, steps: 2, meanLoss: 2, noiseStd: 0 });
});
