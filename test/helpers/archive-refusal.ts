// Assertions on refusals of the TorchScript archive check (src/artifacts/formats/torchscript-archive.ts): the
// code, the problem and a one-line message, for the unit tests on crafted archives and the addon-tier tests on
// archives PyTorch itself wrote.
import assert from 'node:assert/strict';
import {
  type ArchiveProblem,
  type CheckTorchscriptArchiveOptions,
  checkTorchscriptArchive,
} from '../../src/artifacts/formats/torchscript-archive.js';
import { isBastionError } from '../../src/errors.js';

export interface Refusal {
  code: string;
  problem: ArchiveProblem;
  message: RegExp;
}

/** Asserts the check refuses `bytes` with this code, problem and message; returns the message. */
export async function assertRefused(
  bytes: Uint8Array,
  expected: Refusal,
  options: Partial<CheckTorchscriptArchiveOptions> = {},
): Promise<string> {
  const kind = expected.code === 'UNPROCESSABLE_DATASET' ? 'dataset' : 'model';
  let caught: unknown;
  try {
    await checkTorchscriptArchive(bytes, { kind, ...options });
  } catch (error) {
    caught = error;
  }
  assert.ok(isBastionError(caught), `expected a BastionError, got ${String(caught)}`);
  assert.equal(caught.code, expected.code);
  assert.equal(caught.details.extensions?.problem, expected.problem, caught.message);
  assert.match(caught.message, expected.message);
  assert.match(caught.message, /^TorchScript archive refused: /);
  assert.ok(!caught.message.includes('\n'), 'the message is one line');
  assert.ok(caught.message.length < 400, `the message is short: ${caught.message}`);
  return caught.message;
}

export const refusedModel = (problem: ArchiveProblem, message: RegExp): Refusal => ({ code: 'UNPROCESSABLE_MODEL', problem, message });
