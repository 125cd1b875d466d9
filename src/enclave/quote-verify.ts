// Offline verification of Intel DCAP quotes (SGX quote v3, v4/v5 with an SGX or TDX body). This module
// owns one invariant: `ok: true` means every byte of the quote was accounted for by a strict parser, the
// attestation key signed header ‖ body, the quoting enclave's report binds that key and is signed by the
// PCK certificate, and the PCK chain ends in the pinned Intel SGX Root CA (or, for tests, a trust anchor
// the calling code passes) with every certificate valid at the caller's time. Pure: no clock, no file or
// network access; what is not checkable offline (TCB status, revocation) is said in the result instead of
// being silently assumed.
import { createHash, createPublicKey, type KeyObject, verify, X509Certificate } from 'node:crypto';
import { CheckFailure, failCheck } from './check-failure.js';
import { CollateralCheck, type CollateralFile, type CollateralVerdict, checkCollateral } from './collateral.js';
import { type CertificateParts, DerError, parseCertificateDer } from './der.js';
import { INTEL_SGX_ROOT_CA_SHA256, intelSgxRootCa } from './intel-sgx-root-ca.js';

/** The checks, in the order they run; a failure names the first one that failed. */
export const QuoteCheck = {
  /** Layout: versions, key type, every length read from the quote, the PEM chain's text. */
  STRUCTURE: 'structure',
  /** ECDSA P-256 signature by the attestation key over header ‖ body. */
  QUOTE_SIGNATURE: 'quote-signature',
  /** QE report data = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes. */
  QE_REPORT_BINDING: 'qe-report-binding',
  /** The QE report's signature by the PCK certificate's key. */
  QE_REPORT_SIGNATURE: 'qe-report-signature',
  /** PCK → intermediate → pinned root: parsing, pinning, names, signatures, CA flags. */
  PCK_CHAIN: 'pck-chain',
  /** Every certificate of the chain valid at the verification time. */
  PCK_CHAIN_VALIDITY: 'pck-chain-validity',
  /** With Intel's collateral only (src/enclave/collateral.ts): collateral, revocation, qe-identity, tcb-status. */
  ...CollateralCheck,
  MRENCLAVE: 'mrenclave',
  MRSIGNER: 'mrsigner',
  ISV_PROD_ID: 'isv-prod-id',
  ISV_SVN: 'isv-svn',
  DEBUG: 'debug',
  REPORT_DATA: 'report-data',
} as const;
export type QuoteCheck = (typeof QuoteCheck)[keyof typeof QuoteCheck];

export const NOT_CHECKED_OFFLINE = ['TCB status', 'revocation (CRLs)'] as const;

export const TeeType = { SGX: 0x00, TDX: 0x81 } as const;

export interface SgxIdentity {
  /** 64 lower-case hex digits. */
  mrenclave: string;
  mrsigner: string;
  isvProdId: number;
  isvSvn: number;
  /** ATTRIBUTES.DEBUG: the enclave's memory is readable by its host. */
  debug: boolean;
}

export interface TdxIdentity {
  /** 96 lower-case hex digits. */
  mrtd: string;
  /** TD attributes bit 0 (DEBUG). */
  debug: boolean;
}

export interface ParsedQuote {
  version: 3 | 4 | 5;
  teeType: 'sgx' | 'tdx';
  /** v5 only: 1 SGX, 2 TDX 1.0, 3 TDX 1.5. */
  bodyType: 1 | 2 | 3;
  bodySizeBytes: number;
  /** Present for SGX bodies. */
  identity?: SgxIdentity;
  /** Present for TDX bodies. */
  tdIdentity?: TdxIdentity;
  /** 128 lower-case hex digits. */
  reportData: string;
  /** The quoting enclave's identity (checked against Intel's QE identity only online). */
  qeIdentity: SgxIdentity;
  /** Zero bytes after the signature data (v4/v5 only; real TDX v4 quotes carry them). */
  paddingBytes: number;
}

