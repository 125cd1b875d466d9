import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, sign, webcrypto, type X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { parseQuote, QuoteCheck, verifyQuote } from '../../src/enclave/quote-verify.js';

const dataDir = path.resolve(import.meta.dirname, '../data/attestation');
const read = (name: string) => fs.readFileSync(path.join(dataDir, name));
const VALID_AT = new Date('2026-01-01T00:00:00Z');
const EXPIRED_AT = new Date('2034-01-01T00:00:00Z');
const NOT_YET_AT = new Date('2018-01-01T00:00:00Z');
const SGX_V3 = ['phala-dcap-qvl.v3.quote', 'automata-dcap.v3.quote'];
const TDX = ['phala-dcap-qvl-tdx.v4.quote', 'automata-dcap-tdx.v5.quote'];
const phala = read('phala-dcap-qvl.v3.quote');
const automata = read('automata-dcap.v3.quote');

function expectFailure(quote: Buffer, check: QuoteCheck, at = VALID_AT, trustAnchor?: X509Certificate) {
  const result = verifyQuote(quote, { at, ...(trustAnchor ? { trustAnchor } : {}) });
  assert.equal(result.ok, false, `expected ${check} to fail`);
  if (!result.ok) {
    assert.equal(result.failedCheck, check, result.reason);
    assert.ok(result.reason.length > 0);
  }
  return result;
}

function mutate(quote: Buffer, offset: number, value: (b: number) => number): Buffer {
  const copy = Buffer.from(quote);
  copy[offset] = value(copy[offset]!);
  return copy;
}

// --- real quotes ---

for (const name of SGX_V3) {
  test(`${name} verifies at 2026-01-01 and states what it did not check`, () => {
    const result = verifyQuote(read(name), { at: VALID_AT });
    assert.ok(result.ok, result.ok ? '' : `${result.failedCheck}: ${result.reason}`);
    assert.equal(result.quote.version, 3);
    assert.equal(result.quote.teeType, 'sgx');
    assert.deepEqual(result.notChecked, ['TCB status', 'revocation (CRLs)']);
  });

  test(`${name} fails the validity check at 2034-01-01 (expired) and 2018-01-01 (not yet valid)`, () => {
    assert.match((expectFailure(read(name), QuoteCheck.PCK_CHAIN_VALIDITY, EXPIRED_AT) as { reason: string }).reason, /expired/);
    assert.match((expectFailure(read(name), QuoteCheck.PCK_CHAIN_VALIDITY, NOT_YET_AT) as { reason: string }).reason, /not valid before/);
  });
}

test('phala v3 quote: parsed identity and report data match the reference values', () => {
  const result = verifyQuote(phala, { at: VALID_AT });
  assert.ok(result.ok);
  assert.deepEqual(result.quote.identity, {
    mrenclave: '33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb',
    mrsigner: '815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6',
    isvProdId: 0,
    isvSvn: 0,
    debug: false,
  });
  assert.equal(result.quote.reportData, Buffer.from('Hello, world!').toString('hex') + '00'.repeat(51));
  assert.equal(result.quote.qeIdentity.mrsigner, '8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff');
});

test('phala v3 quote fails one day before its PCK certificate becomes valid', () => {
  expectFailure(phala, QuoteCheck.PCK_CHAIN_VALIDITY, new Date('2023-09-19T21:53:43Z'));
});

for (const name of TDX) {
  test(`${name} parses (header, body size, report data) and verifies at 2026-01-01`, () => {
    const parsed = parseQuote(read(name));
    assert.ok(parsed.ok);
    assert.equal(parsed.quote.teeType, 'tdx');
    const result = verifyQuote(read(name), { at: VALID_AT });
    assert.ok(result.ok, result.ok ? '' : `${result.failedCheck}: ${result.reason}`);
    assert.equal(result.quote.tdIdentity?.debug, false);
    assert.equal(result.quote.identity, undefined);
    expectFailure(read(name), QuoteCheck.PCK_CHAIN_VALIDITY, EXPIRED_AT);
  });
}

test('TDX v4 quote: version 4, TDX 1.0 body of 584 bytes, report data and 70 bytes of zero padding', () => {
  const parsed = parseQuote(read('phala-dcap-qvl-tdx.v4.quote'));
  assert.ok(parsed.ok);
  assert.equal(parsed.quote.version, 4);
  assert.equal(parsed.quote.bodySizeBytes, 584);
  assert.equal(parsed.quote.paddingBytes, 70);
  assert.equal(
    parsed.quote.reportData,
    '9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20',
  );
  const mrtd = '91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7';
  assert.equal(parsed.quote.tdIdentity?.mrtd, mrtd);
});

