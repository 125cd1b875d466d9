// A fake SGX quoting enclave for tests: its own root CA → intermediate CA → PCK certificate (P-256, CA flags
// as Intel's), an attestation key, and quotes over any report data that are byte-for-byte the layout of a
// real SGX DCAP quote version 3. `verifyQuote(q, { at, trustAnchor: rootCa })` accepts them; without the
// trust anchor they fail at check pck-chain (the pinned Intel root), which is the point: nothing here can
// pass for real hardware. Keys and certificates are made once per enclave; quote() signs synchronously.
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 handlers through tsyringe, which needs it
import { createHash, generateKeyPairSync, KeyObject, randomBytes, sign, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import type { Attestor } from '../../src/enclave/attestation.js';

export interface FakeEnclaveIdentity {
  /** 32 bytes. */
  mrenclave?: Buffer;
  /** 32 bytes. */
  mrsigner?: Buffer;
  isvProdId?: number;
  isvSvn?: number;
  /** ATTRIBUTES.DEBUG. */
  debug?: boolean;
}

/** The TCB facts the PCK certificate's SGX extension states (what Intel's collateral is matched against). */
export interface FakePlatform {
  /** 12 hex digits. */
  fmspc: string;
  /** 4 hex digits. */
  pceId: string;
  /** CPU SVN components 1–16. */
  components: number[];
  pceSvn: number;
}

export interface FakeQuotingEnclave {
  /** The root CA to pass to verifyQuote as `trustAnchor`. */
  rootCa: X509Certificate;
  /** The fake Intel's root and PCK CA, with their keys: what fake collateral is signed with. */
  issuers: { root: FakeIssuer; ca: FakeIssuer };
  /** The PCK certificate's serial number (hex) and its TCB facts. */
  pck: { serialNumber: string; platform: FakePlatform };
  /** A version 3 SGX quote over these 64 bytes of report data, for the given identity (default: the enclave's). */
  quote(reportData: Buffer, identity?: FakeEnclaveIdentity): Buffer;
  /** An Attestor (the server's interface) handing out quotes for the enclave's default identity. */
  attestor: Attestor;
  /** The identity quote() uses when given none, complete. */
  identity: Required<FakeEnclaveIdentity>;
}

export interface FakeIssuer {
  cert: x509.X509Certificate;
  keys: { publicKey: webcrypto.CryptoKey; privateKey: webcrypto.CryptoKey };
}

export interface FakeQuotingEnclaveOptions {
  identity?: FakeEnclaveIdentity;
  /** The PCK certificate's SGX extension (default: FMSPC 00906ed50000, PCE ID 0000, components 2, PCE SVN 11). */
  platform?: FakePlatform;
  /** Validity of all three certificates; default 2000-01-01 to 2049-12-31, so any test time in between works. */
  notBefore?: Date;
  notAfter?: Date;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const INTEL_QE_VENDOR_ID = Buffer.from('939a7233f79c4ca9940a0db3957f0607', 'hex');
const ROOT_NAME = 'CN=Bastion test SGX Root CA (fake), O=Bastion tests';
const CA_NAME = 'CN=Bastion test SGX PCK Platform CA (fake), O=Bastion tests';
const PCK_NAME = 'CN=Bastion test SGX PCK Certificate (fake), O=Bastion tests';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type KeyPair = { publicKey: webcrypto.CryptoKey; privateKey: webcrypto.CryptoKey };
const generate = async () => (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as KeyPair;

const SGX_EXTENSION = '1.2.840.113741.1.13.1';

/** The SGX extension Intel writes into PCK certificates: a SEQUENCE of (OID, value) pairs. */
function sgxExtension(platform: FakePlatform): ArrayBuffer {
  const entry = (suffix: string, value: asn1js.AsnType) =>
    new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: `${SGX_EXTENSION}.${suffix}` }), value] });
  const octets = (hex: string) => new asn1js.OctetString({ valueHex: Buffer.from(hex, 'hex') });
  const tcb = new asn1js.Sequence({
    value: [
      ...platform.components.map((svn, i) => entry(`2.${i + 1}`, new asn1js.Integer({ value: svn }))),
      entry('2.17', new asn1js.Integer({ value: platform.pceSvn })),
      entry('2.18', octets(Buffer.from(platform.components).toString('hex'))),
    ],
  });
  return new asn1js.Sequence({
    value: [
      entry('1', octets('00'.repeat(16))),
      entry('2', tcb),
      entry('3', octets(platform.pceId)),
      entry('4', octets(platform.fmspc)),
      entry('5', new asn1js.Enumerated({ value: 0 })),
    ],
  }).toBER();
}

