// Attested training certificates: when a training succeeds, the server signs what it did — the model it
// produced (by hash), the model it started from, the datasets (by salted commitment), σ, q, steps, ε, δ,
// clipping and its own code version — with an Ed25519 key derived from the enclave's sealing key. At
// start, inside an enclave, the server gets one quote whose report data binds that public key, so the
// quote vouches for every certificate the key signs; the certificate carries that quote. Outside an
// enclave the key comes from the development root key and the statement says `"enclave": false`: it
// is signed, but nothing attests to it.
//
// Datasets appear as commitments, not plain hashes: a trainer who knows every record but one, and the
// few values the last one can take, could otherwise find it by hashing candidates (the adversary DP
// is defined against). The commitment is SHA-256(salt ‖ SHA-256(file)) with a random 32-byte salt only
// the dataset's owner sees, so the owner can check it and nobody else can test guesses against it.
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify, type X509Certificate } from 'node:crypto';
import { canonicalize } from 'json-canonicalize';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import type { Attestor } from './attestation.js';
import type { CollateralFile, CollateralVerdict } from './collateral.js';
import { type KeyProvider, KeyPurpose } from './keys.js';
import { type ParsedQuote, parseQuote, type QuoteCheck, type QuoteExpectations, verifyQuote } from './quote-verify.js';

export const CERTIFICATE_FORMAT = 'bastion.training-certificate/1';
/** Prefixed to the canonical JSON of the statement before signing: a signature means nothing else. */
const SIGNING_CONTEXT = Buffer.from(`${CERTIFICATE_FORMAT}\n`, 'utf8');
/** Hashed with the public key into the report data of the key's quote. */
const KEY_BINDING_CONTEXT = Buffer.from('bastion.training-certificate-key/1\n', 'utf8');

const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Id = Type.String({ minLength: 1, maxLength: 64 });
const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$' });

export const TrainingStatementSchema = Type.Object(
  {
    format: Type.Literal(CERTIFICATE_FORMAT),
    modelId: Id,
    trainingId: Id,
    modelSha256: Type.String({ ...Hex64, description: 'SHA-256 of the trained model file as downloaded' }),
    sourceModelId: Id,
    sourceModelSha256: Type.String({ ...Hex64, description: 'SHA-256 of the model file training started from' }),
    datasets: Type.Array(
      Type.Object(
        {
          id: Id,
          commitment: Type.String({
            ...Hex64,
            description: "SHA-256(salt ‖ SHA-256(uploaded file)); the salt is shown to the dataset's owner only",
          }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
    private: Type.Boolean({ description: 'trained with DP-SGD' }),
    noiseMultiplier: Type.Number({ minimum: 0, description: 'σ (0 when not private)' }),
    sampleRate: Type.Number({ minimum: 0, maximum: 1, description: 'q (0 when not private)' }),
    steps: Type.Integer({ minimum: 0 }),
    epsilon: Type.Union([Type.Number({ minimum: 0 }), Type.Null()], { description: 'ε of the training at δ (null when not private)' }),
    delta: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()]),
    accountant: Type.Union([Type.Literal('rdp'), Type.Literal('pld'), Type.Null()]),
    maxGradNorm: Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Null()], { description: 'clipping bound C' }),
    clipping: Type.Union([Type.Literal('flat'), Type.Literal('per-layer'), Type.Null()]),
    codeVersion: Type.String({ maxLength: 64 }),
    finishedAt: Type.String({ format: 'date-time' }),
    enclave: Type.Boolean({
      description: 'signed inside an SGX enclave by a key its quote binds; false: by the development key, attested by nothing',
    }),
  },
  { additionalProperties: false },
);
export type TrainingStatement = Static<typeof TrainingStatementSchema>;

export const TrainingCertificateSchema = Type.Object(
  {
    statement: TrainingStatementSchema,
    signature: Type.String({
      ...Base64,
      description: 'Ed25519 signature, base64, over "bastion.training-certificate/1\\n" ‖ the statement as RFC 8785 canonical JSON',
    }),
    publicKey: Type.String({ ...Base64, description: 'the Ed25519 public key, base64 of its 32 raw bytes' }),
    keyQuote: Type.Optional(
      Type.String({
        ...Base64,
        description:
          'inside an enclave: the DCAP quote whose report data is SHA-256("bastion.training-certificate-key/1\\n" ‖ publicKey) ‖ 32 ' +
          'zero bytes',
      }),
    ),
  },
  { additionalProperties: false, $id: 'TrainingCertificate' },
);
export type TrainingCertificate = Static<typeof TrainingCertificateSchema>;

