// RA-TLS: a self-signed TLS certificate whose extensions carry DCAP quotes binding its public key, so a
// client that checks the quotes knows the key was made inside the enclave they name. This module makes
// such certificates (Gramine's layout: its legacy quote extension and the TCG DICE tagged-evidence one)
// and verifies them (those two and the Intel SGX SDK's extension). Invariant of the verifier: `ok: true`
// means the certificate is strict DER signed by its own key, valid at the caller's time, and every quote
// it carries verifies (verifyQuote) and binds that key as its format says; the caller's identity comes last.
import { createHash, createPublicKey, type KeyObject, verify, webcrypto, type X509Certificate } from 'node:crypto';
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 handlers through tsyringe, which needs it
import * as x509 from '@peculiar/x509';
import { decode, encode, Tag } from 'cbor2';
import { BastionError } from '../errors.js';
import { type Attestor, parseQuoteBody, spkiSha256 } from './attestation.js';
import { type CertificateParts, DerError, parseCertificateDer } from './der.js';
import {
  checkQuoteExpectations,
  NOT_CHECKED_OFFLINE,
  type ParsedQuote,
  type QuoteCheck,
  type QuoteExpectations,
  verifyQuote,
} from './quote-verify.js';
// tls.ts sets @peculiar/x509's crypto provider when it loads.
import { privateKeyPem, subjectAltNames, type X509KeyPair } from './tls.js';

/** The checks of verifyRaTlsCertificate that are its own; quote checks keep verifyQuote's names. */
export const RaTlsCheck = {
  /** Strict DER, both signatureAlgorithms byte-identical, known algorithm and key, no unknown critical or repeated extension. */
  CERTIFICATE: 'certificate',
  SELF_SIGNATURE: 'self-signature',
  VALIDITY: 'validity',
  /** At least one quote extension, each well-formed; all quotes state the same enclave. */
  EVIDENCE: 'evidence',
  /** Each quote's report data binds the certificate's public key, as its format says. */
  KEY_BINDING: 'key-binding',
} as const;
export type RaTlsCheck = (typeof RaTlsCheck)[keyof typeof RaTlsCheck];

export const RaTlsFormat = {
  /** Gramine's extension 1.2.840.113741.1337.6 (wrapped a second time): the raw quote; report data SHA-256(SPKI) ‖ 0³². */
  GRAMINE_LEGACY: 'gramine-legacy',
  /** TCG DICE tagged evidence 2.23.133.5.4.9: CBOR tag 60000 [quote, claims]; report data SHA-256(claims) ‖ 0³². */
  TCG_DICE: 'tcg-dice',
  /** Intel SGX SDK 1.2.840.113741.1.13.1: the raw quote; report data SHA-256(the TCG DICE claims) ‖ 0³². */
  INTEL_SDK: 'intel-sdk',
} as const;
export type RaTlsFormat = (typeof RaTlsFormat)[keyof typeof RaTlsFormat];

/** Extension ids as their raw OID content bytes (hex): matched by bytes, since Gramine's legacy one is not a normal OID. */
const EXTENSION_IDS: Record<string, RaTlsFormat> = {
  '06092a864886f84d8a3906': RaTlsFormat.GRAMINE_LEGACY,
  '678105050409': RaTlsFormat.TCG_DICE,
  '2a864886f84d010d01': RaTlsFormat.INTEL_SDK,
};
/** What @peculiar/x509 calls Gramine's legacy extension id (its content bytes read as an OID); encodes to the bytes above. */
const GRAMINE_LEGACY_OID_STRING = '0.6.9.42.840.113741.1337.6';
const TCG_DICE_TAGGED_EVIDENCE_OID = '2.23.133.5.4.9';
/** Gramine's CBOR tag for "tagged evidence: an SGX quote plus claims". */
const CBOR_TAG_SGX_EVIDENCE = 60000;
/** The claim that binds the key: CBOR [hash algorithm (1 = SHA-256, IANA named information), hash of the SPKI]. */
const PUBKEY_HASH_CLAIM = 'pubkey-hash';
const HASH_ALG_SHA256 = 1;

