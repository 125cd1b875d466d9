// Intel's collateral for an SGX quote, checked offline: the TCB info of the platform's FMSPC and the QE
// identity (each signed by Intel's TCB signing key, chained to the pinned root), and the CRLs of the root
// and of the PCK issuing CA. With them a verifier learns what the quote alone cannot say: whether the
// platform's microcode and SGX components are patched (its TCB status and Intel's advisories), whether the
// quoting enclave is a current one, and whether Intel revoked the PCK certificate or its CA.
//
// The bundle is the JSON that Phala's dcap-qvl writes (`get_collateral`): snake_case keys, the TCB info
// and QE identity as the exact JSON text Intel signed, signatures and CRLs as hex. Every date is checked
// against the caller's verification time, never the clock; a stale bundle (past its next update) fails.
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 handlers through tsyringe, which needs it
import { type KeyObject, verify, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { type Static, type TSchema, Type } from 'typebox';
import { Value } from 'typebox/value';
import { failCheck } from './check-failure.js';
import { type CertificateParts, parseCertificateDer } from './der.js';

export const CollateralCheck = {
  /** The bundle's shape, its signatures, its issuer chains and its dates; FMSPC and PCE ID match the PCK certificate. */
  COLLATERAL: 'collateral',
  /** Neither the PCK certificate nor its issuing CA is on Intel's CRLs. */
  REVOCATION: 'revocation',
  /** The quoting enclave is the one Intel's QE identity names (MRSIGNER, product, masked attributes). */
  QE_IDENTITY: 'qe-identity',
  /** The platform's and the QE's TCB status are ones the caller accepts. */
  TCB_STATUS: 'tcb-status',
} as const;
export type CollateralCheck = (typeof CollateralCheck)[keyof typeof CollateralCheck];

const fail = (check: CollateralCheck, reason: string): never => failCheck(check, reason);

const Hex = Type.String({ pattern: '^(?:[0-9a-fA-F]{2})+$' });
const CollateralFileSchema = Type.Object(
  {
    pck_crl_issuer_chain: Type.String(),
    root_ca_crl: Hex,
    pck_crl: Hex,
    tcb_info_issuer_chain: Type.String(),
    tcb_info: Type.String(),
    tcb_info_signature: Hex,
    qe_identity_issuer_chain: Type.String(),
    qe_identity: Type.String(),
    qe_identity_signature: Hex,
  },
  { additionalProperties: true },
);
export type CollateralFile = Static<typeof CollateralFileSchema>;

const Svn = Type.Integer({ minimum: 0, maximum: 0xffff });
const Status = Type.String({ minLength: 1, maxLength: 64 });
const TcbInfoSchema = Type.Object({
  id: Type.Optional(Type.String()),
  version: Type.Union([Type.Literal(2), Type.Literal(3)]),
  issueDate: Type.String(),
  nextUpdate: Type.String(),
  fmspc: Type.String({ pattern: '^[0-9a-fA-F]{12}$' }),
  pceId: Type.String({ pattern: '^[0-9a-fA-F]{4}$' }),
  tcbEvaluationDataNumber: Type.Optional(Type.Integer()),
  tcbLevels: Type.Array(
    Type.Object({
      tcb: Type.Record(Type.String(), Type.Unknown()),
      tcbDate: Type.Optional(Type.String()),
      tcbStatus: Status,
      advisoryIDs: Type.Optional(Type.Array(Type.String())),
    }),
    { minItems: 1 },
  ),
});
const QeIdentitySchema = Type.Object({
  id: Type.Optional(Type.String()),
  version: Type.Integer(),
  issueDate: Type.String(),
  nextUpdate: Type.String(),
  miscselect: Type.String({ pattern: '^[0-9a-fA-F]{8}$' }),
  miscselectMask: Type.String({ pattern: '^[0-9a-fA-F]{8}$' }),
  attributes: Type.String({ pattern: '^[0-9a-fA-F]{32}$' }),
  attributesMask: Type.String({ pattern: '^[0-9a-fA-F]{32}$' }),
  mrsigner: Type.String({ pattern: '^[0-9a-fA-F]{64}$' }),
  isvprodid: Svn,
  tcbLevels: Type.Array(
    Type.Object({
      tcb: Type.Object({ isvsvn: Svn }),
      tcbDate: Type.Optional(Type.String()),
      tcbStatus: Status,
      advisoryIDs: Type.Optional(Type.Array(Type.String())),
    }),
    { minItems: 1 },
  ),
});

/** What the collateral says about the quote, once every check passed. */
export interface CollateralVerdict {
  /** The platform's TCB status from Intel's TCB info (UpToDate, SWHardeningNeeded, OutOfDate, …). */
  tcbStatus: string;
  tcbDate: string | null;
  /** The quoting enclave's TCB status from Intel's QE identity. */
  qeTcbStatus: string;
  /** Intel security advisories that apply, from both. */
  advisoryIds: string[];
  fmspc: string;
  tcbEvaluationDataNumber: number | null;
  /** The earliest next update of the bundle's parts: after it, fetch fresh collateral. */
  validUntil: string;
}

/** Reads a collateral file's JSON (untrusted): its shape only; the checks are in checkCollateral. */
export function parseCollateral(json: unknown): CollateralFile {
  if (!Value.Check(CollateralFileSchema, json)) {
    const [first] = Value.Errors(CollateralFileSchema, json);
    failCheck(CollateralCheck.COLLATERAL, `not a collateral bundle${first ? `: ${first.instancePath || '/'} ${first.message}` : ''}`);
  }
  return json;
}

/** The facts of a verified quote the collateral is checked against. */
export interface QuoteFacts {
  pck: X509Certificate;
  /** The PCK certificate's issuer (Intel SGX PCK Processor or Platform CA). */
  pckIssuer: X509Certificate;
  /** The quoting enclave's 384-byte report. */
  qeReport: Buffer;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n?/g;

function chainOf(pem: string, what: string): X509Certificate[] {
  const blocks = pem.replace(/\0+$/, '').match(PEM_CERT) ?? [];
  if (blocks.join('').length !== pem.replace(/\0+$/, '').length || blocks.length === 0)
    fail(CollateralCheck.COLLATERAL, `${what} is not a PEM certificate chain`);
  let chain: X509Certificate[];
  try {
    chain = blocks.map((b) => new X509Certificate(b));
  } catch (error) {
    return fail(CollateralCheck.COLLATERAL, `${what}: a certificate does not parse: ${(error as Error).message}`);
  }
  for (const cert of chain) {
    // The outer signatureAlgorithm is covered by no signature: it must be the one inside tbsCertificate.
    let parts: CertificateParts;
    try {
      parts = parseCertificateDer(cert.raw);
    } catch (error) {
      return fail(CollateralCheck.COLLATERAL, `${what}: a certificate is not strict DER: ${(error as Error).message}`);
    }
    if (!parts.innerAlgorithm.equals(parts.outerAlgorithm))
      fail(CollateralCheck.COLLATERAL, `${what}: a certificate's outer signatureAlgorithm differs from the one it signs`);
  }
  return chain;
}

function withinValidity(cert: X509Certificate, at: Date, what: string): void {
  const t = at.getTime();
  if (t < Date.parse(cert.validFrom) || t > Date.parse(cert.validTo)) {
    fail(
      CollateralCheck.COLLATERAL,
      `${what} (${cert.subject.split('\n').find((l) => l.startsWith('CN=')) ?? 'certificate'}) is not valid at ${at.toISOString()}`,
    );
  }
}

/** A signing chain [signer, root]: root byte-identical to the anchor, signer signed by it, both valid at `at`. */
function signerOf(pem: string, anchor: X509Certificate, at: Date, what: string): KeyObject {
  const chain = chainOf(pem, what);
  const [signer, root] = chain;
  if (chain.length !== 2 || !signer || !root)
    return fail(CollateralCheck.COLLATERAL, `${what} has ${chain.length} certificates, not a signer and the root`);
  if (!root.raw.equals(anchor.raw)) fail(CollateralCheck.COLLATERAL, `${what} does not end in the pinned Intel SGX Root CA`);
  if (signer.issuer !== anchor.subject || !signer.verify(anchor.publicKey))
    fail(CollateralCheck.COLLATERAL, `${what}: the signer is not signed by the pinned root`);
  withinValidity(signer, at, what);
  return signer.publicKey;
}

function signedJson<T>(text: string, signatureHex: string, key: KeyObject, schema: TSchema, what: string): T {
  let valid = false;
  try {
    valid = verify('sha256', Buffer.from(text, 'utf8'), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signatureHex, 'hex'));
  } catch {
    valid = false;
  }
  if (!valid) fail(CollateralCheck.COLLATERAL, `the ${what} signature does not verify with Intel's TCB signing key`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail(CollateralCheck.COLLATERAL, `the ${what} is not JSON`);
  }
  if (!Value.Check(schema, value)) fail(CollateralCheck.COLLATERAL, `the ${what} is not in a format this verifier reads`);
  return value as T;
}

function current(issueDate: string, nextUpdate: string, at: Date, what: string): void {
  const t = at.getTime();
  if (!(Date.parse(issueDate) <= t))
    fail(CollateralCheck.COLLATERAL, `the ${what} was issued ${issueDate}, after the verification time ${at.toISOString()}`);
  if (!(t <= Date.parse(nextUpdate)))
    fail(
      CollateralCheck.COLLATERAL,
      `the ${what} is stale: its next update was due ${nextUpdate} (verification time ${at.toISOString()}); fetch fresh collateral`,
    );
}

/** The TCB facts Intel wrote into the PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1). */
export interface PckTcb {
  fmspc: string;
  pceId: string;
  /** CPU SVN components 1–16. */
  components: number[];
  pceSvn: number;
}

const SGX_EXTENSION = '1.2.840.113741.1.13.1';
/** AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), DER, without parameters. */
const ECDSA_WITH_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');

export function pckTcbOf(pck: X509Certificate): PckTcb {
  const bad = (why: string): never => fail(CollateralCheck.COLLATERAL, `the PCK certificate's SGX extension ${why}`);
  const extension = new x509.X509Certificate(pck.raw).getExtension(SGX_EXTENSION);
  if (!extension) return bad('is missing');
  const parsed = asn1js.fromBER(extension.value);
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.Sequence)) return bad('does not parse');
  const fields = new Map<string, asn1js.AsnType>();
  for (const item of parsed.result.valueBlock.value) {
    if (!(item instanceof asn1js.Sequence) || item.valueBlock.value.length !== 2) return bad('has an entry that is not (OID, value)');
    const [oid, value] = item.valueBlock.value as [asn1js.AsnType, asn1js.AsnType];
    if (!(oid instanceof asn1js.ObjectIdentifier)) return bad('has an entry without an OID');
    fields.set(oid.valueBlock.toString(), value);
  }
  const octets = (suffix: string, bytes: number): string => {
    const value = fields.get(`${SGX_EXTENSION}.${suffix}`);
    if (!(value instanceof asn1js.OctetString) || value.valueBlock.valueHexView.length !== bytes)
      return bad(`has no ${bytes}-byte field .${suffix}`);
    return Buffer.from(value.valueBlock.valueHexView).toString('hex');
  };
  const tcb = fields.get(`${SGX_EXTENSION}.2`);
  if (!(tcb instanceof asn1js.Sequence)) return bad('has no TCB field');
  const svns = new Map<string, number>();
  for (const item of tcb.valueBlock.value) {
    const [oid, value] = item instanceof asn1js.Sequence ? (item.valueBlock.value as [asn1js.AsnType, asn1js.AsnType]) : [];
    if (oid instanceof asn1js.ObjectIdentifier && value instanceof asn1js.Integer)
      svns.set(oid.valueBlock.toString(), value.valueBlock.valueDec);
  }
  const svn = (n: number) => svns.get(`${SGX_EXTENSION}.2.${n}`) ?? bad(`has no TCB component ${n}`);
  return {
    fmspc: octets('4', 6),
    pceId: octets('3', 2),
    components: Array.from({ length: 16 }, (_, i) => svn(i + 1)),
    pceSvn: svn(17),
  };
}