/** The 64 bytes of report data that bind an Ed25519 public key (raw, 32 bytes). */
export function signingKeyReportData(publicKey: Buffer): Buffer {
  return Buffer.concat([createHash('sha256').update(KEY_BINDING_CONTEXT).update(publicKey).digest(), Buffer.alloc(32)]);
}

/** SHA-256(salt ‖ SHA-256(file)), hex: how a dataset appears in a certificate. */
export function datasetCommitment(saltHex: string, fileSha256Hex: string): string {
  return createHash('sha256').update(Buffer.from(saltHex, 'hex')).update(Buffer.from(fileSha256Hex, 'hex')).digest('hex');
}

function signedBytes(statement: TrainingStatement): Buffer {
  return Buffer.concat([SIGNING_CONTEXT, Buffer.from(canonicalize(statement), 'utf8')]);
}

/** PKCS#8 DER of an Ed25519 private key is this 16-byte prefix and the 32-byte seed (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** SPKI DER of an Ed25519 public key is this 12-byte prefix and the 32 raw bytes. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function publicKeyFromRaw(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

export interface CertificateSigner {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;
  /** True inside an enclave (the key derives from its sealing key). */
  readonly enclave: boolean;
  /** The quote binding the key (inside an enclave, unless the attestation device answered over other data). */
  readonly keyQuote: Buffer | null;
  /** Signs a statement (whose `enclave` field the signer sets). */
  sign(statement: Omit<TrainingStatement, 'format' | 'enclave'>): TrainingCertificate;
}

/** The Ed25519 key pair whose seed is the key provider's `training-certificates` key. */
function signingKeyPair(keys: KeyProvider): { privateKey: KeyObject; publicKey: Buffer } {
  const seed = keys.deriveKey(KeyPurpose.TRAINING_CERTIFICATES);
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  seed.fill(0);
  return {
    privateKey,
    publicKey: createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI_PREFIX.length),
  };
}

function signerOf(
  { privateKey, publicKey }: ReturnType<typeof signingKeyPair>,
  enclave: boolean,
  keyQuote: Buffer | null,
): CertificateSigner {
  return {
    publicKey,
    enclave,
    keyQuote,
    sign(fields) {
      const statement: TrainingStatement = { format: CERTIFICATE_FORMAT, ...fields, enclave };
      return {
        statement,
        signature: sign(null, signedBytes(statement), privateKey).toString('base64'),
        publicKey: publicKey.toString('base64'),
        ...(keyQuote ? { keyQuote: keyQuote.toString('base64') } : {}),
      };
    },
  };
}

/** The signer outside an enclave: certificates say `enclave: false`. */
export function developmentCertificateSigner(keys: KeyProvider): CertificateSigner {
  return signerOf(signingKeyPair(keys), false, null);
}

/**
 * The signer inside an enclave: it gets the quote that binds its public key now, once, and every
 * certificate carries it. A quote over other report data (a broken or fake attestation device) binds
 * nothing: it is dropped, certificates then carry no quote and fail verification at it, and `keyQuote`
 * is null for the caller to report. Without an attestor, the development signer.
 */
export async function openCertificateSigner(keys: KeyProvider, attestor: Attestor | null): Promise<CertificateSigner> {
  const pair = signingKeyPair(keys);
  if (!attestor) return signerOf(pair, false, null);
  const reportData = signingKeyReportData(pair.publicKey);
  const quote = await attestor.quote(reportData);
  const parsed = parseQuote(quote);
  const binds = parsed.ok && parsed.quote.reportData === reportData.toString('hex');
  return signerOf(pair, true, binds ? quote : null);
}

/** The checks of a certificate, in the order they run. */
export const CertificateCheck = {
  /** The JSON is a certificate of this format. */
  FORMAT: 'format',
  /** SHA-256 of the model file is the statement's modelSha256. */
  MODEL_HASH: 'model-hash',
  /** The Ed25519 signature over the statement verifies with the certificate's key. */
  SIGNATURE: 'signature',
  /** Signed outside an enclave (development key): refused unless allowed. */
  ENCLAVE: 'enclave',
  /** The quote verifies up to Intel, binds the signing key, and states the expected enclave. */
  QUOTE: 'quote',
} as const;
export type CertificateCheck = (typeof CertificateCheck)[keyof typeof CertificateCheck];