export interface QuoteExpectations {
  /** 64 hex digits. */
  mrenclave?: string;
  /** 64 hex digits. */
  mrsigner?: string;
  isvProdId?: number;
  minIsvSvn?: number;
  /** Accept an enclave (or TD) with DEBUG set. Default false: a debug enclave protects nothing. */
  allowDebug?: boolean;
  /** 128 hex digits: the report data the caller expects (a nonce binding, a key hash). */
  reportData?: string;
}

export type QuoteVerification =
  | { ok: true; quote: ParsedQuote; notChecked: readonly string[]; collateral?: CollateralVerdict }
  | { ok: false; failedCheck: QuoteCheck; reason: string; quote?: ParsedQuote };

const HEADER_BYTES = 48;
const SGX_REPORT_BYTES = 384;
const TDX10_REPORT_BYTES = 584;
const TDX15_REPORT_BYTES = 648;
const ECDSA_P256_KEY_TYPE = 2;
const CERT_DATA_PCK_CHAIN = 5;
const CERT_DATA_QE_REPORT = 6;
/** Three certificates of at most a few KiB each: a bound well above any real chain. */
const MAX_CHAIN_CERTIFICATES = 3;

const fail = (check: QuoteCheck, reason: string): never => failCheck(check, reason);

/** A cursor that refuses to read past the end of its window: every length from the quote is checked here. */
class Reader {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
    private readonly end: number,
  ) {}
  take(n: number, what: string): Buffer {
    if (n < 0 || this.pos + n > this.end) {
      fail(QuoteCheck.STRUCTURE, `${what} (${n} bytes at offset ${this.pos}) runs past the end of its enclosing structure at ${this.end}`);
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u16(what: string): number {
    return this.take(2, what).readUInt16LE(0);
  }
  u32(what: string): number {
    return this.take(4, what).readUInt32LE(0);
  }
  expectEnd(what: string): void {
    if (this.pos !== this.end) fail(QuoteCheck.STRUCTURE, `${what}: ${this.end - this.pos} unaccounted bytes at offset ${this.pos}`);
  }
}

interface RawQuote {
  parsed: ParsedQuote;
  signedBytes: Buffer;
  signature: Buffer;
  attestationKey: Buffer;
  qeReport: Buffer;
  qeReportSignature: Buffer;
  qeAuthData: Buffer;
  /** The chain's DER certificates, from the strictly parsed PEM text. */
  chainDers: Buffer[];
}

function sgxIdentity(report: Buffer): SgxIdentity {
  return {
    mrenclave: report.subarray(64, 96).toString('hex'),
    mrsigner: report.subarray(128, 160).toString('hex'),
    isvProdId: report.readUInt16LE(256),
    isvSvn: report.readUInt16LE(258),
    debug: (report[48]! & 0x02) !== 0,
  };
}

function parseLayout(quote: Buffer): RawQuote {
  const r = new Reader(quote, 0, quote.length);
  const version = r.u16('version');
  if (version !== 3 && version !== 4 && version !== 5) fail(QuoteCheck.STRUCTURE, `quote version ${version} is not supported (3, 4 or 5)`);
  const keyType = r.u16('attestation key type');
  if (keyType !== ECDSA_P256_KEY_TYPE) fail(QuoteCheck.STRUCTURE, `attestation key type ${keyType} is not supported (2, ECDSA P-256)`);
  const teeTypeRaw = r.u32('TEE type');
  if (version === 3 && teeTypeRaw !== 0) fail(QuoteCheck.STRUCTURE, `version 3 header bytes 4-7 are reserved and must be zero`);
  if (teeTypeRaw !== TeeType.SGX && teeTypeRaw !== TeeType.TDX) {
    fail(QuoteCheck.STRUCTURE, `TEE type 0x${teeTypeRaw.toString(16)} is unknown`);
  }
  r.take(HEADER_BYTES - 8, 'header');
  let bodyType: 1 | 2 | 3;
  let bodySize: number;
  if (version === 5) {
    const type = r.u16('body type');
    bodySize = r.u32('body size');
    const sizes: Record<number, number> = { 1: SGX_REPORT_BYTES, 2: TDX10_REPORT_BYTES, 3: TDX15_REPORT_BYTES };
    if (sizes[type] === undefined) fail(QuoteCheck.STRUCTURE, `body type ${type} is unknown (1, 2 or 3)`);
    if (sizes[type] !== bodySize) fail(QuoteCheck.STRUCTURE, `body type ${type} has ${sizes[type]} bytes, the quote says ${bodySize}`);
    if ((type === 1) !== (teeTypeRaw === TeeType.SGX)) {
      fail(QuoteCheck.STRUCTURE, `body type ${type} does not match TEE type 0x${teeTypeRaw.toString(16)}`);
    }
    bodyType = type as 1 | 2 | 3;
  } else {
    bodyType = teeTypeRaw === TeeType.SGX ? 1 : 2;
    bodySize = bodyType === 1 ? SGX_REPORT_BYTES : TDX10_REPORT_BYTES;
  }
  const body = r.take(bodySize, 'report body');
  const signedBytes = quote.subarray(0, r.pos);

  const sigDataLen = r.u32('signature data length');
  const sigEnd = r.pos + sigDataLen;
  if (sigEnd > quote.length) fail(QuoteCheck.STRUCTURE, `signature data length ${sigDataLen} runs past the end of the quote`);
  const s = new Reader(quote, r.pos, sigEnd);
  const signature = s.take(64, 'quote signature');
  const attestationKey = s.take(64, 'attestation key');
  let inner: Reader;
  if (version === 3) {
    inner = s;
  } else {
    const outerType = s.u16('certification data type');
    if (outerType !== CERT_DATA_QE_REPORT) {
      fail(QuoteCheck.STRUCTURE, `certification data type ${outerType}: expected 6 (QE report certification data)`);
    }
    const outerSize = s.u32('certification data size');
    const outerStart = s.pos;
    s.take(outerSize, 'QE report certification data');
    s.expectEnd('signature data');
    inner = new Reader(quote, outerStart, outerStart + outerSize);
  }
  const qeReport = inner.take(SGX_REPORT_BYTES, 'QE report');
  const qeReportSignature = inner.take(64, 'QE report signature');
  const authSize = inner.u16('QE auth data size');
  const qeAuthData = inner.take(authSize, 'QE auth data');
  const certType = inner.u16('PCK certification data type');
  if (certType !== CERT_DATA_PCK_CHAIN) {
    fail(QuoteCheck.STRUCTURE, `certification data type ${certType}: only type 5 (PEM PCK chain) carries a chain to verify`);
  }
  const certSize = inner.u32('PCK certification data size');
  const pemChain = inner.take(certSize, 'PCK certificate chain');
  inner.expectEnd(version === 3 ? 'signature data' : 'QE report certification data');

  const trailing = quote.subarray(sigEnd);
  // Security choice: v3 quotes must end exactly at the signature data. Real TDX v4 quotes carry zero
  // padding after it (as Intel's QVL tolerates), so v4/v5 accept trailing bytes only when all are zero.
  if (trailing.length > 0 && (version === 3 || trailing.some((b) => b !== 0))) {
    fail(QuoteCheck.STRUCTURE, `${trailing.length} bytes after the signature data${version === 3 ? '' : ' are not all zero'}`);
  }

  const reportDataOffset = bodyType === 1 ? 320 : 520;
  const parsed: ParsedQuote = {
    version: version as 3 | 4 | 5,
    teeType: teeTypeRaw === TeeType.SGX ? 'sgx' : 'tdx',
    bodyType,
    bodySizeBytes: bodySize,
    reportData: body.subarray(reportDataOffset, reportDataOffset + 64).toString('hex'),
    qeIdentity: sgxIdentity(qeReport),
    paddingBytes: trailing.length,
  };
  if (bodyType === 1) parsed.identity = sgxIdentity(body);
  else parsed.tdIdentity = { mrtd: body.subarray(136, 184).toString('hex'), debug: (body[120]! & 0x01) !== 0 };
  const chainDers = parsePemChainStrict(pemChain);
  return { parsed, signedBytes, signature, attestationKey, qeReport, qeReportSignature, qeAuthData, chainDers };
}

const PEM_BEGIN = '-----BEGIN CERTIFICATE-----\n';
const PEM_END = '-----END CERTIFICATE-----\n';
const BASE64_LINE = /^[A-Za-z0-9+/]{1,64}={0,2}$/;

/**
 * The PEM chain, parsed strictly: BEGIN line, base64 lines of at most 64 characters each ending in `\n`,
 * END line, repeated, then at most one NUL. The base64 must be canonical (re-encoding the decoded DER gives
 * the same text), so no byte of the text can change without changing the DER the signatures cover.
 */
export function parsePemChainStrict(bytes: Buffer): Buffer[] {
  let text = bytes.toString('latin1');
  if (text.endsWith('\0')) text = text.slice(0, -1);
  const ders: Buffer[] = [];
  let pos = 0;
  while (pos < text.length) {
    if (ders.length === MAX_CHAIN_CERTIFICATES) fail(QuoteCheck.STRUCTURE, `PCK chain: more than ${MAX_CHAIN_CERTIFICATES} certificates`);
    if (!text.startsWith(PEM_BEGIN, pos)) {
      fail(QuoteCheck.STRUCTURE, `PCK chain: expected "-----BEGIN CERTIFICATE-----\\n" at chain offset ${pos}`);
    }
    pos += PEM_BEGIN.length;
    const end = text.indexOf(PEM_END, pos);
    if (end < 0) fail(QuoteCheck.STRUCTURE, `PCK chain: certificate ${ders.length + 1} has no "-----END CERTIFICATE-----\\n"`);
    const body = text.slice(pos, end);
    if (!body.endsWith('\n')) fail(QuoteCheck.STRUCTURE, `PCK chain: certificate ${ders.length + 1}: the END line does not start a line`);
    const lines = body.slice(0, -1).split('\n');
    for (const [i, line] of lines.entries()) {
      if (!BASE64_LINE.test(line) || (line.includes('=') && i !== lines.length - 1)) {
        fail(
          QuoteCheck.STRUCTURE,
          `PCK chain: certificate ${ders.length + 1}, line ${i + 1} is not a base64 line of at most 64 characters`,
        );
      }
    }
    const b64 = lines.join('');
    const der = Buffer.from(b64, 'base64');
    if (der.toString('base64') !== b64) fail(QuoteCheck.STRUCTURE, `PCK chain: certificate ${ders.length + 1} is not canonical base64`);
    ders.push(der);
    pos = end + PEM_END.length;
  }
  if (ders.length === 0) fail(QuoteCheck.STRUCTURE, 'PCK chain: no certificate');
  return ders;
}

/** X.509 requires the outer signatureAlgorithm to equal the one inside tbsCertificate; no signature covers the outer one. */
function checkSignatureAlgorithmsMatch(der: Buffer, index: number): void {
  let parts: CertificateParts;
  try {
    parts = parseCertificateDer(der);
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
    fail(QuoteCheck.PCK_CHAIN, `certificate ${index + 1} DER: ${error.message}`);
    return;
  }
  if (!parts.innerAlgorithm.equals(parts.outerAlgorithm)) {
    fail(QuoteCheck.PCK_CHAIN, `certificate ${index + 1}: outer signatureAlgorithm differs from the one in tbsCertificate`);
  }
}

function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

function parseChain(ders: Buffer[]): X509Certificate[] {
  if (ders.length !== 3) fail(QuoteCheck.PCK_CHAIN, `expected 3 certificates (PCK, intermediate CA, root CA), found ${ders.length}`);
  return ders.map((der, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
      void cert.publicKey; // Node decodes the key lazily and throws from the getter: make a bad key fail here
    } catch (error) {
      return fail(QuoteCheck.PCK_CHAIN, `certificate ${i + 1} does not parse: ${(error as Error).message}`);
    }
    if (!cert.raw.equals(der)) fail(QuoteCheck.PCK_CHAIN, `certificate ${i + 1} has bytes after its DER encoding`);
    checkSignatureAlgorithmsMatch(der, i);
    return cert;
  });
}