test('TDX v5 quote: body type 3, 648 bytes', () => {
  const parsed = parseQuote(read('automata-dcap-tdx.v5.quote'));
  assert.ok(parsed.ok);
  assert.equal(parsed.quote.version, 5);
  assert.equal(parsed.quote.bodyType, 3);
  assert.equal(parsed.quote.bodySizeBytes, 648);
});

// --- expectations ---

test('expected MRENCLAVE, MRSIGNER, ISV prod id and minimum SVN: pass when equal, fail naming the field otherwise', () => {
  const good = {
    mrenclave: '33D8736DB756ED4997E04BA358D27833188F1932FF7B1D156904D3F560452FBB',
    mrsigner: '815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6',
    isvProdId: 0,
    minIsvSvn: 0,
  };
  assert.ok(verifyQuote(phala, { at: VALID_AT, expected: good }).ok);
  const wrong = (patch: object) => verifyQuote(phala, { at: VALID_AT, expected: { ...good, ...patch } });
  assert.deepEqual(pick(wrong({ mrenclave: 'a'.repeat(64) })), QuoteCheck.MRENCLAVE);
  assert.deepEqual(pick(wrong({ mrsigner: 'b'.repeat(64) })), QuoteCheck.MRSIGNER);
  assert.deepEqual(pick(wrong({ isvProdId: 1 })), QuoteCheck.ISV_PROD_ID);
  assert.deepEqual(pick(wrong({ minIsvSvn: 1 })), QuoteCheck.ISV_SVN);
  assert.deepEqual(pick(wrong({ reportData: '00'.repeat(64) })), QuoteCheck.REPORT_DATA);
  assert.throws(() => verifyQuote(phala, { at: VALID_AT, expected: { mrenclave: 'xyz' } }), /Expected 64 hex digits for mrenclave/);
});

function pick(result: ReturnType<typeof verifyQuote>) {
  return result.ok ? 'ok' : result.failedCheck;
}

// --- mutations ---

test('flipping bit 0 and, separately, bit 7 of every byte of the v3 quote: no mutated copy verifies', () => {
  const failures = new Map<string, number>();
  for (const bit of [0x01, 0x80]) {
    for (let i = 0; i < phala.length; i++) {
      const result = verifyQuote(
        mutate(phala, i, (b) => b ^ bit),
        { at: VALID_AT },
      );
      assert.equal(result.ok, false, `byte ${i} with bit 0x${bit.toString(16)} flipped still verifies`);
      if (!result.ok) failures.set(result.failedCheck, (failures.get(result.failedCheck) ?? 0) + 1);
    }
  }
  // Each region stops at the check the reference table names.
  assert.equal(
    pick(
      verifyQuote(
        mutate(phala, 100, (b) => b ^ 1),
        { at: VALID_AT },
      ),
    ),
    QuoteCheck.QUOTE_SIGNATURE,
  ); // report body
  assert.equal(
    pick(
      verifyQuote(
        mutate(phala, 440, (b) => b ^ 1),
        { at: VALID_AT },
      ),
    ),
    QuoteCheck.QUOTE_SIGNATURE,
  ); // signature
  assert.equal(
    pick(
      verifyQuote(
        mutate(phala, 600, (b) => b ^ 1),
        { at: VALID_AT },
      ),
    ),
    QuoteCheck.QE_REPORT_SIGNATURE,
  ); // QE report
  assert.equal(
    pick(
      verifyQuote(
        mutate(phala, 900, (b) => b ^ 1),
        { at: VALID_AT },
      ),
    ),
    QuoteCheck.QE_REPORT_BINDING,
  ); // QE report data
  assert.equal(
    pick(
      verifyQuote(
        mutate(phala, 960, (b) => b ^ 1),
        { at: VALID_AT },
      ),
    ),
    QuoteCheck.QE_REPORT_SIGNATURE,
  ); // QE signature
  assert.equal(
    pick(
      verifyQuote(
        mutate(phala, 1020, (b) => b ^ 1),
        { at: VALID_AT },
      ),
    ),
    QuoteCheck.QE_REPORT_BINDING,
  ); // QE auth data
  const { STRUCTURE, QUOTE_SIGNATURE, QE_REPORT_BINDING, QE_REPORT_SIGNATURE, PCK_CHAIN } = QuoteCheck;
  const checks = [STRUCTURE, QUOTE_SIGNATURE, QE_REPORT_BINDING, QE_REPORT_SIGNATURE, PCK_CHAIN];
  for (const check of checks) {
    assert.ok((failures.get(check) ?? 0) > 0, `some mutation stops at ${check}`);
  }
});

