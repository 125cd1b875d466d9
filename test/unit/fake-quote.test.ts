// The fake quoting enclave (test/helpers/fake-quote.ts): its quotes pass every check of verifyQuote with its
// root as the trust anchor, fail at pck-chain without it, and carry the report data and identity asked for.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { parseQuote, QuoteCheck, verifyQuote } from '../../src/enclave/quote-verify.js';
import { createFakeQuotingEnclave } from '../helpers/fake-quote.js';

const enclave = await createFakeQuotingEnclave();
const now = new Date();

test('a fake quote verifies with the fake root as trust anchor, and its report data and identity round-trip', () => {
  const reportData = randomBytes(64);
  const result = verifyQuote(enclave.quote(reportData), { at: now, trustAnchor: enclave.rootCa });
  assert.ok(result.ok, result.ok ? '' : `${result.failedCheck}: ${result.reason}`);
  assert.equal(result.quote.version, 3);
  assert.equal(result.quote.teeType, 'sgx');
  assert.equal(result.quote.reportData, reportData.toString('hex'));
  assert.deepEqual(result.quote.identity, { mrenclave: '11'.repeat(32), mrsigner: '22'.repeat(32), isvProdId: 0, isvSvn: 0, debug: false });
});

test('without the trust anchor a fake quote fails at pck-chain: the pinned Intel root is not its root', () => {
  const result = verifyQuote(enclave.quote(Buffer.alloc(64)), { at: now });
  assert.equal(result.ok, false);
  assert.ok(!result.ok);
  assert.equal(result.failedCheck, QuoteCheck.PCK_CHAIN);
  assert.match(result.reason, /not the pinned Intel SGX Root CA/);
});

test("another fake enclave's root as trust anchor fails at pck-chain naming the trust anchor", async () => {
  const other = await createFakeQuotingEnclave();
  const result = verifyQuote(enclave.quote(Buffer.alloc(64)), { at: now, trustAnchor: other.rootCa });
  assert.ok(!result.ok);
  assert.equal(result.failedCheck, QuoteCheck.PCK_CHAIN);
  assert.match(result.reason, /not the given trust anchor/);
});

test('a per-quote identity (MRENCLAVE, MRSIGNER, ISV prod id and SVN, DEBUG) is what the quote states and expectations check', () => {
  const identity = { mrenclave: Buffer.alloc(32, 0xaa), mrsigner: Buffer.alloc(32, 0xbb), isvProdId: 7, isvSvn: 3, debug: true };
  const quote = enclave.quote(Buffer.alloc(64, 5), identity);
  const refused = verifyQuote(quote, { at: now, trustAnchor: enclave.rootCa });
  assert.ok(!refused.ok);
  assert.equal(refused.failedCheck, QuoteCheck.DEBUG);
  const expected = { mrenclave: 'aa'.repeat(32), mrsigner: 'bb'.repeat(32), isvProdId: 7, minIsvSvn: 3, allowDebug: true };
  const result = verifyQuote(quote, { at: now, trustAnchor: enclave.rootCa, expected });
  assert.ok(result.ok, result.ok ? '' : `${result.failedCheck}: ${result.reason}`);
  assert.deepEqual(result.quote.identity, { mrenclave: 'aa'.repeat(32), mrsigner: 'bb'.repeat(32), isvProdId: 7, isvSvn: 3, debug: true });
});

test('the layout is a real v3 quote: 48-byte header, 384-byte body, exact signature data length, PEM chain ending in one NUL', () => {
  const quote = enclave.quote(Buffer.alloc(64));
  assert.equal(quote.readUInt16LE(0), 3);
  assert.equal(quote.readUInt16LE(2), 2);
  assert.equal(quote.readUInt32LE(432), quote.length - 436);
  assert.equal(quote[quote.length - 1], 0);
  const text = quote.toString('latin1');
  assert.equal(text.split('-----BEGIN CERTIFICATE-----\n').length - 1, 3);
  for (const line of text.slice(text.indexOf('-----BEGIN')).split('\n')) assert.ok(line.length <= 64 || line.startsWith('-----'));
  assert.ok(parseQuote(quote).ok);
});

test('a flipped byte in the body, the signature or the QE report makes a fake quote fail like a real one', () => {
  const quote = enclave.quote(Buffer.alloc(64));
  const flip = (i: number) => {
    const copy = Buffer.from(quote);
    copy[i] = copy[i]! ^ 1;
    const result = verifyQuote(copy, { at: now, trustAnchor: enclave.rootCa });
    return result.ok ? 'ok' : result.failedCheck;
  };
  assert.equal(flip(100), QuoteCheck.QUOTE_SIGNATURE);
  assert.equal(flip(440), QuoteCheck.QUOTE_SIGNATURE);
  assert.equal(flip(600), QuoteCheck.QE_REPORT_SIGNATURE);
  assert.equal(flip(900), QuoteCheck.QE_REPORT_BINDING);
});

test('certificates outside their validity: a fake enclave valid only in 2030 fails pck-chain-validity now', async () => {
  const later = await createFakeQuotingEnclave({ notBefore: new Date('2030-01-01T00:00:00Z'), notAfter: new Date('2031-01-01T00:00:00Z') });
  const result = verifyQuote(later.quote(Buffer.alloc(64)), { at: new Date('2026-01-01T00:00:00Z'), trustAnchor: later.rootCa });
  assert.ok(!result.ok);
  assert.equal(result.failedCheck, QuoteCheck.PCK_CHAIN_VALIDITY);
  assert.ok(verifyQuote(later.quote(Buffer.alloc(64)), { at: new Date('2030-06-01T00:00:00Z'), trustAnchor: later.rootCa }).ok);
});

test('the attestor hands out quotes over the report data it is given, and refuses report data that is not 64 bytes', async () => {
  const reportData = randomBytes(64);
  const quote = await enclave.attestor.quote(reportData);
  const result = verifyQuote(quote, { at: now, trustAnchor: enclave.rootCa });
  assert.ok(result.ok);
  assert.equal(result.quote.reportData, reportData.toString('hex'));
  assert.throws(() => enclave.quote(Buffer.alloc(32)), /Expected 64 bytes of report data but received 32/);
});