function verifyCertificate(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.verify(key);
  } catch {
    return false;
  }
}

function verifyChain(chain: X509Certificate[], trustAnchor: X509Certificate | undefined): void {
  const [pck, intermediate, root] = chain as [X509Certificate, X509Certificate, X509Certificate];
  const rootFingerprint = createHash('sha256').update(root.raw).digest('hex');
  let anchor: X509Certificate;
  if (trustAnchor === undefined) {
    // Security choice: the root inside the quote is trusted only because it is byte-identical to the pinned
    // one; a self-made "Intel SGX Root CA" with the same name fails here.
    if (rootFingerprint !== INTEL_SGX_ROOT_CA_SHA256 || !root.raw.equals(intelSgxRootCa.raw)) {
      fail(QuoteCheck.PCK_CHAIN, `the chain's root (SHA-256 ${rootFingerprint}) is not the pinned Intel SGX Root CA`);
    }
    anchor = intelSgxRootCa;
  } else {
    if (!root.raw.equals(trustAnchor.raw)) {
      fail(QuoteCheck.PCK_CHAIN, `the chain's root (SHA-256 ${rootFingerprint}) is not the given trust anchor`);
    }
    anchor = trustAnchor;
  }
  const links: Array<[X509Certificate, X509Certificate, string]> = [
    [pck, intermediate, 'PCK certificate'],
    [intermediate, anchor, 'intermediate CA'],
  ];
  for (const [cert, issuer, name] of links) {
    if (cert.issuer !== issuer.subject) fail(QuoteCheck.PCK_CHAIN, `${name}: issuer name does not match the next certificate's subject`);
    if (!issuer.ca) fail(QuoteCheck.PCK_CHAIN, `${name}: its issuer is not a CA certificate`);
    if (!isP256(issuer.publicKey)) fail(QuoteCheck.PCK_CHAIN, `${name}: its issuer's key is not ECDSA P-256`);
    if (!verifyCertificate(cert, issuer.publicKey)) fail(QuoteCheck.PCK_CHAIN, `${name}: signature does not verify with its issuer's key`);
  }
  if (pck.ca) fail(QuoteCheck.PCK_CHAIN, 'PCK certificate is a CA certificate');
  if (!isP256(pck.publicKey)) fail(QuoteCheck.PCK_CHAIN, 'PCK certificate key is not ECDSA P-256');
}