test('flipping bit 0 of every even byte and of the final NUL of the TDX v4 and v5 quotes: no mutated copy verifies', () => {
  for (const name of TDX) {
    const quote = read(name);
    // Even offsets cover every region (each is at least 2 bytes long); the final NULs (4935, 5005) are odd, so add them.
    const positions = [...Array.from({ length: Math.ceil(quote.length / 2) }, (_, k) => 2 * k), 4935, 5005];
    for (const i of positions) {
      assert.equal(
        verifyQuote(
          mutate(quote, i, (b) => b ^ 1),
          { at: VALID_AT },
        ).ok,
        false,
        `${name} byte ${i}`,
      );
    }
  }
});

// --- lax-parsing traps (README "Mutations a verifier must reject") ---

test('signature data length changed (bytes 432-435): structure', () => {
  for (let i = 432; i < 436; i++) {
    for (const bit of [0x01, 0x80])
      expectFailure(
        mutate(phala, i, (b) => b ^ bit),
        QuoteCheck.STRUCTURE,
      );
  }
});

test('certification data size larger or smaller than the chain (bytes 1048-1051): structure', () => {
  for (let i = 1048; i < 1052; i++)
    expectFailure(
      mutate(phala, i, (b) => b ^ 0x01),
      QuoteCheck.STRUCTURE,
    );
  const larger = Buffer.from(phala);
  larger.writeUInt32LE(larger.readUInt32LE(1048) + 1, 1048);
  expectFailure(larger, QuoteCheck.STRUCTURE);
});

test('PEM line ends around each END line and the final NUL (2664, 2690, 3624, 3650, 4572, 4598, 4599): structure', () => {
  for (const i of [2664, 2690, 3624, 3650, 4572, 4598, 4599]) {
    for (const bit of [0x01, 0x80])
      expectFailure(
        mutate(phala, i, (b) => b ^ bit),
        QuoteCheck.STRUCTURE,
      );
  }
});

test('non-canonical base64 (unused low bits before "=" changed) fails although Node decodes the same bytes', () => {
  const text = phala.toString('latin1');
  const at = text.indexOf('=\n-----END CERTIFICATE-----');
  assert.ok(at > 0);
  const before = text[at - 1]!;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const twin = alphabet[alphabet.indexOf(before) ^ 1]!;
  const line = text.slice(text.lastIndexOf('\n', at) + 1, at + 1);
  assert.deepEqual(Buffer.from(`${line.slice(0, -2) + twin}=`, 'base64'), Buffer.from(line, 'base64'), 'Node decodes both the same');
  expectFailure(
    mutate(phala, at - 1, () => twin.charCodeAt(0)),
    QuoteCheck.STRUCTURE,
  );
});

test('bytes after the signature data: any byte after a v3 quote, and non-zero padding after a TDX v4 quote, fail as structure', () => {
  expectFailure(Buffer.concat([phala, Buffer.from([1])]), QuoteCheck.STRUCTURE);
  expectFailure(Buffer.concat([phala, Buffer.from([0])]), QuoteCheck.STRUCTURE);
  const tdx = read('phala-dcap-qvl-tdx.v4.quote');
  expectFailure(Buffer.concat([tdx, Buffer.from([1])]), QuoteCheck.STRUCTURE);
  expectFailure(
    mutate(tdx, 5000, () => 7),
    QuoteCheck.STRUCTURE,
  );
  assert.ok(verifyQuote(Buffer.concat([tdx, Buffer.alloc(8)]), { at: VALID_AT }).ok, 'zero padding is what real TDX v4 quotes carry');
});

test('last byte removed, and every truncation of the header and signature data: structure', () => {
  expectFailure(phala.subarray(0, phala.length - 1), QuoteCheck.STRUCTURE);
  for (const n of [0, 1, 2, 47, 48, 431, 432, 435, 436, 1000, 1046, 1051]) expectFailure(phala.subarray(0, n), QuoteCheck.STRUCTURE);
});