/** Critical extensions a TLS client understands; any other critical extension makes the certificate unusable (RFC 5280 4.2). */
const KNOWN_CRITICAL = new Set(['551d13', '551d0f', '551d25', '551d11']);

const SIGNATURE_ALGORITHMS: Record<string, { hash: string; keyType: 'ec' | 'rsa' }> = {
  '2a8648ce3d040302': { hash: 'sha256', keyType: 'ec' },
  '2a8648ce3d040303': { hash: 'sha384', keyType: 'ec' },
  '2a8648ce3d040304': { hash: 'sha512', keyType: 'ec' },
  '2a864886f70d01010b': { hash: 'sha256', keyType: 'rsa' },
  '2a864886f70d01010c': { hash: 'sha384', keyType: 'rsa' },
  '2a864886f70d01010d': { hash: 'sha512', keyType: 'rsa' },
};

const CBOR_STRICT = { requirePreferred: true, rejectStreaming: true, rejectDuplicateKeys: true, preferMap: true } as const;

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest();
/** The 64 bytes of report data an RA-TLS quote carries: a 32-byte hash and 32 zero bytes. */
const hashReportData = (data: Uint8Array) => Buffer.concat([sha256(data), Buffer.alloc(32)]);

/** The claims byte string of the TCG DICE extension: CBOR {"pubkey-hash": bstr(CBOR [1, SHA-256(SPKI)])}. */
function pubkeyHashClaims(spkiSha256: Buffer): Buffer {
  return Buffer.from(encode(new Map([[PUBKEY_HASH_CLAIM, encode([HASH_ALG_SHA256, new Uint8Array(spkiSha256)])]])));
}

// --- making ---

/** How long an RA-TLS certificate is valid; the server makes a new one (with a new key) at every start. */
const RA_TLS_VALIDITY_DAYS = 825;
/** Back-dating for clients whose clocks run behind. */
const CLOCK_SKEW_MS = 3600 * 1000;

export interface RaTlsCertificate {
  /** PEM. */
  cert: string;
  /** PEM, PKCS#8: the private key, made in memory; the caller must keep it there. */
  key: string;
  /** SHA-256 of the certificate's SubjectPublicKeyInfo, hex: what the quotes bind, and safe to log. */
  spkiSha256: string;
}

/**
 * Makes a fresh ECDSA P-384 key in memory (as Gramine does) and a self-signed certificate carrying two quotes
 * from `attestor`, one per extension: Gramine's legacy one (report data SHA-256(SPKI) ‖ 0³²) and TCG DICE
 * tagged evidence (report data SHA-256(claims) ‖ 0³²). Valid from `now` minus an hour for 825 days.
 * Throws when the attestor hands back a quote over other report data: a certificate no client could verify
 * is refused here rather than served.
 */
export async function createRaTlsCertificate(
  attestor: Attestor,
  options: {
    now: Date;
    /** DNS names or IP addresses for the subjectAltName (a convenience only: trust comes from the quotes). */
    hosts?: string[];
  },
): Promise<RaTlsCertificate> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const keyHash = sha256(spki);
  const claims = pubkeyHashClaims(keyHash);
  const quoteFor = async (reportData: Buffer, what: string) => {
    const quote = await attestor.quote(reportData);
    if (!parseQuoteBody(quote).reportData.equals(reportData)) {
      throw new BastionError('INTERNAL', `The enclave's quote for the RA-TLS ${what} extension does not carry the report data asked for`);
    }
    return quote;
  };
  const legacyQuote = await quoteFor(hashReportData(spki), 'legacy');
  const diceQuote = await quoteFor(hashReportData(claims), 'TCG DICE');
  const evidence = encode(new Tag(CBOR_TAG_SGX_EVIDENCE, [new Uint8Array(diceQuote), new Uint8Array(claims)]));

  const notBefore = new Date(options.now.getTime() - CLOCK_SKEW_MS);
  const x509Keys = keys as unknown as X509KeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
      .toString('hex')
      .replace(/^./, '7'),
    // Gramine's layout names the software, not a host (CN=RATLS, O=GramineDevelopers, C=US): keep CN and O,
    // with our names. No client may rely on them: an RA-TLS certificate is trusted through its quotes only.
    name: 'CN=Bastion RA-TLS, O=Bastion',
    notBefore,
    notAfter: new Date(notBefore.getTime() + RA_TLS_VALIDITY_DAYS * 24 * 3600 * 1000),
    keys: x509Keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(subjectAltNames(options.hosts ?? [])),
      await x509.SubjectKeyIdentifierExtension.create(x509Keys.publicKey),
      new x509.Extension(GRAMINE_LEGACY_OID_STRING, false, legacyQuote),
      new x509.Extension(TCG_DICE_TAGGED_EVIDENCE_OID, false, evidence),
    ],
  });
  if (!spkiSha256(Buffer.from(certificate.rawData)).equals(keyHash)) {
    throw new BastionError('INTERNAL', 'The RA-TLS certificate encodes its public key differently from the key the quotes bind');
  }
  return { cert: certificate.toString('pem'), key: await privateKeyPem(keys.privateKey), spkiSha256: keyHash.toString('hex') };
}