/** PEM exactly as in real quotes: 64-character base64 lines, `\n` line ends. */
function pem(der: ArrayBuffer): string {
  const lines = Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!;
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

/** A 384-byte SGX report body: attributes INIT | MODE64BIT (| DEBUG), XFRM 0xe7, the identity, the report data. */
function reportBody(identity: Required<FakeEnclaveIdentity>, reportData: Buffer): Buffer {
  const body = Buffer.alloc(384);
  Buffer.from('06060c0cffff00000000000000000000', 'hex').copy(body, 0); // CPU SVN
  body.writeBigUInt64LE(identity.debug ? 0x07n : 0x05n, 48);
  body.writeBigUInt64LE(0xe7n, 56);
  identity.mrenclave.copy(body, 64);
  identity.mrsigner.copy(body, 128);
  body.writeUInt16LE(identity.isvProdId, 256);
  body.writeUInt16LE(identity.isvSvn, 258);
  reportData.copy(body, 320);
  return body;
}

function complete(identity: FakeEnclaveIdentity, base: Required<FakeEnclaveIdentity>): Required<FakeEnclaveIdentity> {
  const full = { ...base, ...identity };
  if (full.mrenclave.length !== 32 || full.mrsigner.length !== 32) throw new TypeError('Expected 32 bytes for mrenclave and mrsigner');
  return full;
}

/** Makes the keys and certificates (a few milliseconds); each quote after that is one P-256 signature. */
export async function createFakeQuotingEnclave(options: FakeQuotingEnclaveOptions = {}): Promise<FakeQuotingEnclave> {
  const notBefore = options.notBefore ?? new Date('2000-01-01T00:00:00Z');
  const notAfter = options.notAfter ?? new Date('2049-12-31T23:59:59Z');
  const [rootKeys, caKeys, pckKeys] = await Promise.all([generate(), generate(), generate()]);
  const platform = options.platform ?? {
    fmspc: '00906ed50000',
    pceId: '0000',
    components: Array.from({ length: 16 }, () => 2),
    pceSvn: 11,
  };
  const common = { notBefore, notAfter, signingAlgorithm: ALG };
  const caExtensions = async (keys: KeyPair, pathLength: number) => [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    ...common,
    serialNumber: '01',
    name: ROOT_NAME,
    keys: rootKeys,
    extensions: await caExtensions(rootKeys, 1),
  });
  const ca = await x509.X509CertificateGenerator.create({
    ...common,
    serialNumber: '02',
    subject: CA_NAME,
    issuer: ROOT_NAME,
    publicKey: caKeys.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: await caExtensions(caKeys, 0),
  });
  const pck = await x509.X509CertificateGenerator.create({
    ...common,
    serialNumber: '03',
    subject: PCK_NAME,
    issuer: CA_NAME,
    publicKey: pckKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation, true),
      new x509.Extension(SGX_EXTENSION, false, sgxExtension(platform)),
    ],
  });
  // The certification data of type 5: PCK, intermediate, root, then one NUL counted in its size (as in real quotes).
  const pemChain = Buffer.from(`${pem(pck.rawData) + pem(ca.rawData) + pem(root.rawData)}\0`, 'latin1');
  const pckPrivate = KeyObject.from(pckKeys.privateKey as unknown as Parameters<typeof KeyObject.from>[0]);

  // The attestation key and the quoting enclave's report binding it: fixed for this enclave, so signed once.
  const attestation = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = attestation.publicKey.export({ format: 'jwk' });
  const attestationKey = Buffer.concat([Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  const qeAuthData = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  const qeBinding = Buffer.concat([createHash('sha256').update(attestationKey).update(qeAuthData).digest(), Buffer.alloc(32)]);
  const qeReport = reportBody(
    { mrenclave: Buffer.alloc(32, 0xe1), mrsigner: Buffer.alloc(32, 0xe2), isvProdId: 1, isvSvn: 9, debug: false },
    qeBinding,
  );
  const qeReportSignature = sign('sha256', qeReport, { key: pckPrivate, dsaEncoding: 'ieee-p1363' });
  const certificationData = Buffer.concat([u16(5), u32(pemChain.length), pemChain]);
  const qeAuth = Buffer.concat([u16(qeAuthData.length), qeAuthData]);
  const afterSignature = Buffer.concat([attestationKey, qeReport, qeReportSignature, qeAuth, certificationData]);
  // Header: version 3, key type 2 (ECDSA P-256), reserved, QE SVN 9, PCE SVN 13, QE vendor id, user data.
  const header = Buffer.concat([u16(3), u16(2), u32(0), u16(9), u16(13), INTEL_QE_VENDOR_ID, randomBytes(20)]);

  const identity = complete(options.identity ?? {}, {
    mrenclave: Buffer.alloc(32, 0x11),
    mrsigner: Buffer.alloc(32, 0x22),
    isvProdId: 0,
    isvSvn: 0,
    debug: false,
  });
  const quote = (reportData: Buffer, override: FakeEnclaveIdentity = {}): Buffer => {
    if (reportData.length !== 64) throw new TypeError(`Expected 64 bytes of report data but received ${reportData.length}`);
    const signed = Buffer.concat([header, reportBody(complete(override, identity), reportData)]);
    const signature = sign('sha256', signed, { key: attestation.privateKey, dsaEncoding: 'ieee-p1363' });
    return Buffer.concat([signed, u32(signature.length + afterSignature.length), signature, afterSignature]);
  };
  return {
    rootCa: new X509Certificate(Buffer.from(root.rawData)),
    issuers: { root: { cert: root, keys: rootKeys }, ca: { cert: ca, keys: caKeys } },
    pck: { serialNumber: '03', platform },
    quote,
    attestor: { quote: async (reportData) => quote(reportData) },
    identity,
  };
}
