// RA-TLS certificates (src/enclave/ra-tls.ts): the two real ones in test/data verify at 2026-01-01 (debug
// enclaves, so only with allowDebug), every single-bit change of Gramine's is refused, and certificates
// made by createRaTlsCertificate (with the fake quoting enclave) verify, while a quote over another key does not.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { decode, encode, Tag } from 'cbor2';
import { parseCertificateDer } from '../../src/enclave/der.js';
import { QuoteCheck } from '../../src/enclave/quote-verify.js';
import {
  createRaTlsCertificate,
  RaTlsCheck,
  RaTlsFormat,
  type RaTlsVerification,
  verifyRaTlsCertificate,
} from '../../src/enclave/ra-tls.js';
import { createFakeQuotingEnclave } from '../helpers/fake-quote.js';

const dataDir = path.resolve(import.meta.dirname, '../data/attestation');
const gramine = fs.readFileSync(path.join(dataDir, 'gramine-ra-tls.der'));
const sdk = fs.readFileSync(path.join(dataDir, 'intel-sgxsdk-ra-tls.der'));
const VALID_AT = new Date('2026-01-01T00:00:00Z');
const debugOk = { allowDebug: true };
const GRAMINE_MRENCLAVE = '0866e7ca11b9f4efe4bf39b2607f4e1299f111920d96d95719080f01b62b7585';

const failed = (result: RaTlsVerification) => (result.ok ? 'ok' : result.failedCheck);
const explain = (result: RaTlsVerification) => (result.ok ? '' : `${result.failedCheck}: ${result.reason}`);

// --- the real certificates ---

test('gramine-ra-tls.der verifies at 2026-01-01 with allowDebug: both quotes, bound to its key, MRENCLAVE pinned', () => {
  const result = verifyRaTlsCertificate(gramine, { at: VALID_AT, expected: { ...debugOk, mrenclave: GRAMINE_MRENCLAVE } });
  assert.ok(result.ok, explain(result));
  assert.equal(result.spkiSha256, '5a5a5b2d177433048e9d62409d1acc4ec526c06e294d09e69a36cff9369e4851');
  assert.deepEqual(
    result.evidence.map((e) => e.format),
    [RaTlsFormat.GRAMINE_LEGACY, RaTlsFormat.TCG_DICE],
  );
  assert.equal(result.evidence[0]!.quote.reportData, `5a5a5b2d177433048e9d62409d1acc4ec526c06e294d09e69a36cff9369e4851${'00'.repeat(32)}`);
  assert.equal(result.evidence[1]!.quote.reportData, `d8673446fe0f6842d4af0d182c8751d7e967039116deff5f85a43b2ca90c2831${'00'.repeat(32)}`);
  assert.equal(result.evidence[0]!.quote.identity?.debug, true);
});

test('intel-sgxsdk-ra-tls.der verifies at 2026-01-01 with allowDebug: the SDK quote binds the key through the TCG DICE claims', () => {
  const result = verifyRaTlsCertificate(sdk, { at: VALID_AT, expected: debugOk });
  assert.ok(result.ok, explain(result));
  assert.equal(result.spkiSha256, 'f306ed602985371e3b485102db1fcdd4f4738329ce58b2f8d1c5d2cc79752026');
  assert.deepEqual(
    result.evidence.map((e) => e.format),
    [RaTlsFormat.INTEL_SDK, RaTlsFormat.TCG_DICE],
  );
});

test('both real certificates are refused without allowDebug, at check debug', () => {
  for (const der of [gramine, sdk]) {
    const result = verifyRaTlsCertificate(der, { at: VALID_AT });
    assert.equal(failed(result), QuoteCheck.DEBUG);
    assert.match((result as { reason: string }).reason, /debug mode/);
  }
});

test('a wrong expected MRENCLAVE fails check mrenclave, after the quotes and their binding passed', () => {
  const result = verifyRaTlsCertificate(gramine, { at: VALID_AT, expected: { ...debugOk, mrenclave: 'ab'.repeat(32) } });
  assert.equal(failed(result), QuoteCheck.MRENCLAVE);
});

test('at 2034-01-01 (expired) and 2018-01-01 (not yet valid) both real certificates are refused', () => {
  const expired = new Date('2034-01-01T00:00:00Z');
  const early = new Date('2018-01-01T00:00:00Z');
  // Gramine's certificate itself ends in 2030; its quotes' PCK certificates start in 2022.
  assert.equal(failed(verifyRaTlsCertificate(gramine, { at: expired, expected: debugOk })), RaTlsCheck.VALIDITY);
  assert.equal(failed(verifyRaTlsCertificate(gramine, { at: early, expected: debugOk })), QuoteCheck.PCK_CHAIN_VALIDITY);
  // The SDK's certificate runs 2021-2050; its PCK certificate ends in 2030.
  assert.equal(failed(verifyRaTlsCertificate(sdk, { at: expired, expected: debugOk })), QuoteCheck.PCK_CHAIN_VALIDITY);
  assert.equal(failed(verifyRaTlsCertificate(sdk, { at: early, expected: debugOk })), RaTlsCheck.VALIDITY);
});