test('signature r = 0, or s = the curve order n: quote-signature', () => {
  const r0 = Buffer.from(phala);
  r0.fill(0, 436, 468);
  expectFailure(r0, QuoteCheck.QUOTE_SIGNATURE);
  const sN = Buffer.from(phala);
  Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex').copy(sN, 468);
  expectFailure(sN, QuoteCheck.QUOTE_SIGNATURE);
});

// --- constructed forgeries ---

/** Reassembles a v3 quote from parts, fixing every length. */
function buildV3(parts: {
  headerAndBody: Buffer;
  signature: Buffer;
  attestationKey: Buffer;
  qeReport: Buffer;
  qeReportSignature: Buffer;
  qeAuthData: Buffer;
  pemChain: Buffer;
}): Buffer {
  const u16 = (n: number) => Buffer.from([n & 0xff, n >> 8]);
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  const sigData = Buffer.concat([
    parts.signature,
    parts.attestationKey,
    parts.qeReport,
    parts.qeReportSignature,
    u16(parts.qeAuthData.length),
    parts.qeAuthData,
    u16(5),
    u32(parts.pemChain.length),
    parts.pemChain,
  ]);
  return Buffer.concat([parts.headerAndBody, u32(sigData.length), sigData]);
}

function splitV3(quote: Buffer) {
  const authSize = quote.readUInt16LE(1012);
  const certStart = 1014 + authSize + 6;
  return {
    headerAndBody: quote.subarray(0, 432),
    signature: quote.subarray(436, 500),
    attestationKey: quote.subarray(500, 564),
    qeReport: quote.subarray(564, 948),
    qeReportSignature: quote.subarray(948, 1012),
    qeAuthData: quote.subarray(1014, 1014 + authSize),
    pemChain: quote.subarray(certStart, certStart + quote.readUInt32LE(certStart - 4)),
  };
}

