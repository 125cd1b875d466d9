// A strict reader for the parts of an X.509 certificate that attestation checks need: the bytes the
// signature covers, both signature AlgorithmIdentifiers, the SubjectPublicKeyInfo and the extensions with
// their raw OID bytes. Invariant: every byte of the certificate belongs to exactly one element read here
// (definite minimal lengths, no trailing bytes at any level), so two readers cannot disagree about what
// a certificate says. What to do with the parts (signatures, pinning) is the callers' business.

export class DerError extends Error {}

interface Tlv {
  tag: number;
  /** First byte of the element (its tag). */
  start: number;
  contentStart: number;
  /** One past the element's last byte. */
  end: number;
}

const TAG = {
  BOOLEAN: 0x01,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  SEQUENCE: 0x30,
  VERSION: 0xa0,
  ISSUER_UID: 0x81,
  SUBJECT_UID: 0x82,
  EXTENSIONS: 0xa3,
} as const;

/** One element at `at`, which must end by `limit`; DER only: one-byte tags, definite minimal lengths. */
function readTlv(der: Buffer, at: number, limit: number, what: string): Tlv {
  const bad = (why: string): never => {
    throw new DerError(`${what} at offset ${at}: ${why}`);
  };
  if (at + 2 > limit) bad('truncated');
  const tag = der[at]!;
  if ((tag & 0x1f) === 0x1f) bad('multi-byte tags are not used in certificates');
  let length = der[at + 1]!;
  let contentStart = at + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0) bad('indefinite length is not DER');
    if (n > 4 || contentStart + n > limit) bad('length field too long');
    if (der[contentStart] === 0) bad('length has a leading zero byte (not DER)');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[contentStart + i]!;
    if (length < 0x80) bad('long-form length below 128 (not DER)');
    contentStart += n;
  }
  const end = contentStart + length;
  if (end > limit) bad(`length ${length} runs past the end of its enclosing element at ${limit}`);
  return { tag, start: at, contentStart, end };
}