// --- hostile bytes ---

function sweep(bit: number): Map<string, number> {
  const checks = new Map<string, number>();
  for (let i = 0; i < gramine.length; i++) {
    const copy = Buffer.from(gramine);
    copy[i] = copy[i]! ^ bit;
    const result = verifyRaTlsCertificate(copy, { at: VALID_AT, expected: debugOk });
    assert.equal(result.ok, false, `byte ${i} with bit 0x${bit.toString(16)} flipped still verifies`);
    if (!result.ok) checks.set(result.failedCheck, (checks.get(result.failedCheck) ?? 0) + 1);
  }
  return checks;
}

test('flipping bit 0 of every one of the 10068 bytes of gramine-ra-tls.der: no copy verifies', () => {
  const checks = sweep(0x01);
  assert.ok((checks.get(RaTlsCheck.SELF_SIGNATURE) ?? 0) > 9000, 'changes inside tbsCertificate break the self-signature');
  assert.ok((checks.get(RaTlsCheck.CERTIFICATE) ?? 0) > 0, 'changes to the DER framing and the outer algorithm are refused as structure');
});

test('flipping bit 7 of every one of the 10068 bytes of gramine-ra-tls.der: no copy verifies', () => {
  sweep(0x80);
});

test('the NULL-parameter trap: byte 9960 (the outer NULL tag, covered by no signature) changed is refused', () => {
  assert.equal(gramine[9960], 0x05);
  for (const value of [0x04, 0x00, 0x85]) {
    const copy = Buffer.from(gramine);
    copy[9960] = value;
    assert.equal(failed(verifyRaTlsCertificate(copy, { at: VALID_AT, expected: debugOk })), RaTlsCheck.CERTIFICATE);
  }
});

test('an outer signatureAlgorithm without the NULL that tbsCertificate has (well-formed DER) is refused as not byte-identical', () => {
  // [9948, 9962) is 30 0c <OID 10 bytes> 05 00: drop the NULL, shorten the AlgorithmIdentifier and the Certificate.
  const outer = gramine.subarray(9948, 9962);
  assert.equal(outer.toString('hex'), '300c06082a8648ce3d0403020500');
  const withoutNull = Buffer.concat([Buffer.from('300a', 'hex'), gramine.subarray(9950, 9960)]);
  const shorter = Buffer.concat([gramine.subarray(0, 9948), withoutNull, gramine.subarray(9962)]);
  shorter.writeUInt16BE(gramine.readUInt16BE(2) - 2, 2);
  const parts = parseCertificateDer(shorter);
  assert.notDeepEqual(parts.innerAlgorithm, parts.outerAlgorithm);
  const result = verifyRaTlsCertificate(shorter, { at: VALID_AT, expected: debugOk });
  assert.equal(failed(result), RaTlsCheck.CERTIFICATE);
  assert.match((result as { reason: string }).reason, /outer signatureAlgorithm differs/);
});

test('a byte appended, the last byte removed, and PEM text instead of DER: refused as certificate', () => {
  assert.equal(failed(verifyRaTlsCertificate(Buffer.concat([gramine, Buffer.from([0])]), { at: VALID_AT })), RaTlsCheck.CERTIFICATE);
  assert.equal(failed(verifyRaTlsCertificate(gramine.subarray(0, -1), { at: VALID_AT })), RaTlsCheck.CERTIFICATE);
  const pemText = Buffer.from(new X509Certificate(gramine).toString());
  assert.equal(failed(verifyRaTlsCertificate(pemText, { at: VALID_AT })), RaTlsCheck.CERTIFICATE);
});

// --- certificates made here ---

const enclave = await createFakeQuotingEnclave();
const now = new Date();

