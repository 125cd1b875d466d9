// Poisson sampling of private training, from the CSPRNG: each sample is included independently with
// probability q. Tested statistically on which indices each step used, read through a model whose loss
// is NaN for every sample (log_of_linear.pt): every sampled index is then dropped and reported, so
// step.dropped.nonFiniteLoss is exactly the step's batch. A sampler biased by more than a fraction of a
// percent, or whose inclusions depend on the index or on the previous step, fails these bounds.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Trainer, type TrainerConfig, type TrainingData } from '../../src/native.js';
import { normalCdf } from '../../src/privacy/analysis/gaussian.js';
import { prng } from '../helpers/prng.js';
import { trainerFixtures } from '../helpers/trainer-fixtures.js';

function data(n: number): TrainingData {
  const random = prng(7);
  const x = Float32Array.from({ length: n * 6 }, () => random() * 2 - 1);
  return { inputs: [{ dtype: 'F32', shape: [n, 6], data: x }], labels: { dtype: 'I64', shape: [n], data: new BigInt64Array(n) } };
}

const config = (sampleRate: number): TrainerConfig => ({
  mode: 'private',
  loss: { kind: 'cross_entropy' },
  optimizer: { type: 'sgd', learningRate: 0.1 },
  sampleRate,
  noiseMultiplier: 0,
  maxGradNorm: 1,
});

/** The batches of `steps` steps, as sorted index lists. */
async function batches(n: number, q: number, steps: number): Promise<number[][]> {
  const fx = await trainerFixtures();
  const trainer = Trainer.create(fx.bytes('log_of_linear.pt'), data(n), config(q));
  const out: number[][] = [];
  for (let s = 0; s < steps; s += 1) {
    const step = trainer.step();
    assert.equal(step.dropped.nonFiniteLoss.length, step.samples, 'every sampled index is reported');
    out.push(step.dropped.nonFiniteLoss);
  }
  return out;
}

/** Two-sided p-value of a standard normal statistic. */
const pValue = (z: number) => 2 * (1 - normalCdf(Math.abs(z)));

test('each index is included with probability q: per-index counts against Binomial(T, q), χ² over indices, and the total', async () => {
  const n = 100;
  const q = 0.3;
  const steps = 1000;
  const seen = await batches(n, q, steps);
  const counts = new Array<number>(n).fill(0);
  for (const batch of seen) {
    for (let i = 1; i < batch.length; i += 1) assert.ok(batch[i - 1]! < batch[i]!, 'ascending, no repeats');
    for (const index of batch) counts[index]! += 1;
  }
  const mean = steps * q;
  const sd = Math.sqrt(steps * q * (1 - q));
  // Each count is Binomial(1000, 0.3) (sd 14.5): 6 sd bounds every one of the 100 at p ≈ 2e-7 overall.
  for (let i = 0; i < n; i += 1)
    assert.ok(Math.abs(counts[i]! - mean) < 6 * sd, `index ${i} included ${counts[i]} times, expected ${mean} ± ${sd.toFixed(1)}`);
  // Σ ((c_i − Tq)/sd)² is χ² with n degrees of freedom (approximately normal: mean n, variance 2n).
  const chi2 = counts.reduce((sum, c) => sum + ((c - mean) / sd) ** 2, 0);
  assert.ok(pValue((chi2 - n) / Math.sqrt(2 * n)) > 1e-6, `χ² = ${chi2.toFixed(1)} over ${n} indices`);
  // The total is Binomial(n·T, q) (sd 145 in 30 000): a bias of 0.01 in q would be 7 standard errors.
  const total = counts.reduce((a, b) => a + b, 0);
  const z = (total - n * steps * q) / Math.sqrt(n * steps * q * (1 - q));
  assert.ok(pValue(z) > 1e-6, `total ${total}, z = ${z.toFixed(2)}`);
  // Batch sizes are Binomial(n, q): their variance n·q·(1 − q) = 21.
  const sizes = seen.map((b) => b.length);
  const sizeMean = sizes.reduce((a, b) => a + b, 0) / steps;
  const sizeVariance = sizes.reduce((a, b) => a + (b - sizeMean) ** 2, 0) / (steps - 1);
  assert.ok(sizeVariance > 21 * 0.8 && sizeVariance < 21 * 1.25, `batch size variance ${sizeVariance.toFixed(1)}`);
});

test('inclusions are independent across indices and steps: co-inclusion of neighbours and of one index in consecutive steps is q²', async () => {
  const n = 100;
  const q = 0.3;
  const steps = 1000;
  const seen = (await batches(n, q, steps)).map((b) => new Set(b));
  let neighbours = 0;
  let consecutive = 0;
  for (let s = 0; s < steps; s += 1) {
    for (let i = 0; i < n; i += 1) {
      if (!seen[s]!.has(i)) continue;
      if (i + 1 < n && seen[s]!.has(i + 1)) neighbours += 1;
      if (s + 1 < steps && seen[s + 1]!.has(i)) consecutive += 1;
    }
  }
  const check = (observed: number, pairs: number, what: string) => {
    const z = (observed - pairs * q * q) / Math.sqrt(pairs * q * q * (1 - q * q));
    assert.ok(pValue(z) > 1e-6, `${what}: ${observed} of ${pairs}, z = ${z.toFixed(2)}`);
  };
  check(neighbours, steps * (n - 1), 'neighbours in one step');
  check(consecutive, (steps - 1) * n, 'one index in consecutive steps');
});

test('a small q is not rounded away: q = 0.002 over 200 000 draws', async () => {
  const n = 400;
  const q = 0.002;
  const steps = 500;
  const total = (await batches(n, q, steps)).reduce((sum, b) => sum + b.length, 0);
  const z = (total - n * steps * q) / Math.sqrt(n * steps * q * (1 - q));
  assert.ok(pValue(z) > 1e-6, `total ${total} of expected ${n * steps * q}, z = ${z.toFixed(2)}`);
});