// --- verifying ---

export interface RaTlsEvidence {
  format: RaTlsFormat;
  quote: ParsedQuote;
}

export type RaTlsVerification =
  | {
      ok: true;
      /** SHA-256 of the certificate's SubjectPublicKeyInfo, hex. */
      spkiSha256: string;
      /** Every quote the certificate carries, each verified and bound to its key. */
      evidence: RaTlsEvidence[];
      notChecked: readonly string[];
    }
  | { ok: false; failedCheck: RaTlsCheck | QuoteCheck; reason: string; format?: RaTlsFormat };

class RaTlsFailure extends Error {
  constructor(
    readonly check: RaTlsCheck | QuoteCheck,
    message: string,
    readonly format?: RaTlsFormat,
  ) {
    super(message);
  }
}

const fail = (check: RaTlsCheck | QuoteCheck, reason: string, format?: RaTlsFormat): never => {
  throw new RaTlsFailure(check, reason, format);
};

/** True when a certificate carries an extension of a format verifyRaTlsCertificate reads (whether or not it verifies). */
export function hasRaTlsEvidence(der: Buffer): boolean {
  try {
    return parseCertificateDer(der).extensions.some((e) => EXTENSION_IDS[e.id.toString('hex')] !== undefined);
  } catch (error) {
    if (error instanceof DerError) return false;
    throw error;
  }
}

function checkCertificate(der: Buffer): { parts: CertificateParts; publicKey: KeyObject } {
  let parts: CertificateParts;
  try {
    parts = parseCertificateDer(der);
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
    return fail(RaTlsCheck.CERTIFICATE, `not a strict DER certificate: ${error.message}`);
  }
  // X.509 requires these to be equal; no signature covers the outer one (README: byte 9960 of gramine-ra-tls.der).
  if (!parts.innerAlgorithm.equals(parts.outerAlgorithm)) {
    fail(RaTlsCheck.CERTIFICATE, 'the outer signatureAlgorithm differs from the one in tbsCertificate');
  }
  const seen = new Set<string>();
  for (const ext of parts.extensions) {
    const id = ext.id.toString('hex');
    if (seen.has(id)) fail(RaTlsCheck.CERTIFICATE, `extension ${id} (OID bytes, hex) appears twice`);
    seen.add(id);
    if (ext.critical && !KNOWN_CRITICAL.has(id)) fail(RaTlsCheck.CERTIFICATE, `unknown critical extension ${id} (OID bytes, hex)`);
  }
  // Security choice: the key comes from the SPKI bytes read above, never from node:crypto's X509Certificate on the
  // DER: given bytes that contain "-----BEGIN CERTIFICATE-----" (every quote's PCK chain does), it parses the
  // first embedded PEM certificate instead, and would report the PCK certificate's key.
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: parts.spki, format: 'der', type: 'spki' });
  } catch (error) {
    return fail(RaTlsCheck.CERTIFICATE, `the public key does not parse: ${(error as Error).message}`);
  }
  return { parts, publicKey };
}