test("createRaTlsCertificate: a fresh P-384 key, Gramine's two extensions (exact OID bytes), verifies with the fake root", async () => {
  const made = await createRaTlsCertificate(enclave.attestor, { now, hosts: ['bastion.example'] });
  const cert = new X509Certificate(made.cert);
  const der = cert.raw;
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
  assert.ok(der.includes(Buffer.from('060b06092a864886f84d8a3906', 'hex')), 'the legacy extnID: an OID whose content is a whole DER OID');
  assert.ok(der.includes(Buffer.from('0606678105050409', 'hex')), 'the TCG DICE tagged evidence extnID 2.23.133.5.4.9');
  assert.match(cert.subjectAltName ?? '', /DNS:bastion\.example/);
  assert.equal(
    made.spkiSha256,
    createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex'),
  );
  const result = verifyRaTlsCertificate(der, { at: now, trustAnchor: enclave.rootCa, expected: { mrenclave: '11'.repeat(32) } });
  assert.ok(result.ok, explain(result));
  assert.equal(result.spkiSha256, made.spkiSha256);
  assert.deepEqual(
    result.evidence.map((e) => e.format),
    [RaTlsFormat.GRAMINE_LEGACY, RaTlsFormat.TCG_DICE],
  );
  // Without the fake root the quotes are not Intel's: refused at pck-chain, naming the extension.
  const pinned = verifyRaTlsCertificate(der, { at: now });
  assert.equal(failed(pinned), QuoteCheck.PCK_CHAIN);
  assert.equal((pinned as { format?: string }).format, RaTlsFormat.GRAMINE_LEGACY);
});

test('createRaTlsCertificate: TCG DICE value = tag 60000 [quote, claims], claims {"pubkey-hash": [1, SHA-256(SPKI)]}', async () => {
  const made = await createRaTlsCertificate(enclave.attestor, { now });
  const parts = parseCertificateDer(new X509Certificate(made.cert).raw);
  const dice = parts.extensions.find((e) => e.id.toString('hex') === '678105050409')!;
  const tagged = decode(dice.value) as Tag;
  assert.equal(tagged.tag, 60000);
  const [, claims] = tagged.contents as [Uint8Array, Uint8Array];
  const expectedClaims = Buffer.concat([
    Buffer.from('a16b7075626b65792d686173685824820158 20'.replace(/ /g, ''), 'hex'),
    Buffer.from(made.spkiSha256, 'hex'),
  ]);
  assert.deepEqual(Buffer.from(claims), expectedClaims, 'the same 51 bytes Gramine writes (README)');
});

test('each RA-TLS certificate has its own key, and the private key PEM matches the certificate', async () => {
  const [a, b] = await Promise.all([createRaTlsCertificate(enclave.attestor, { now }), createRaTlsCertificate(enclave.attestor, { now })]);
  assert.notEqual(a.spkiSha256, b.spkiSha256);
  const { createPrivateKey, createPublicKey } = await import('node:crypto');
  const pub = createPublicKey(createPrivateKey(a.key)).export({ type: 'spki', format: 'der' });
  assert.equal(createHash('sha256').update(pub).digest('hex'), a.spkiSha256);
});

test('an attestor that returns a quote over other report data makes createRaTlsCertificate throw instead of serving it', async () => {
  const liar = { quote: async () => enclave.quote(Buffer.alloc(64, 9)) };
  await assert.rejects(createRaTlsCertificate(liar, { now }), /does not carry the report data asked for/);
});

/**
 * A self-signed P-384 certificate with the given extensions (or those made from its key's SPKI hash): what an
 * attacker holding some other key could make.
 */
async function selfSigned(extensions: x509.Extension[] | ((spkiSha256: Buffer) => x509.Extension[])): Promise<Buffer> {
  const alg = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  if (typeof extensions === 'function') {
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    extensions = extensions(createHash('sha256').update(spki).digest());
  }
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=Bastion RA-TLS, O=Bastion',
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter: new Date(now.getTime() + 3600_000),
    keys: keys as never,
    signingAlgorithm: alg,
    extensions,
  });
  return Buffer.from(cert.rawData);
}

const extensionOf = (der: Buffer, hexId: string, type: string) => {
  const ext = parseCertificateDer(der).extensions.find((e) => e.id.toString('hex') === hexId)!;
  return new x509.Extension(type, false, ext.value);
};

test('a genuine quote swapped into a certificate of another key fails key-binding (legacy and TCG DICE alike)', async () => {
  const genuine = new X509Certificate((await createRaTlsCertificate(enclave.attestor, { now })).cert).raw;
  const legacy = extensionOf(genuine, '06092a864886f84d8a3906', '0.6.9.42.840.113741.1337.6');
  const dice = extensionOf(genuine, '678105050409', '2.23.133.5.4.9');
  const options = { at: now, trustAnchor: enclave.rootCa };
  for (const extensions of [[legacy], [dice], [legacy, dice]]) {
    const result = verifyRaTlsCertificate(await selfSigned(extensions), options);
    assert.equal(failed(result), RaTlsCheck.KEY_BINDING, explain(result));
  }
  // TCG DICE claims rewritten for the new key, but the quote still binds the old claims: key-binding again.
  const [quote] = (decode(new Uint8Array(dice.value)) as Tag).contents as [Uint8Array];
  const forgedClaims = encode(new Map([['pubkey-hash', encode([1, new Uint8Array(32)])]]));
  const forged = new x509.Extension('2.23.133.5.4.9', false, encode(new Tag(60000, [quote, forgedClaims])));
  assert.equal(failed(verifyRaTlsCertificate(await selfSigned([forged]), options)), RaTlsCheck.KEY_BINDING);
});