export type CertificateVerification =
  | {
      ok: true;
      statement: TrainingStatement;
      attested: true;
      quote: ParsedQuote;
      notChecked: readonly string[];
      collateral?: CollateralVerdict;
    }
  | { ok: true; statement: TrainingStatement; attested: false }
  | { ok: false; failedCheck: CertificateCheck; quoteCheck?: QuoteCheck; reason: string };

export interface CertificateVerifyOptions {
  /** The model file the certificate is about. */
  model: Buffer;
  /** The quote binding the signing key; default: the certificate's own keyQuote. */
  quote?: Buffer;
  /** Verification time for the quote's certificate chain (never the clock). */
  at: Date;
  /** What the quote must state (the enclave pinned); its report data is always the key binding. */
  expected?: Omit<QuoteExpectations, 'reportData'>;
  /** Accept a certificate signed by the development key (`enclave: false`): signed, not attested. */
  allowDevelopment?: boolean;
  /** Tests only: a trust anchor other than the pinned Intel root. */
  trustAnchor?: X509Certificate;
  /** Intel's collateral for the quote's platform: TCB status and revocation are checked too. */
  collateral?: CollateralFile;
  acceptTcbStatuses?: readonly string[];
}

/** Verifies a certificate (parsed JSON, untrusted) for a model file; names the first failed check. */
export function verifyTrainingCertificate(certificate: unknown, options: CertificateVerifyOptions): CertificateVerification {
  if (!Value.Check(TrainingCertificateSchema, certificate)) {
    const [first] = Value.Errors(TrainingCertificateSchema, certificate);
    return {
      ok: false,
      failedCheck: CertificateCheck.FORMAT,
      reason: `not a ${CERTIFICATE_FORMAT} certificate${first ? `: ${first.instancePath || '/'} ${first.message}` : ''}`,
    };
  }
  const { statement } = certificate;
  const modelSha256 = createHash('sha256').update(options.model).digest('hex');
  if (modelSha256 !== statement.modelSha256) {
    return {
      ok: false,
      failedCheck: CertificateCheck.MODEL_HASH,
      reason: `the model file's SHA-256 ${modelSha256} is not the certified ${statement.modelSha256}`,
    };
  }
  const publicKeyRaw = Buffer.from(certificate.publicKey, 'base64');
  let valid = false;
  try {
    valid =
      publicKeyRaw.length === 32 &&
      verify(null, signedBytes(statement), publicKeyFromRaw(publicKeyRaw), Buffer.from(certificate.signature, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid)
    return {
      ok: false,
      failedCheck: CertificateCheck.SIGNATURE,
      reason: 'the signature does not verify with the certificate key over this statement',
    };

  const quote = options.quote ?? (certificate.keyQuote === undefined ? undefined : Buffer.from(certificate.keyQuote, 'base64'));
  if (!statement.enclave) {
    if (!options.allowDevelopment) {
      return {
        ok: false,
        failedCheck: CertificateCheck.ENCLAVE,
        reason: 'signed outside an enclave by the development key: nothing attests to it (allow development certificates to accept it)',
      };
    }
    return { ok: true, statement, attested: false };
  }
  if (!quote)
    return {
      ok: false,
      failedCheck: CertificateCheck.QUOTE,
      reason: 'the statement says it was signed in an enclave, but no quote binds its key',
    };
  const result = verifyQuote(quote, {
    at: options.at,
    expected: { ...options.expected, reportData: signingKeyReportData(publicKeyRaw).toString('hex') },
    ...(options.trustAnchor ? { trustAnchor: options.trustAnchor } : {}),
    ...(options.collateral ? { collateral: options.collateral } : {}),
    ...(options.acceptTcbStatuses ? { acceptTcbStatuses: options.acceptTcbStatuses } : {}),
  });
  if (!result.ok) {
    const what = result.failedCheck === 'report-data' ? 'the quote does not bind this certificate key' : result.reason;
    return {
      ok: false,
      failedCheck: CertificateCheck.QUOTE,
      quoteCheck: result.failedCheck,
      reason: `quote check ${result.failedCheck} failed: ${what}`,
    };
  }
  return {
    ok: true,
    statement,
    attested: true,
    quote: result.quote,
    notChecked: result.notChecked,
    ...(result.collateral ? { collateral: result.collateral } : {}),
  };
}