function checkSelfSignature(parts: CertificateParts, publicKey: KeyObject): void {
  const algorithm = SIGNATURE_ALGORITHMS[parts.algorithmOid.toString('hex')];
  if (!algorithm) {
    fail(RaTlsCheck.CERTIFICATE, `signature algorithm ${parts.algorithmOid.toString('hex')} (OID bytes, hex) is not supported`);
  }
  if (publicKey.asymmetricKeyType !== algorithm!.keyType) {
    fail(RaTlsCheck.CERTIFICATE, `a ${publicKey.asymmetricKeyType} key cannot make a ${algorithm!.keyType} signature`);
  }
  let valid = false;
  try {
    valid = verify(algorithm!.hash, parts.tbs, publicKey, parts.signature);
  } catch {
    valid = false;
  }
  if (!valid) fail(RaTlsCheck.SELF_SIGNATURE, "the signature does not verify with the certificate's own key");
}

function checkValidity(parts: CertificateParts, at: Date): void {
  const t = at.getTime();
  if (Number.isNaN(t)) fail(RaTlsCheck.VALIDITY, 'the verification time is not a valid date');
  const when = () => `verification time ${at.toISOString()}`;
  if (t < parts.notBefore.getTime()) {
    fail(RaTlsCheck.VALIDITY, `the certificate is not valid before ${parts.notBefore.toISOString()} (${when()})`);
  }
  if (t > parts.notAfter.getTime()) fail(RaTlsCheck.VALIDITY, `the certificate expired at ${parts.notAfter.toISOString()} (${when()})`);
}

