// Intel's collateral, checked offline with the quote: the real bundle for phala-dcap-qvl.v3.quote gives its
// TCB status and advisories at a time it is current, and is refused when stale, for another platform, or
// edited anywhere a signature covers; a fake Intel (test/helpers/fake-collateral.ts) shows revocation, a
// foreign quoting enclave and a platform below every level fail at the check that names them.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { before, test } from 'node:test';
import { type CollateralFile, parseCollateral } from '../../src/enclave/collateral.js';
import { type QuoteVerification, verifyQuote } from '../../src/enclave/quote-verify.js';
import { createFakeCollateral } from '../helpers/fake-collateral.js';
import { createFakeQuotingEnclave, type FakeQuotingEnclave } from '../helpers/fake-quote.js';
import { testdataPath } from '../helpers/testdata.js';

const quote = fs.readFileSync(testdataPath('attestation', 'phala-dcap-qvl.v3.quote'));
const real = (): CollateralFile =>
  parseCollateral(JSON.parse(fs.readFileSync(testdataPath('attestation', 'phala-dcap-qvl.v3.collateral.json'), 'utf8')));
const current = new Date('2025-07-01T00:00:00Z');
const failure = (r: QuoteVerification) => (r.ok ? 'ok' : `${r.failedCheck}: ${r.reason}`);

test("the real collateral gives the platform's TCB status: refused unless accepted, then reported with its advisories", () => {
  const refused = verifyQuote(quote, { at: current, collateral: real() });
  assert.equal(
    failure(refused),
    "tcb-status: the platform's TCB status is ConfigurationAndSWHardeningNeeded (advisories INTEL-SA-00289, INTEL-SA-00615); " +
      'accepted: UpToDate',
  );
  const accepted = verifyQuote(quote, {
    at: current,
    collateral: real(),
    acceptTcbStatuses: ['UpToDate', 'ConfigurationAndSWHardeningNeeded'],
  });
  assert.ok(accepted.ok, failure(accepted));
  assert.deepEqual(accepted.notChecked, []);
  assert.deepEqual(accepted.collateral, {
    tcbStatus: 'ConfigurationAndSWHardeningNeeded',
    tcbDate: '2024-03-13T00:00:00Z',
    qeTcbStatus: 'UpToDate',
    advisoryIds: ['INTEL-SA-00289', 'INTEL-SA-00615'],
    fmspc: '00a067110000',
    tcbEvaluationDataNumber: 17,
    validUntil: '2025-07-19T10:01:18.000Z',
  });
  // Without collateral the same quote verifies and says what it could not check.
  const bare = verifyQuote(quote, { at: current });
  assert.ok(bare.ok);
  assert.deepEqual(bare.notChecked, ['TCB status', 'revocation (CRLs)']);
});

test('stale or not-yet-issued collateral, and collateral of another platform or a TDX quote, fail at check collateral', () => {
  const accept = ['UpToDate', 'ConfigurationAndSWHardeningNeeded'];
  assert.match(
    failure(verifyQuote(quote, { at: new Date('2026-01-01T00:00:00Z'), collateral: real(), acceptTcbStatuses: accept })),
    /^collateral: the TCB info is stale/,
  );
  assert.match(
    failure(verifyQuote(quote, { at: new Date('2025-06-19T10:30:00Z'), collateral: real(), acceptTcbStatuses: accept })),
    /^collateral: the TCB info was issued 2025-06-19T10:56:11Z, after/,
  );
  const automata = fs.readFileSync(testdataPath('attestation', 'automata-dcap.v3.quote'));
  assert.equal(
    failure(verifyQuote(automata, { at: current, collateral: real() })),
    "collateral: the TCB info is for FMSPC 00a067110000, the PCK certificate's is 00606a000000",
  );
  const tdx = fs.readFileSync(testdataPath('attestation', 'phala-dcap-qvl-tdx.v4.quote'));
  assert.match(failure(verifyQuote(tdx, { at: current, collateral: real() })), /^collateral: collateral is checked for SGX quotes only/);
});

test('every edit of what Intel signed fails: a status upgraded, a signature bit, a CRL byte, a swapped issuer chain', () => {
  const accept = ['UpToDate', 'ConfigurationAndSWHardeningNeeded'];
  const edits: Array<[string, (c: CollateralFile) => void]> = [
    ['TCB info: first level marked UpToDate', (c) => void (c.tcb_info = c.tcb_info.replace('"SWHardeningNeeded"', '"UpToDate"'))],
    ['TCB info: whitespace added', (c) => void (c.tcb_info = `${c.tcb_info} `)],
    ['TCB info signature', (c) => void (c.tcb_info_signature = flipHex(c.tcb_info_signature, 5))],
    ['QE identity: a lower ISV SVN accepted', (c) => void (c.qe_identity = c.qe_identity.replace('"isvsvn":8', '"isvsvn":1'))],
    ['QE identity signature', (c) => void (c.qe_identity_signature = flipHex(c.qe_identity_signature, 40))],
    ['TCB info signed by the QE identity signature', (c) => void (c.tcb_info_signature = c.qe_identity_signature)],
    [
      'PCK CRL issuer chain without the root',
      (c) =>
        void (c.pck_crl_issuer_chain = c.pck_crl_issuer_chain.slice(0, c.pck_crl_issuer_chain.indexOf('-----END CERTIFICATE-----') + 26)),
    ],
    [
      'TCB info issuer chain of one certificate',
      (c) =>
        void (c.tcb_info_issuer_chain = c.tcb_info_issuer_chain.slice(c.tcb_info_issuer_chain.indexOf('-----END CERTIFICATE-----') + 26)),
    ],
  ];
  for (const [what, edit] of edits) {
    const c = real();
    edit(c);
    const result = verifyQuote(quote, { at: current, collateral: c, acceptTcbStatuses: accept });
    assert.match(failure(result), /^collateral: /, what);
  }
  // Every byte of both CRLs, bit 0 flipped: none passes (the outer signature algorithm, which no signature
  // covers, is pinned to ECDSA with SHA-256 in both places).
  for (const field of ['root_ca_crl', 'pck_crl'] as const) {
    const der = Buffer.from(real()[field], 'hex');
    for (let i = 0; i < der.length; i++) {
      const copy = Buffer.from(der);
      copy[i]! ^= 0x01;
      const c = real();
      c[field] = copy.toString('hex');
      const result = verifyQuote(quote, { at: current, collateral: c, acceptTcbStatuses: accept });
      assert.equal(result.ok, false, `${field} byte ${i} flipped still verifies`);
    }
  }
});

