// The PLD accountant against every reference vector the suite can afford (about 25 s of CPU, so it runs in the slow
// tier, last in `npm test`): the DP-SGD grid, the plain Gaussian cases and the heterogeneous compositions, under the
// README's rule (test/data/accounting/README.md). test/unit/privacy-pld.test.ts checks a representative subset.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertGaussianVectors,
  assertGridVectors,
  assertHeterogeneousVectors,
  gaussianVectors,
  gridVectors,
  heterogeneousVectors,
} from '../helpers/pld-vectors.js';

test(`PLD ε of ${gridVectors.length} grid vectors meets the README rule against dp_accounting`, () => {
  assert.ok(gridVectors.length >= 150, `${gridVectors.length} vectors`);
  assertGridVectors(gridVectors);
});

test(`plain Gaussian releases (${gaussianVectors.length} of 48 cases): PLD ε within 1e-3 relative of the exact ε and never below it`, () => {
  assertGaussianVectors(gaussianVectors);
});

test(`heterogeneous compositions (${heterogeneousVectors.length} cases) meet the PLD rule`, () => {
  assert.equal(heterogeneousVectors.length, 6);
  assertHeterogeneousVectors(heterogeneousVectors);
});