interface FoundEvidence {
  format: RaTlsFormat;
  quote: Buffer;
  /** TCG DICE only: the claims byte string. */
  claims?: Buffer;
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function decodeCbor(bytes: Uint8Array, what: string): unknown {
  try {
    return decode(bytes, CBOR_STRICT);
  } catch (error) {
    return fail(RaTlsCheck.EVIDENCE, `${what} is not strict CBOR: ${(error as Error).message}`, RaTlsFormat.TCG_DICE);
  }
}

function findEvidence(parts: CertificateParts): FoundEvidence[] {
  const found: FoundEvidence[] = [];
  for (const ext of parts.extensions) {
    const format = EXTENSION_IDS[ext.id.toString('hex')];
    if (format === undefined) continue;
    if (format !== RaTlsFormat.TCG_DICE) {
      found.push({ format, quote: ext.value });
      continue;
    }
    const tagged = decodeCbor(ext.value, 'the TCG DICE tagged evidence');
    if (!(tagged instanceof Tag) || tagged.tag !== CBOR_TAG_SGX_EVIDENCE) {
      fail(RaTlsCheck.EVIDENCE, `the TCG DICE evidence is not CBOR tag ${CBOR_TAG_SGX_EVIDENCE} (an SGX quote and claims)`, format);
    }
    const contents = (tagged as Tag).contents;
    if (!Array.isArray(contents) || contents.length !== 2 || !isBytes(contents[0]) || !isBytes(contents[1])) {
      fail(RaTlsCheck.EVIDENCE, 'the TCG DICE evidence is not an array of two byte strings [quote, claims]', format);
    }
    const [quote, claims] = contents as [Uint8Array, Uint8Array];
    found.push({ format, quote: Buffer.from(quote), claims: Buffer.from(claims) });
  }
  if (found.length === 0) {
    fail(RaTlsCheck.EVIDENCE, 'the certificate carries no attestation evidence (no Gramine, TCG DICE or Intel SGX SDK quote extension)');
  }
  return found;
}

/** The TCG DICE claims must say {"pubkey-hash": [1 (SHA-256), SHA-256(SPKI)]}. */
function checkClaims(claims: Buffer, keyHash: Buffer): void {
  const map = decodeCbor(claims, 'the TCG DICE claims');
  const format = RaTlsFormat.TCG_DICE;
  if (!(map instanceof Map)) {
    fail(RaTlsCheck.EVIDENCE, 'the TCG DICE claims are not a CBOR map', format);
    return;
  }
  const value = map.get(PUBKEY_HASH_CLAIM);
  if (!isBytes(value)) {
    fail(RaTlsCheck.KEY_BINDING, `the TCG DICE claims have no "${PUBKEY_HASH_CLAIM}" byte string`, format);
    return;
  }
  const hash = decodeCbor(value, `the "${PUBKEY_HASH_CLAIM}" claim`);
  if (!Array.isArray(hash) || hash.length !== 2 || hash[0] !== HASH_ALG_SHA256 || !isBytes(hash[1])) {
    fail(RaTlsCheck.KEY_BINDING, `the "${PUBKEY_HASH_CLAIM}" claim is not [1 (SHA-256), hash]`, format);
  }
  if (!Buffer.from((hash as [number, Uint8Array])[1]).equals(keyHash)) {
    fail(RaTlsCheck.KEY_BINDING, `the "${PUBKEY_HASH_CLAIM}" claim is not SHA-256 of this certificate's public key`, format);
  }
}

function checkBinding(item: FoundEvidence, quote: ParsedQuote, keyHash: Buffer, all: FoundEvidence[]): void {
  let expected: Buffer;
  let how: string;
  if (item.format === RaTlsFormat.GRAMINE_LEGACY) {
    expected = Buffer.concat([keyHash, Buffer.alloc(32)]);
    how = "SHA-256 of the certificate's public key";
  } else {
    // The Intel SDK quote binds the key through the TCG DICE claims in the same certificate (README: its report data
    // is not a hash of the key); without them it binds nothing this verifier can see.
    const claims = item.claims ?? all.find((e) => e.format === RaTlsFormat.TCG_DICE)?.claims;
    if (!claims) {
      const why = 'the Intel SGX SDK quote binds the key through TCG DICE claims, which this certificate lacks';
      fail(RaTlsCheck.KEY_BINDING, why, item.format);
      return;
    }
    checkClaims(claims, keyHash);
    expected = hashReportData(claims);
    how = 'SHA-256 of the TCG DICE claims';
  }
  if (quote.reportData !== expected.toString('hex')) {
    fail(RaTlsCheck.KEY_BINDING, `the ${item.format} quote's report data is not ${how} followed by 32 zero bytes`, item.format);
  }
}

/**
 * Verifies an RA-TLS certificate (DER) offline at time `at`: strict DER with byte-identical signature algorithms,
 * its self-signature, its validity, then every quote extension it carries (at least one) with verifyQuote
 * against the pinned Intel root (or `trustAnchor`, for tests) and its binding to the certificate's key, and last
 * `expected`. Never throws for a hostile certificate; a TypeError for malformed expectations.
 */
export function verifyRaTlsCertificate(
  der: Uint8Array,
  options: { at: Date; expected?: Omit<QuoteExpectations, 'reportData'>; trustAnchor?: X509Certificate },
): RaTlsVerification {
  const bytes = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  try {
    const { parts, publicKey } = checkCertificate(bytes);
    checkSelfSignature(parts, publicKey);
    checkValidity(parts, options.at);
    const keyHash = spkiSha256(bytes);
    const found = findEvidence(parts);
    const evidence: RaTlsEvidence[] = [];
    for (const item of found) {
      // allowDebug here: the caller's identity policy runs last, once every quote is known to be genuine and bound.
      const anchor = options.trustAnchor ? { trustAnchor: options.trustAnchor } : {};
      const result = verifyQuote(item.quote, { at: options.at, expected: { allowDebug: true }, ...anchor });
      if (!result.ok) {
        return { ok: false, failedCheck: result.failedCheck, reason: `${item.format} quote: ${result.reason}`, format: item.format };
      }
      checkBinding(item, result.quote, keyHash, found);
      evidence.push({ format: item.format, quote: result.quote });
    }
    const identities = new Set(evidence.map((e) => JSON.stringify(e.quote.identity ?? e.quote.tdIdentity)));
    if (identities.size > 1) fail(RaTlsCheck.EVIDENCE, 'the quotes in this certificate state different enclaves');
    const policy = checkQuoteExpectations(evidence[0]!.quote, options.expected ?? {});
    if (!policy.ok) return policy;
    return { ok: true, spkiSha256: keyHash.toString('hex'), evidence, notChecked: NOT_CHECKED_OFFLINE };
  } catch (error) {
    if (error instanceof RaTlsFailure) {
      return { ok: false, failedCheck: error.check, reason: error.message, ...(error.format ? { format: error.format } : {}) };
    }
    throw error;
  }
}
