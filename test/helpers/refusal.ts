// An assert.rejects/throws predicate for a dataset refusal: a one-line BastionError UNPROCESSABLE_DATASET.
import assert from 'node:assert/strict';
import { BastionError } from '../../src/errors.js';

export function datasetRefusal(pattern: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof BastionError, `expected a BastionError, got ${String(error)}`);
    assert.equal(error.code, 'UNPROCESSABLE_DATASET');
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/, 'messages are one line');
    return true;
  };
}