function checkValidity(chain: X509Certificate[], at: Date): void {
  const t = at.getTime();
  if (Number.isNaN(t)) fail(QuoteCheck.PCK_CHAIN_VALIDITY, 'the verification time is not a valid date');
  const names = ['PCK certificate', 'intermediate CA', 'root CA'];
  chain.forEach((cert, i) => {
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    if (!(t >= from)) {
      fail(
        QuoteCheck.PCK_CHAIN_VALIDITY,
        `${names[i]} is not valid before ${new Date(from).toISOString()} (verification time ${at.toISOString()})`,
      );
    }
    if (!(t <= to)) {
      fail(QuoteCheck.PCK_CHAIN_VALIDITY, `${names[i]} expired at ${new Date(to).toISOString()} (verification time ${at.toISOString()})`);
    }
  });
}

function verifyP1363(data: Buffer, key: KeyObject, signature: Buffer): boolean {
  try {
    return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

function hexField(value: string | undefined, digits: number, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(value)) {
    throw new TypeError(`Expected ${digits} hex digits for ${name} but received ${JSON.stringify(value)}`);
  }
  return value.toLowerCase();
}

function checkExpectations(quote: ParsedQuote, expected: QuoteExpectations): void {
  const mrenclave = hexField(expected.mrenclave, 64, 'mrenclave');
  const mrsigner = hexField(expected.mrsigner, 64, 'mrsigner');
  const reportData = hexField(expected.reportData, 128, 'reportData');
  const id = quote.identity;
  if ((mrenclave || mrsigner || expected.isvProdId !== undefined || expected.minIsvSvn !== undefined) && !id) {
    fail(QuoteCheck.MRENCLAVE, 'an SGX identity was expected, but the quote has a TDX body');
  }
  if (id) {
    if (mrenclave && id.mrenclave !== mrenclave) fail(QuoteCheck.MRENCLAVE, `MRENCLAVE ${id.mrenclave} is not the expected ${mrenclave}`);
    if (mrsigner && id.mrsigner !== mrsigner) fail(QuoteCheck.MRSIGNER, `MRSIGNER ${id.mrsigner} is not the expected ${mrsigner}`);
    if (expected.isvProdId !== undefined && id.isvProdId !== expected.isvProdId) {
      fail(QuoteCheck.ISV_PROD_ID, `ISV prod id ${id.isvProdId} is not the expected ${expected.isvProdId}`);
    }
    if (expected.minIsvSvn !== undefined && id.isvSvn < expected.minIsvSvn) {
      fail(QuoteCheck.ISV_SVN, `ISV SVN ${id.isvSvn} is below the minimum ${expected.minIsvSvn}`);
    }
  }
  const debug = id ? id.debug : quote.tdIdentity!.debug;
  if (debug && !expected.allowDebug) {
    fail(QuoteCheck.DEBUG, `the ${id ? 'enclave' : 'TD'} runs in debug mode, which its host can read; pass allowDebug to accept it`);
  }
  if (reportData && quote.reportData !== reportData) fail(QuoteCheck.REPORT_DATA, 'report data is not the expected value');
}

/**
 * The caller's policy alone (identity, DEBUG, report data) on a quote verifyQuote has accepted: for callers
 * that check the quote first and its binding next, and the identity last (RA-TLS, remote verification).
 * Throws a TypeError for malformed expectations, like verifyQuote.
 */
export function checkQuoteExpectations(
  quote: ParsedQuote,
  expected: QuoteExpectations,
): { ok: true } | { ok: false; failedCheck: QuoteCheck; reason: string } {
  try {
    checkExpectations(quote, expected);
    return { ok: true };
  } catch (error) {
    if (error instanceof CheckFailure) return { ok: false, failedCheck: error.check as QuoteCheck, reason: error.message };
    throw error;
  }
}

/** Parses a quote's layout only (check "structure"); throws nothing, like verifyQuote. */
export function parseQuote(quote: Uint8Array): { ok: true; quote: ParsedQuote } | { ok: false; failedCheck: QuoteCheck; reason: string } {
  try {
    return { ok: true, quote: parseLayout(Buffer.from(quote.buffer, quote.byteOffset, quote.byteLength)).parsed };
  } catch (error) {
    if (error instanceof CheckFailure) return { ok: false, failedCheck: error.check as QuoteCheck, reason: error.message };
    throw error;
  }
}

export interface VerifyQuoteOptions {
  /** The verification time; never the clock, so results are reproducible. */
  at: Date;
  expected?: QuoteExpectations;
  /**
   * The root the PCK chain must end in, byte for byte. Default: the pinned Intel SGX Root CA (also checked by
   * its fingerprint). For tests and library callers that make their own quotes (test/helpers/fake-quote.ts);
   * security choice: never exposed as a CLI flag or setting, so no user can swap the root a verdict rests on.
   */
  trustAnchor?: X509Certificate;
  /** Intel's collateral for the quote (SGX only): then TCB status, revocation and the QE identity are checked too. */
  collateral?: CollateralFile;
  /** The TCB statuses accepted, for the platform and the quoting enclave (default: UpToDate only). */
  acceptTcbStatuses?: readonly string[];
}

/**
 * Verifies a DCAP quote offline at time `at` (never the clock) against the pinned Intel SGX Root CA, then
 * the caller's expectations. Checks run in the order of `QuoteCheck`; the result names the first failure.
 * Throws only a TypeError for malformed expectations (a caller bug), never for a hostile quote.
 */
export function verifyQuote(quote: Uint8Array, options: VerifyQuoteOptions): QuoteVerification {
  let parsed: ParsedQuote | undefined;
  try {
    const raw = parseLayout(Buffer.from(quote.buffer, quote.byteOffset, quote.byteLength));
    parsed = raw.parsed;

    let attestationKey: KeyObject;
    try {
      const b64url = (b: Buffer) => b.toString('base64url');
      attestationKey = createPublicKey({
        key: { kty: 'EC', crv: 'P-256', x: b64url(raw.attestationKey.subarray(0, 32)), y: b64url(raw.attestationKey.subarray(32)) },
        format: 'jwk',
      });
    } catch {
      return fail(QuoteCheck.QUOTE_SIGNATURE, 'the attestation key is not a point on P-256');
    }
    if (!verifyP1363(raw.signedBytes, attestationKey, raw.signature)) {
      fail(QuoteCheck.QUOTE_SIGNATURE, 'the signature over header and report body does not verify with the attestation key');
    }

    const expectedBinding = createHash('sha256').update(raw.attestationKey).update(raw.qeAuthData).digest();
    const qeReportData = raw.qeReport.subarray(320, 384);
    if (!qeReportData.subarray(0, 32).equals(expectedBinding) || qeReportData.subarray(32).some((b) => b !== 0)) {
      fail(QuoteCheck.QE_REPORT_BINDING, 'the QE report data is not SHA-256(attestation key ‖ QE auth data) followed by 32 zero bytes');
    }

    const chain = parseChain(raw.chainDers);
    if (!isP256(chain[0]!.publicKey)) fail(QuoteCheck.PCK_CHAIN, 'PCK certificate key is not ECDSA P-256');
    if (!verifyP1363(raw.qeReport, chain[0]!.publicKey, raw.qeReportSignature)) {
      fail(QuoteCheck.QE_REPORT_SIGNATURE, 'the QE report signature does not verify with the PCK certificate key');
    }
    verifyChain(chain, options.trustAnchor);
    checkValidity(chain, options.at);
    let collateral: CollateralVerdict | undefined;
    if (options.collateral) {
      if (parsed.teeType !== 'sgx') fail(QuoteCheck.COLLATERAL, 'collateral is checked for SGX quotes only; this is a TDX quote');
      // Its failures carry collateral checks, which are quote checks too (QuoteCheck includes them).
      collateral = checkCollateral(
        options.collateral,
        { pck: chain[0]!, pckIssuer: chain[1]!, qeReport: raw.qeReport },
        { at: options.at, anchor: options.trustAnchor ?? intelSgxRootCa, acceptTcbStatuses: options.acceptTcbStatuses ?? ['UpToDate'] },
      );
    }
    checkExpectations(parsed, options.expected ?? {});
    return collateral
      ? { ok: true, quote: parsed, notChecked: [], collateral }
      : { ok: true, quote: parsed, notChecked: NOT_CHECKED_OFFLINE };
  } catch (error) {
    if (error instanceof CheckFailure) {
      const failure = { ok: false as const, failedCheck: error.check as QuoteCheck, reason: error.message };
      return parsed ? { ...failure, quote: parsed } : failure;
    }
    throw error;
  }
}