function expectTag(tlv: Tlv, tag: number, what: string): Tlv {
  if (tlv.tag !== tag) throw new DerError(`${what} at offset ${tlv.start}: tag 0x${tlv.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return tlv;
}

export interface CertificateExtension {
  /** The extnID's content bytes (the OID without tag and length): match extensions by these, not by a decoded string. */
  id: Buffer;
  critical: boolean;
  /** The extnValue's content bytes. */
  value: Buffer;
  /** Where the value starts in the certificate (for messages and tests). */
  valueOffset: number;
}

export interface CertificateParts {
  /** The whole tbsCertificate element: the bytes the signature covers. */
  tbs: Buffer;
  /** The AlgorithmIdentifier inside tbsCertificate, as encoded (tag and length included). */
  innerAlgorithm: Buffer;
  /** The AlgorithmIdentifier after tbsCertificate, which no signature covers. */
  outerAlgorithm: Buffer;
  /** The signature algorithm's OID content bytes, and its parameters: absent, or NULL. */
  algorithmOid: Buffer;
  algorithmParameters: 'absent' | 'null';
  /** The signature BIT STRING's bits (its unused-bits byte must be zero). */
  signature: Buffer;
  /** The SubjectPublicKeyInfo element, as encoded: what RA-TLS and attestation hash. */
  spki: Buffer;
  /** The validity period, to the second. */
  notBefore: Date;
  notAfter: Date;
  extensions: CertificateExtension[];
}

function algorithmIdentifier(der: Buffer, tlv: Tlv, what: string): { oid: Buffer; parameters: 'absent' | 'null' } {
  expectTag(tlv, TAG.SEQUENCE, what);
  const oid = expectTag(readTlv(der, tlv.contentStart, tlv.end, `${what} OID`), TAG.OID, `${what} OID`);
  if (oid.end === tlv.end) return { oid: der.subarray(oid.contentStart, oid.end), parameters: 'absent' };
  const params = readTlv(der, oid.end, tlv.end, `${what} parameters`);
  if (params.tag !== TAG.NULL || params.end !== params.contentStart || params.end !== tlv.end) {
    throw new DerError(`${what} at offset ${tlv.start}: parameters other than NULL are not used by the signature algorithms read here`);
  }
  return { oid: der.subarray(oid.contentStart, oid.end), parameters: 'null' };
}

/** UTCTime YYMMDDHHMMSSZ (years 1950-2049) or GeneralizedTime YYYYMMDDHHMMSSZ, as RFC 5280 4.1.2.5 allows them. */
function readTime(der: Buffer, tlv: Tlv, what: string): Date {
  const text = der.subarray(tlv.contentStart, tlv.end).toString('latin1');
  const forms: Record<number, RegExp> = {
    [TAG.UTC_TIME]: /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/,
    [TAG.GENERALIZED_TIME]: /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/,
  };
  const match = forms[tlv.tag]?.exec(text);
  if (!match) throw new DerError(`${what} at offset ${tlv.start}: not a UTCTime or GeneralizedTime in the form RFC 5280 requires`);
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  const fullYear = tlv.tag === TAG.UTC_TIME ? (year < 50 ? 2000 + year : 1900 + year) : year;
  const date = new Date(Date.UTC(fullYear, month - 1, day, hour, minute, second));
  // Date.UTC rolls over out-of-range fields (month 13, second 60): a date that does not read back is refused.
  const readBack = [date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()];
  if (readBack.join() !== [month, day, hour, minute, second].join()) {
    throw new DerError(`${what} at offset ${tlv.start}: ${text} is not a calendar date`);
  }
  return date;
}

function readExtensions(der: Buffer, wrapper: Tlv): CertificateExtension[] {
  const list = expectTag(readTlv(der, wrapper.contentStart, wrapper.end, 'extensions'), TAG.SEQUENCE, 'extensions');
  if (list.end !== wrapper.end) throw new DerError(`extensions at offset ${wrapper.start}: bytes after the extension list`);
  const out: CertificateExtension[] = [];
  for (let p = list.contentStart; p < list.end; ) {
    const ext = expectTag(readTlv(der, p, list.end, 'extension'), TAG.SEQUENCE, 'extension');
    const id = expectTag(readTlv(der, ext.contentStart, ext.end, 'extnID'), TAG.OID, 'extnID');
    let next = readTlv(der, id.end, ext.end, 'extension field');
    let critical = false;
    if (next.tag === TAG.BOOLEAN) {
      // DER: critical DEFAULT FALSE is omitted when false, so a present value must be TRUE (0xff).
      if (next.end - next.contentStart !== 1 || der[next.contentStart] !== 0xff) {
        throw new DerError(`extension at offset ${ext.start}: critical must be omitted or TRUE (0xff)`);
      }
      critical = true;
      next = readTlv(der, next.end, ext.end, 'extnValue');
    }
    expectTag(next, TAG.OCTET_STRING, 'extnValue');
    if (next.end !== ext.end) throw new DerError(`extension at offset ${ext.start}: bytes after extnValue`);
    const value = der.subarray(next.contentStart, next.end);
    out.push({ id: der.subarray(id.contentStart, id.end), critical, value, valueOffset: next.contentStart });
    p = ext.end;
  }
  return out;
}

/** Splits a DER certificate into the parts attestation checks use; throws DerError for anything not strict DER. */
export function parseCertificateDer(der: Buffer): CertificateParts {
  const cert = expectTag(readTlv(der, 0, der.length, 'Certificate'), TAG.SEQUENCE, 'Certificate');
  if (cert.end !== der.length) throw new DerError(`Certificate: ${der.length - cert.end} bytes after its end`);
  const tbs = expectTag(readTlv(der, cert.contentStart, cert.end, 'tbsCertificate'), TAG.SEQUENCE, 'tbsCertificate');
  const outerAlg = readTlv(der, tbs.end, cert.end, 'signatureAlgorithm');
  const outer = algorithmIdentifier(der, outerAlg, 'signatureAlgorithm');
  const sig = expectTag(readTlv(der, outerAlg.end, cert.end, 'signatureValue'), TAG.BIT_STRING, 'signatureValue');
  if (sig.end !== cert.end) throw new DerError('Certificate: bytes after signatureValue');
  if (sig.end === sig.contentStart || der[sig.contentStart] !== 0) throw new DerError('signatureValue: unused bits must be zero');

  let p = tbs.contentStart;
  let field = readTlv(der, p, tbs.end, 'tbsCertificate field');
  if (field.tag === TAG.VERSION) {
    const version = expectTag(readTlv(der, field.contentStart, field.end, 'version'), TAG.INTEGER, 'version');
    if (version.end !== field.end) throw new DerError('version: bytes after the version number');
    p = field.end;
    field = readTlv(der, p, tbs.end, 'serialNumber');
  }
  p = expectTag(field, TAG.INTEGER, 'serialNumber').end;
  const innerAlg = readTlv(der, p, tbs.end, 'signature');
  algorithmIdentifier(der, innerAlg, 'signature');
  p = innerAlg.end;
  p = expectTag(readTlv(der, p, tbs.end, 'issuer'), TAG.SEQUENCE, 'issuer').end;
  const validity = expectTag(readTlv(der, p, tbs.end, 'validity'), TAG.SEQUENCE, 'validity');
  const notBeforeTlv = readTlv(der, validity.contentStart, validity.end, 'notBefore');
  const notAfterTlv = readTlv(der, notBeforeTlv.end, validity.end, 'notAfter');
  if (notAfterTlv.end !== validity.end) throw new DerError(`validity at offset ${validity.start}: bytes after notAfter`);
  p = expectTag(readTlv(der, validity.end, tbs.end, 'subject'), TAG.SEQUENCE, 'subject').end;
  const spki = expectTag(readTlv(der, p, tbs.end, 'subjectPublicKeyInfo'), TAG.SEQUENCE, 'subjectPublicKeyInfo');
  p = spki.end;
  let extensions: CertificateExtension[] = [];
  for (const [tag, name] of [
    [TAG.ISSUER_UID, 'issuerUniqueID'],
    [TAG.SUBJECT_UID, 'subjectUniqueID'],
    [TAG.EXTENSIONS, 'extensions'],
  ] as const) {
    if (p < tbs.end && der[p] === tag) {
      const tlv = readTlv(der, p, tbs.end, name);
      if (tag === TAG.EXTENSIONS) extensions = readExtensions(der, tlv);
      p = tlv.end;
    }
  }
  if (p !== tbs.end) throw new DerError(`tbsCertificate: unexpected element at offset ${p}`);
  return {
    tbs: der.subarray(tbs.start, tbs.end),
    innerAlgorithm: der.subarray(innerAlg.start, innerAlg.end),
    outerAlgorithm: der.subarray(outerAlg.start, outerAlg.end),
    algorithmOid: outer.oid,
    algorithmParameters: outer.parameters,
    signature: der.subarray(sig.contentStart + 1, sig.end),
    spki: der.subarray(spki.start, spki.end),
    notBefore: readTime(der, notBeforeTlv, 'notBefore'),
    notAfter: readTime(der, notAfterTlv, 'notAfter'),
    extensions,
  };
}
