import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gaussianNoise } from '../../src/privacy/noise.js';

test('gaussianNoise draws N(0, std²) from the OS CSPRNG: mean 0 and the asked std over many draws', () => {
  const n = 40_000;
  const std = 3;
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < n; i += 1) {
    const x = gaussianNoise(std);
    sum += x;
    squares += x * x;
  }
  const mean = sum / n;
  const observed = Math.sqrt(squares / n - mean * mean);
  // 5 standard errors: mean's is std/√n = 0.015; the sample std's is about std/√(2n) = 0.0106.
  assert.ok(Math.abs(mean) < 5 * (std / Math.sqrt(n)), `mean ${mean}`);
  assert.ok(Math.abs(observed - std) < 5 * (std / Math.sqrt(2 * n)), `std ${observed}`);
  assert.equal(Math.abs(gaussianNoise(0)), 0);
  assert.throws(() => gaussianNoise(-1), RangeError);
});