test('evidence problems: no quote extension, a malformed TCG DICE value, and quotes of two different enclaves', async () => {
  const options = { at: now, trustAnchor: enclave.rootCa };
  const none = verifyRaTlsCertificate(await selfSigned([]), options);
  assert.equal(failed(none), RaTlsCheck.EVIDENCE);
  assert.match((none as { reason: string }).reason, /no attestation evidence/);
  const notTagged = new x509.Extension('2.23.133.5.4.9', false, encode([new Uint8Array(1), new Uint8Array(1)]));
  assert.equal(failed(verifyRaTlsCertificate(await selfSigned([notTagged]), options)), RaTlsCheck.EVIDENCE);
  const notCbor = new x509.Extension('2.23.133.5.4.9', false, Buffer.from([0xff, 0x00]));
  assert.equal(failed(verifyRaTlsCertificate(await selfSigned([notCbor]), options)), RaTlsCheck.EVIDENCE);
  // Two quotes, each bound to the key, from two enclaves: which one would the client be talking to?
  const legacyFor = (spkiSha256: Buffer, mrenclave: Buffer) =>
    new x509.Extension('0.6.9.42.840.113741.1337.6', false, enclave.quote(Buffer.concat([spkiSha256, Buffer.alloc(32)]), { mrenclave }));
  const bound = await selfSigned((h) => [legacyFor(h, Buffer.alloc(32, 0x11))]);
  assert.ok(verifyRaTlsCertificate(bound, options).ok, 'one bound quote alone verifies (the builder is faithful)');
  const intelSdkFor = (spkiSha256: Buffer, mrenclave: Buffer) => {
    const claims = encode(new Map([['pubkey-hash', encode([1, new Uint8Array(spkiSha256)])]]));
    const reportData = Buffer.concat([createHash('sha256').update(claims).digest(), Buffer.alloc(32)]);
    const quote = enclave.quote(reportData, { mrenclave });
    return [
      new x509.Extension('1.2.840.113741.1.13.1', false, quote),
      new x509.Extension('2.23.133.5.4.9', false, encode(new Tag(60000, [new Uint8Array(quote), claims]))),
    ];
  };
  const sdkShaped = await selfSigned((h) => intelSdkFor(h, Buffer.alloc(32, 0x11)));
  assert.ok(verifyRaTlsCertificate(sdkShaped, options).ok, 'the Intel SDK layout made here verifies too');
  const mixed = await selfSigned((h) => [legacyFor(h, Buffer.alloc(32, 0x11)), ...intelSdkFor(h, Buffer.alloc(32, 0x33))]);
  const result = verifyRaTlsCertificate(mixed, options);
  assert.equal(failed(result), RaTlsCheck.EVIDENCE);
  assert.match((result as { reason: string }).reason, /different enclaves/);
});

test('an Intel SDK quote without TCG DICE claims beside it binds nothing: key-binding', async () => {
  const options = { at: now, trustAnchor: enclave.rootCa };
  const quoteOverKey = (h: Buffer) => enclave.quote(Buffer.concat([h, Buffer.alloc(32)]));
  const lone = await selfSigned((h) => [new x509.Extension('1.2.840.113741.1.13.1', false, quoteOverKey(h))]);
  const result = verifyRaTlsCertificate(lone, options);
  assert.equal(failed(result), RaTlsCheck.KEY_BINDING);
  assert.match((result as { reason: string }).reason, /TCG DICE claims, which this certificate lacks/);
});

test('an unknown critical extension or a repeated extension is refused as certificate', async () => {
  const options = { at: now, trustAnchor: enclave.rootCa };
  const critical = new x509.Extension('1.3.6.1.4.1.99999.1', true, Buffer.from([0x05, 0x00]));
  assert.equal(failed(verifyRaTlsCertificate(await selfSigned([critical]), options)), RaTlsCheck.CERTIFICATE);
  const twice = new x509.Extension('1.3.6.1.4.1.99999.2', false, Buffer.from([0x05, 0x00]));
  assert.equal(failed(verifyRaTlsCertificate(await selfSigned([twice, twice]), options)), RaTlsCheck.CERTIFICATE);
});
