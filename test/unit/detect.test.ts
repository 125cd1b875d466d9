import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { DETECT_PREFIX_BYTES, detectDatasetFormat } from '../../src/artifacts/formats/detect.js';
import { encodeSafetensors, MAX_HEADER_BYTES } from '../../src/artifacts/formats/safetensors.js';
import { testdataPath } from '../helpers/testdata.js';

const TESTDATA = testdataPath('torchscript', 'torch-1.13');
const bytes = (text: string): Uint8Array => Buffer.from(text, 'utf8');

function lengthPrefixed(length: bigint, rest: string): Uint8Array {
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(length);
  return Buffer.concat([head, Buffer.from(rest)]);
}

test('detects a TorchScript archive by its zip magic', () => {
  assert.equal(detectDatasetFormat(readFileSync(`${TESTDATA}/mlp.script.pt`)), 'torchscript');
  assert.equal(detectDatasetFormat(Uint8Array.from([0x50, 0x4b, 0x03, 0x04])), 'torchscript');
  fc.assert(
    fc.property(
      fc.uint8Array(),
      (tail) => detectDatasetFormat(Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), tail])) === 'torchscript',
    ),
  );
});

test('detects safetensors by a plausible header length followed by {', () => {
  assert.equal(detectDatasetFormat(readFileSync(`${TESTDATA}/mlp.io.safetensors`)), 'safetensors');
  assert.equal(detectDatasetFormat(encodeSafetensors([])), 'safetensors');
  assert.equal(detectDatasetFormat(lengthPrefixed(2n, '{}')), 'safetensors');
  assert.equal(detectDatasetFormat(lengthPrefixed(BigInt(MAX_HEADER_BYTES), '{"a"')), 'safetensors');
});

test('does not take an implausible header length or a missing { for safetensors', () => {
  assert.equal(detectDatasetFormat(lengthPrefixed(BigInt(MAX_HEADER_BYTES) + 1n, '{}')), null);
  assert.equal(detectDatasetFormat(lengthPrefixed(2n ** 64n - 1n, '{}')), null);
  assert.equal(detectDatasetFormat(lengthPrefixed(1n, '{')), null);
  assert.equal(detectDatasetFormat(lengthPrefixed(2n, '[]')), null);
  assert.equal(detectDatasetFormat(lengthPrefixed(2n, '')), null);
});

test('detects CSV and TSV text by a comma or tab in the first line', () => {
  assert.equal(detectDatasetFormat(bytes('a,b,label\n1,2,3\n')), 'csv');
  assert.equal(detectDatasetFormat(bytes('a\tb\tlabel\r\n1\t2\t3\r\n')), 'csv');
  assert.equal(detectDatasetFormat(bytes('\ufeff"größe",label\n1,0\n')), 'csv');
  assert.equal(detectDatasetFormat(bytes('a,b')), 'csv'); // a prefix without any newline yet
});

test('detects CSV when the prefix cuts a UTF-8 character in two', () => {
  const text = Buffer.from('naïve,label\n1,0\nü');
  assert.equal(detectDatasetFormat(text.subarray(0, text.length - 1)), 'csv');
});

test('does not take text without a comma or tab in its first line for CSV', () => {
  assert.equal(detectDatasetFormat(bytes('label\n1,2\n')), null);
  assert.equal(detectDatasetFormat(bytes('hello world')), null);
  assert.equal(detectDatasetFormat(bytes('\r\na,b\n')), null);
});

test('does not take binary or invalid UTF-8 for CSV', () => {
  assert.equal(detectDatasetFormat(Buffer.from('a,b\n\x00\x01', 'latin1')), null);
  assert.equal(detectDatasetFormat(Buffer.concat([bytes('a,b\n'), Uint8Array.from([0xff, 0xfe])])), null);
  assert.equal(detectDatasetFormat(Uint8Array.from([0xc3, 0x28, 0x2c])), null); // invalid continuation byte
  assert.equal(detectDatasetFormat(Buffer.from('a,b\x1b[31m', 'latin1')), null);
});

test('answers null for an empty or too-short prefix', () => {
  assert.equal(detectDatasetFormat(new Uint8Array(0)), null);
  assert.equal(detectDatasetFormat(bytes('PK')), null);
  assert.equal(detectDatasetFormat(Uint8Array.from([0xef, 0xbb, 0xbf])), null);
});

test('looks only at the first DETECT_PREFIX_BYTES bytes', () => {
  const text = Buffer.concat([bytes('a,b\n'), Buffer.alloc(DETECT_PREFIX_BYTES, 0x31), Buffer.from([0x00])]);
  assert.equal(detectDatasetFormat(text), 'csv');
});

test('any printable text whose first line holds a comma is CSV', () => {
  const printable = fc.string({ unit: fc.constantFrom(...'abcXYZ019 .;"é€-_'.split('')) });
  fc.assert(
    fc.property(
      printable,
      printable,
      fc.constantFrom(',', '\t'),
      fc.string({ unit: fc.constantFrom(...'ab,12\n\r\t'.split('')) }),
      (left, right, delimiter, rest) => {
        return detectDatasetFormat(bytes(`${left}${delimiter}${right}\n${rest}`)) === 'csv';
      },
    ),
  );
});
