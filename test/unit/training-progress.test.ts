// training/progress.ts: a job's published progress is a function of the plan, the step and the step
// rate alone — the same figures whatever batches were drawn.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectedSamplesPerStep, publicProgress } from '../../src/training/progress.js';

const dp = { private: true, sampleRate: 2048 / 60000, sampleCount: 60000, epochs: 40, steps: 1172 };
const plain = { private: false, sampleRate: 0, sampleCount: 1000, epochs: 3, steps: 12 };

test('a private training shows epoch = step · q, q · N · steps/s and the ETA from the step rate', () => {
  assert.equal(expectedSamplesPerStep(dp), 2048);
  assert.deepEqual(publicProgress(dp, { step: 586, stepsPerSec: 4, running: true }), {
    epoch: 586 * dp.sampleRate,
    samplesPerSec: 2048 * 4,
    etaSeconds: (1172 - 586) / 4,
  });
  assert.equal(publicProgress(dp, { step: 1172, stepsPerSec: 4, running: false }).etaSeconds, null, 'no ETA once stopped');
});

test('a non-private training shows its fixed batches’ mean size times the step rate, and epochs as a fraction of its steps', () => {
  assert.equal(expectedSamplesPerStep(plain), 250);
  assert.deepEqual(publicProgress(plain, { step: 6, stepsPerSec: 2, running: true }), { epoch: 1.5, samplesPerSec: 500, etaSeconds: 3 });
});

test('without a measured step rate (none yet, 0, or not finite) neither throughput nor ETA is shown', () => {
  for (const stepsPerSec of [null, 0, Number.POSITIVE_INFINITY, Number.NaN]) {
    assert.deepEqual(publicProgress(dp, { step: 0, stepsPerSec, running: true }), { epoch: 0, samplesPerSec: null, etaSeconds: null });
  }
});