/** The level's 16 SGX TCB components and PCE SVN, in either TCB info format (version 2 or 3). */
function levelSvns(tcb: Record<string, unknown>): { components: number[]; pceSvn: number } | null {
  const pceSvn = tcb.pcesvn;
  if (typeof pceSvn !== 'number') return null;
  const v3 = tcb.sgxtcbcomponents;
  const components = Array.isArray(v3)
    ? v3.map((c: unknown) =>
        c && typeof c === 'object' && typeof (c as { svn?: unknown }).svn === 'number' ? (c as { svn: number }).svn : NaN,
      )
    : Array.from({ length: 16 }, (_, i) => tcb[`sgxtcbcomp${String(i + 1).padStart(2, '0')}svn`] as number);
  if (components.length !== 16 || components.some((c) => !Number.isInteger(c))) return null;
  return { components, pceSvn };
}

function checkRevocation(crlHex: string, issuer: X509Certificate, subject: X509Certificate, at: Date, what: string): string {
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(Buffer.from(crlHex, 'hex'));
  } catch (error) {
    return fail(CollateralCheck.COLLATERAL, `the ${what} does not parse: ${(error as Error).message}`);
  }
  if (crl.issuer !== new x509.X509Certificate(issuer.raw).subject)
    fail(
      CollateralCheck.COLLATERAL,
      `the ${what} is not issued by ${issuer.subject.split('\n').find((l) => l.startsWith('CN=')) ?? 'its CA'}`,
    );
  // The bytes the signature covers, as encoded (tbsCertList), and the DER ECDSA signature in its BIT STRING.
  // Every byte accounted for, and the outer signatureAlgorithm (which no signature covers) is ECDSA with SHA-256,
  // as is the one inside tbsCertList (after its optional version).
  const der = Buffer.from(crlHex, 'hex');
  const outer = asn1js.fromBER(der);
  const [tbsBlock, algorithmBlock, signatureBlock, ...rest] = outer.result instanceof asn1js.Sequence ? outer.result.valueBlock.value : [];
  if (
    outer.offset !== der.length ||
    rest.length > 0 ||
    !(tbsBlock instanceof asn1js.Sequence) ||
    !algorithmBlock ||
    !(signatureBlock instanceof asn1js.BitString) ||
    signatureBlock.valueBlock.unusedBits !== 0 // a signature is whole bytes; other values are a byte no signature covers
  ) {
    return fail(CollateralCheck.COLLATERAL, `the ${what} is not a CertificateList`);
  }
  const tbsFields = tbsBlock.valueBlock.value;
  const innerAlgorithm = tbsFields[tbsFields[0] instanceof asn1js.Integer ? 1 : 0];
  for (const algorithm of [innerAlgorithm, algorithmBlock]) {
    if (!algorithm || !Buffer.from(algorithm.valueBeforeDecodeView).equals(ECDSA_WITH_SHA256))
      fail(CollateralCheck.COLLATERAL, `the ${what} is not signed with ECDSA and SHA-256`);
  }
  const tbs = Buffer.from(tbsBlock.valueBeforeDecodeView);
  const signature = Buffer.from(signatureBlock.valueBlock.valueHexView);
  let valid = false;
  try {
    valid = verify('sha256', tbs, { key: issuer.publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    valid = false;
  }
  if (!valid) fail(CollateralCheck.COLLATERAL, `the ${what} signature does not verify with its issuer's key`);
  const t = at.getTime();
  if (t < crl.thisUpdate.getTime() || (crl.nextUpdate && t > crl.nextUpdate.getTime())) {
    fail(
      CollateralCheck.COLLATERAL,
      `the ${what} is not current at ${at.toISOString()} ` +
        `(this update ${crl.thisUpdate.toISOString()}, next ${crl.nextUpdate?.toISOString() ?? 'none'})`,
    );
  }
  const serial = subject.serialNumber.toLowerCase().replace(/^0+/, '');
  if (crl.entries.some((e) => e.serialNumber.toLowerCase().replace(/^0+/, '') === serial)) {
    fail(
      CollateralCheck.REVOCATION,
      `Intel revoked the ${what === 'root CA CRL' ? 'PCK issuing CA' : 'PCK certificate'} (serial ${subject.serialNumber})`,
    );
  }
  return crl.nextUpdate?.toISOString() ?? '';
}

/**
 * Checks the collateral against a quote whose signatures and PCK chain already verified (verifyQuote calls
 * this after them), then the caller's acceptable TCB statuses. Throws CheckFailure naming the check.
 */
export function checkCollateral(
  collateral: CollateralFile,
  quote: QuoteFacts,
  options: { at: Date; anchor: X509Certificate; acceptTcbStatuses: readonly string[] },
): CollateralVerdict {
  const { at, anchor } = options;
  const tcbKey = signerOf(collateral.tcb_info_issuer_chain, anchor, at, 'TCB info issuer chain');
  const tcbInfo = signedJson<Static<typeof TcbInfoSchema>>(
    collateral.tcb_info,
    collateral.tcb_info_signature,
    tcbKey,
    TcbInfoSchema,
    'TCB info',
  );
  const qeKey = signerOf(collateral.qe_identity_issuer_chain, anchor, at, 'QE identity issuer chain');
  const qeIdentity = signedJson<Static<typeof QeIdentitySchema>>(
    collateral.qe_identity,
    collateral.qe_identity_signature,
    qeKey,
    QeIdentitySchema,
    'QE identity',
  );
  if (tcbInfo.id !== undefined && tcbInfo.id !== 'SGX')
    fail(CollateralCheck.COLLATERAL, `the TCB info is for ${tcbInfo.id}, not an SGX platform`);
  if (qeIdentity.id !== undefined && qeIdentity.id !== 'QE')
    fail(CollateralCheck.COLLATERAL, `the QE identity is for ${qeIdentity.id}, not the SGX quoting enclave`);
  current(tcbInfo.issueDate, tcbInfo.nextUpdate, at, 'TCB info');
  current(qeIdentity.issueDate, qeIdentity.nextUpdate, at, 'QE identity');

  const pckTcb = pckTcbOf(quote.pck);
  if (tcbInfo.fmspc.toLowerCase() !== pckTcb.fmspc)
    fail(CollateralCheck.COLLATERAL, `the TCB info is for FMSPC ${tcbInfo.fmspc.toLowerCase()}, the PCK certificate's is ${pckTcb.fmspc}`);
  if (tcbInfo.pceId.toLowerCase() !== pckTcb.pceId)
    fail(CollateralCheck.COLLATERAL, `the TCB info is for PCE ID ${tcbInfo.pceId}, the PCK certificate's is ${pckTcb.pceId}`);

  // Revocation: the PCK issuing CA on the root's CRL, the PCK certificate on its CA's CRL.
  const crlChain = chainOf(collateral.pck_crl_issuer_chain, 'PCK CRL issuer chain');
  if (!crlChain[0]!.raw.equals(quote.pckIssuer.raw) || !crlChain.at(-1)!.raw.equals(anchor.raw)) {
    fail(CollateralCheck.COLLATERAL, "the PCK CRL issuer chain is not the quote's PCK issuing CA and the pinned root");
  }
  const rootCrlUntil = checkRevocation(collateral.root_ca_crl, anchor, quote.pckIssuer, at, 'root CA CRL');
  const pckCrlUntil = checkRevocation(collateral.pck_crl, quote.pckIssuer, quote.pck, at, 'PCK CRL');

  // The quoting enclave, as Intel identifies it.
  const qe = quote.qeReport;
  const masked = (value: Buffer, mask: Buffer) => Buffer.from(value.map((b, i) => b & mask[i]!));
  const miscMask = Buffer.from(qeIdentity.miscselectMask, 'hex').reverse(); // the JSON is big-endian, the report little-endian
  if (!masked(qe.subarray(16, 20), miscMask).equals(masked(Buffer.from(qeIdentity.miscselect, 'hex').reverse(), miscMask))) {
    fail(CollateralCheck.QE_IDENTITY, 'the QE report MISCSELECT does not match the QE identity');
  }
  const attributesMask = Buffer.from(qeIdentity.attributesMask, 'hex');
  if (!masked(qe.subarray(48, 64), attributesMask).equals(masked(Buffer.from(qeIdentity.attributes, 'hex'), attributesMask))) {
    fail(CollateralCheck.QE_IDENTITY, 'the QE report attributes do not match the QE identity');
  }
  if (!qe.subarray(128, 160).equals(Buffer.from(qeIdentity.mrsigner, 'hex')))
    fail(CollateralCheck.QE_IDENTITY, "the quoting enclave's MRSIGNER is not Intel's");
  if (qe.readUInt16LE(256) !== qeIdentity.isvprodid)
    fail(CollateralCheck.QE_IDENTITY, `the quoting enclave's product id ${qe.readUInt16LE(256)} is not ${qeIdentity.isvprodid}`);
  const qeSvn = qe.readUInt16LE(258);
  const qeLevel = qeIdentity.tcbLevels.find((l) => qeSvn >= l.tcb.isvsvn);
  if (!qeLevel) return fail(CollateralCheck.TCB_STATUS, `the quoting enclave's ISV SVN ${qeSvn} is below every level Intel lists`);

  // The platform's TCB level: the first (highest) one every component of the PCK certificate reaches.
  const levels = tcbInfo.tcbLevels.map((l) => ({ level: l, svns: levelSvns(l.tcb) }));
  if (levels.some((l) => l.svns === null))
    fail(CollateralCheck.COLLATERAL, 'a TCB level of the TCB info is not 16 SGX components and a PCE SVN');
  const match = levels.find(({ svns }) => pckTcb.components.every((c, i) => c >= svns!.components[i]!) && pckTcb.pceSvn >= svns!.pceSvn);
  if (!match)
    return fail(
      CollateralCheck.TCB_STATUS,
      "the platform's TCB is below every level Intel lists for its FMSPC (status unknown: treat as revoked)",
    );

  const verdict: CollateralVerdict = {
    tcbStatus: match.level.tcbStatus,
    tcbDate: match.level.tcbDate ?? null,
    qeTcbStatus: qeLevel.tcbStatus,
    advisoryIds: [...new Set([...(match.level.advisoryIDs ?? []), ...(qeLevel.advisoryIDs ?? [])])].sort(),
    fmspc: pckTcb.fmspc,
    tcbEvaluationDataNumber: tcbInfo.tcbEvaluationDataNumber ?? null,
    validUntil: [tcbInfo.nextUpdate, qeIdentity.nextUpdate, rootCrlUntil, pckCrlUntil]
      .filter(Boolean)
      .map((d) => new Date(d).toISOString())
      .sort()[0]!,
  };
  for (const [who, status] of [
    ['platform', verdict.tcbStatus],
    ['quoting enclave', verdict.qeTcbStatus],
  ] as const) {
    if (status === 'Revoked' || !options.acceptTcbStatuses.includes(status)) {
      fail(
        CollateralCheck.TCB_STATUS,
        `the ${who}'s TCB status is ${status}${verdict.advisoryIds.length ? ` (advisories ${verdict.advisoryIds.join(', ')})` : ''}; accepted: ${options.acceptTcbStatuses.join(', ')}`,
      );
    }
  }
  return verdict;
}
