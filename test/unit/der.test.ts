// The strict DER certificate reader (src/enclave/der.ts): the real certificates split where the README says,
// and encodings that BER allows but DER does not are refused.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DerError, parseCertificateDer } from '../../src/enclave/der.js';

const dataDir = path.resolve(import.meta.dirname, '../data/attestation');
const gramine = fs.readFileSync(path.join(dataDir, 'gramine-ra-tls.der'));
const sdk = fs.readFileSync(path.join(dataDir, 'intel-sgxsdk-ra-tls.der'));

test('gramine-ra-tls.der splits as the README says: tbs [4, 9948), outer algorithm [9948, 9962), both with NULL', () => {
  const parts = parseCertificateDer(gramine);
  assert.equal(parts.tbs.byteOffset - gramine.byteOffset, 4);
  assert.equal(parts.tbs.length, 9944);
  assert.equal(parts.outerAlgorithm.toString('hex'), '300c06082a8648ce3d0403020500');
  assert.deepEqual(parts.innerAlgorithm, parts.outerAlgorithm);
  assert.equal(parts.algorithmParameters, 'null');
  assert.equal(parts.notBefore.toISOString(), '2001-01-01T00:00:00.000Z');
  assert.equal(parts.notAfter.toISOString(), '2030-12-31T23:59:59.000Z');
  const legacy = parts.extensions.find((e) => e.id.toString('hex') === '06092a864886f84d8a3906')!;
  assert.equal(legacy.valueOffset, 404);
  assert.equal(legacy.value.length, 4734);
  assert.equal(parts.extensions.find((e) => e.id.toString('hex') === '678105050409')!.valueOffset, 5154);
});

test('the Intel SDK certificate: GeneralizedTime validity (2021 to 2050), no algorithm parameters', () => {
  const parts = parseCertificateDer(sdk);
  assert.equal(parts.algorithmParameters, 'absent');
  assert.equal(parts.notBefore.toISOString(), '2021-04-01T00:00:00.000Z');
  assert.equal(parts.notAfter.toISOString(), '2050-12-31T23:59:59.000Z');
});

test('BER that is not DER is refused: indefinite length, non-minimal long-form lengths, trailing bytes', () => {
  const indefinite = Buffer.from(gramine);
  indefinite[1] = 0x80;
  assert.throws(() => parseCertificateDer(indefinite), DerError);
  // The Certificate length 10064 (0x2750) in three bytes instead of two.
  const padded = Buffer.concat([Buffer.from([0x30, 0x83, 0x00, 0x27, 0x50]), gramine.subarray(4)]);
  assert.throws(() => parseCertificateDer(padded), /leading zero/);
  assert.throws(() => parseCertificateDer(Buffer.concat([gramine, Buffer.from([0])])), /bytes after its end/);
  assert.throws(() => parseCertificateDer(Buffer.alloc(0)), DerError);
});

test('a validity time that is not a calendar date (month 13) is refused', () => {
  // notBefore UTCTime "010101000000Z" at [93, 106): make the month 13.
  const copy = Buffer.from(gramine);
  assert.equal(copy.subarray(93, 106).toString('latin1'), '010101000000Z');
  copy.write('13', 95, 'latin1');
  assert.throws(() => parseCertificateDer(copy), /not a calendar date/);
});