test('a bundle that is not collateral is refused before any check, naming the field', () => {
  assert.throws(() => parseCollateral({ tcb_info: '{}' }), /not a collateral bundle/);
  assert.throws(() => parseCollateral({ ...real(), root_ca_crl: 'zz' }), /root_ca_crl/);
});

let enclave: FakeQuotingEnclave;
before(async () => {
  enclave = await createFakeQuotingEnclave({
    platform: { fmspc: '00906ed50000', pceId: '0000', components: [5, 5, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0], pceSvn: 13 },
  });
});
const at = new Date('2026-01-15T00:00:00Z');
const fakeQuote = () => enclave.quote(Buffer.alloc(64, 1));
const check = async (options: Parameters<typeof createFakeCollateral>[1], accept?: string[]) =>
  verifyQuote(fakeQuote(), {
    at,
    trustAnchor: enclave.rootCa,
    collateral: await createFakeCollateral(enclave, options),
    ...(accept ? { acceptTcbStatuses: accept } : {}),
  });

test('the first TCB level every component reaches decides the status; below every level fails', async () => {
  const up = [6, 6, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
  const levels = [
    { components: up, pceSvn: 13, tcbStatus: 'UpToDate' },
    { components: [5, 5, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0], pceSvn: 14, tcbStatus: 'SWHardeningNeeded' },
    { components: [5, 5, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0], pceSvn: 13, tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-00001'] },
  ];
  const outOfDate = await check({ tcbLevels: levels }, ['UpToDate', 'OutOfDate']);
  assert.ok(outOfDate.ok, failure(outOfDate));
  assert.deepEqual([outOfDate.collateral!.tcbStatus, outOfDate.collateral!.advisoryIds], ['OutOfDate', ['INTEL-SA-00001']]);
  assert.equal(
    failure(await check({ tcbLevels: levels })),
    "tcb-status: the platform's TCB status is OutOfDate (advisories INTEL-SA-00001); accepted: UpToDate",
  );
  assert.match(failure(await check({ tcbLevels: [levels[0]!] })), /^tcb-status: the platform's TCB is below every level/);
  const ok = await check({});
  assert.ok(ok.ok, failure(ok));
  // Revoked is never accepted, even when asked.
  assert.match(failure(await check({ tcbLevels: [{ ...levels[2]!, tcbStatus: 'Revoked' }] }, ['Revoked'])), /^tcb-status: .* Revoked/);
});

test('a revoked PCK certificate or PCK CA fails at check revocation', async () => {
  assert.equal(failure(await check({ revokePck: true })), 'revocation: Intel revoked the PCK certificate (serial 03)');
  assert.equal(failure(await check({ revokePckCa: true })), 'revocation: Intel revoked the PCK issuing CA (serial 02)');
});

test("a quoting enclave that is not Intel's, or older than every QE level, fails", async () => {
  assert.equal(failure(await check({ qeMrsigner: 'AB'.repeat(32) })), "qe-identity: the quoting enclave's MRSIGNER is not Intel's");
  assert.match(
    failure(await check({ qeLevels: [{ isvsvn: 10, tcbStatus: 'UpToDate' }] })),
    /^tcb-status: the quoting enclave's ISV SVN 9 is below every level/,
  );
  assert.match(
    failure(
      await check({
        qeLevels: [
          { isvsvn: 10, tcbStatus: 'UpToDate' },
          { isvsvn: 9, tcbStatus: 'OutOfDate' },
        ],
      }),
    ),
    /^tcb-status: the quoting enclave's TCB status is OutOfDate/,
  );
});

test("collateral signed by another root than the quote's anchor fails: the fake Intel's collateral against the real quote", async () => {
  const fake = await createFakeCollateral(enclave, {});
  assert.match(
    failure(verifyQuote(quote, { at: current, collateral: fake })),
    /^collateral: TCB info issuer chain does not end in the pinned Intel SGX Root CA/,
  );
});

function flipHex(hex: string, byte: number): string {
  const b = Buffer.from(hex, 'hex');
  b[byte]! ^= 0x01;
  return b.toString('hex');
}