const p1363 = (data: Buffer, key: KeyObject) => sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
const rawKey = (key: KeyObject) => {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.concat([Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
};

test('reassembling the unchanged parts gives a quote that verifies (the forgery builder is faithful)', () => {
  assert.deepEqual(buildV3(splitV3(phala)), phala);
});

test('forgery: the certification data replaced by another real Intel chain fails qe-report-signature', () => {
  expectFailure(buildV3({ ...splitV3(phala), pemChain: splitV3(automata).pemChain }), QuoteCheck.QE_REPORT_SIGNATURE);
});

test('forgery: a new attestation key re-signing header and body fails qe-report-binding; binding fixed, qe-report-signature', () => {
  const parts = splitV3(phala);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const attestationKey = rawKey(publicKey);
  const resigned = { ...parts, attestationKey, signature: p1363(parts.headerAndBody, privateKey) };
  expectFailure(buildV3(resigned), QuoteCheck.QE_REPORT_BINDING);
  const qeReport = Buffer.from(parts.qeReport);
  createHash('sha256').update(attestationKey).update(parts.qeAuthData).digest().copy(qeReport, 320);
  expectFailure(buildV3({ ...resigned, qeReport }), QuoteCheck.QE_REPORT_SIGNATURE);
  const headerAndBody = Buffer.from(parts.headerAndBody);
  headerAndBody[48 + 64] = headerAndBody[48 + 64]! ^ 0xff; // MRENCLAVE
  const changedEnclave = buildV3({ ...resigned, qeReport, headerAndBody, signature: p1363(headerAndBody, privateKey) });
  expectFailure(changedEnclave, QuoteCheck.QE_REPORT_SIGNATURE);
});

const pem = (der: ArrayBuffer) =>
  `-----BEGIN CERTIFICATE-----\n${Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END CERTIFICATE-----\n`;

test('forgery: everything re-signed under a self-made "Intel SGX Root CA" of the same name fails pck-chain (root pin)', async () => {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const gen = async () => (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const [rootKeys, caKeys, pckKeys] = [await gen(), await gen(), await gen()];
  const rootName = 'CN=Intel SGX Root CA, O=Intel Corporation, L=Santa Clara, ST=CA, C=US';
  const caName = 'CN=Intel SGX PCK Processor CA, O=Intel Corporation, L=Santa Clara, ST=CA, C=US';
  const validity = { notBefore: new Date('2025-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z'), signingAlgorithm: alg };
  const caExt = [new x509.BasicConstraintsExtension(true, undefined, true)];
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    ...validity,
    serialNumber: '01',
    name: rootName,
    keys: rootKeys,
    extensions: caExt,
  });
  const ca = await x509.X509CertificateGenerator.create({
    ...validity,
    serialNumber: '02',
    subject: caName,
    issuer: rootName,
    publicKey: caKeys.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: caExt,
  });
  const pck = await x509.X509CertificateGenerator.create({
    ...validity,
    serialNumber: '03',
    subject: 'CN=Intel SGX PCK Certificate, O=Intel Corporation, L=Santa Clara, ST=CA, C=US',
    issuer: caName,
    publicKey: pckKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const pemChain = Buffer.from(`${pem(pck.rawData) + pem(ca.rawData) + pem(root.rawData)}\0`, 'latin1');
  const parts = splitV3(phala);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const attestationKey = rawKey(publicKey);
  const qeReport = Buffer.from(parts.qeReport);
  createHash('sha256').update(attestationKey).update(parts.qeAuthData).digest().copy(qeReport, 320);
  const pckPrivate = KeyObjectFrom(await webcrypto.subtle.exportKey('pkcs8', pckKeys.privateKey));
  const forged = buildV3({
    ...parts,
    attestationKey,
    signature: p1363(parts.headerAndBody, privateKey),
    qeReport,
    qeReportSignature: p1363(qeReport, pckPrivate),
    pemChain,
  });
  const result = expectFailure(forged, QuoteCheck.PCK_CHAIN);
  assert.match((result as { reason: string }).reason, /not the pinned Intel SGX Root CA/);
});

function KeyObjectFrom(pkcs8: ArrayBuffer): KeyObject {
  return createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
}

test('hostile headers: unsupported version, key type, TEE type and v5 body descriptors fail as structure', () => {
  expectFailure(
    mutate(phala, 0, () => 2),
    QuoteCheck.STRUCTURE,
  );
  expectFailure(
    mutate(phala, 2, () => 3),
    QuoteCheck.STRUCTURE,
  );
  expectFailure(
    mutate(phala, 4, () => 1),
    QuoteCheck.STRUCTURE,
  );
  const v5 = read('automata-dcap-tdx.v5.quote');
  expectFailure(
    mutate(v5, 48, () => 1),
    QuoteCheck.STRUCTURE,
  ); // SGX body type under a TDX TEE type
  expectFailure(
    mutate(v5, 50, (b) => b + 1),
    QuoteCheck.STRUCTURE,
  ); // body size
  expectFailure(Buffer.alloc(0), QuoteCheck.STRUCTURE);
});

test('the quotes inside the two RA-TLS certificates verify, and their DEBUG enclaves are refused unless allowed', () => {
  const quotes = [read('gramine-ra-tls.der').subarray(404, 5138), read('gramine-ra-tls.der').subarray(5161, 9895)];
  quotes.push(read('intel-sgxsdk-ra-tls.der').subarray(428, 5028));
  for (const quote of quotes) {
    const refused = expectFailure(quote, QuoteCheck.DEBUG);
    assert.match((refused as { reason: string }).reason, /debug mode/);
    const allowed = verifyQuote(quote, { at: VALID_AT, expected: { allowDebug: true } });
    assert.ok(allowed.ok, allowed.ok ? '' : `${allowed.failedCheck}: ${allowed.reason}`);
    assert.equal(allowed.quote.identity?.debug, true);
  }
  const gramine = verifyQuote(quotes[0]!, { at: VALID_AT, expected: { allowDebug: true } });
  assert.ok(gramine.ok);
  assert.equal(gramine.quote.reportData, `5a5a5b2d177433048e9d62409d1acc4ec526c06e294d09e69a36cff9369e4851${'00'.repeat(32)}`);
});

test('trustAnchor: the Intel root passed explicitly verifies a real quote; another root as anchor fails pck-chain', async () => {
  const { intelSgxRootCa } = await import('../../src/enclave/intel-sgx-root-ca.js');
  assert.ok(verifyQuote(phala, { at: VALID_AT, trustAnchor: intelSgxRootCa }).ok);
  const { createFakeQuotingEnclave } = await import('../helpers/fake-quote.js');
  const { rootCa } = await createFakeQuotingEnclave();
  const result = expectFailure(phala, QuoteCheck.PCK_CHAIN, VALID_AT, rootCa);
  assert.match((result as { reason: string }).reason, /not the given trust anchor/);
});
