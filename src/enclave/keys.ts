// Key derivation: the one place that holds the root key from which every data-at-rest key is derived.
// Callers ask a KeyProvider for the key of one purpose (HKDF-SHA256, RFC 5869, with the purpose in
// `info`), so keys for different uses are independent and the root key itself never leaves this
// module. Two providers implement it: inside an SGX enclave run by Gramine, the enclave's sealing key
// (read from /dev/attestation/keys/, bound to MRENCLAVE or MRSIGNER, so only the same code — or code of
// the same signer — derives the same keys); outside one, the development provider (a random key file in
// the data folder). openKeyProvider() chooses at start.
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { dataLayout } from '../config.js';
import { writeFileAtomic } from '../store/files.js';

/** What a derived key is for. Each purpose gets an independent key; never reuse one for another use. */
export const KeyPurpose = {
  /** AES-256-GCM segment keys of sealed artifact blobs (src/artifacts/sealed-blob.ts). */
  SEALED_BLOBS: 'sealed-blobs',
  /** HMAC-SHA256 key of the audit log's chain and its high-water mark (src/governance/audit.ts). */
  AUDIT: 'audit',
  /** Seed of the Ed25519 key that signs training certificates (src/enclave/training-certificate.ts). */
  TRAINING_CERTIFICATES: 'training-certificates',
} as const;
export type KeyPurpose = (typeof KeyPurpose)[keyof typeof KeyPurpose];

export interface KeyProvider {
  /**
   * Public identifier of the root key (16 hex digits, a hash of it): written into sealed headers so
   * that data sealed under another key is recognised as such rather than reported as tampered.
   */
  readonly keyId: string;
  /** Where the root key comes from, for the start-up log (never the key itself). */
  readonly description: string;
  /** The 32-byte key of one purpose. Deterministic: the same root key gives the same derived key. */
  deriveKey(purpose: KeyPurpose): Buffer;
}

export class KeyProviderError extends Error {
  override readonly name = 'KeyProviderError';
}

const ROOT_KEY_BYTES = 32;
/** Gramine's sealing keys are 128-bit (the SGX EGETKEY key size). */
const SEALING_KEY_BYTES = 16;
const HKDF_SALT = Buffer.from('bastion key derivation v1');

/** A provider over a root key held in memory: 32 bytes (development), or a 16-byte SGX sealing key. */
export function keyProviderFromRootKey(rootKey: Buffer, description: string): KeyProvider {
  if (rootKey.length !== ROOT_KEY_BYTES && rootKey.length !== SEALING_KEY_BYTES) {
    throw new KeyProviderError(`A root key has ${ROOT_KEY_BYTES} (or, sealed, ${SEALING_KEY_BYTES}) bytes, not ${rootKey.length}`);
  }
  const root = Buffer.from(rootKey); // private copy: the caller's buffer may be reused or wiped
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', root, HKDF_SALT, Buffer.from(info, 'utf8'), 32));
  // The id is a hash of a derived value, so publishing it reveals nothing usable about the root key.
  const keyId = createHash('sha256').update(derive('bastion/key-id')).digest('hex').slice(0, 16);
  return {
    keyId,
    description,
    deriveKey: (purpose) => derive(`bastion/v1/${purpose}`),
  };
}

/**
 * The development provider: a random 32-byte root key in `<dataDir>/dev-root.key`, created (0600) on
 * first use. It protects data at rest only as well as the file's permissions do; inside an enclave
 * the sealing-key provider replaces it. Refuses a key file that others can read, or of the wrong size.
 */
export function openDevKeyProvider(dataDir: string): KeyProvider {
  const file = dataLayout(dataDir).devRootKey;
  if (!fs.existsSync(file)) writeFileAtomic(file, randomBytes(ROOT_KEY_BYTES), 0o600);
  const stat = fs.statSync(file);
  if ((stat.mode & 0o077) !== 0) {
    throw new KeyProviderError(`${file} is readable by others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`);
  }
  const rootKey = fs.readFileSync(file);
  if (rootKey.length !== ROOT_KEY_BYTES) {
    throw new KeyProviderError(`${file} holds ${rootKey.length} bytes, not a ${ROOT_KEY_BYTES}-byte key; restore it from a backup`);
  }
  const provider = keyProviderFromRootKey(rootKey, `development key file ${file}`);
  rootKey.fill(0);
  return provider;
}

/** Which enclave identity the sealing key is bound to: this exact code, or any code of its signer. */
export type SealingKeyPolicy = 'mrenclave' | 'mrsigner';

/** The running enclave, from its own SGX report (hex values). */
export interface EnclaveIdentity {
  mrenclave: string;
  mrsigner: string;
  isvProdId: number;
  isvSvn: number;
  /** A debug enclave's memory is readable by the host: never for real data. */
  debug: boolean;
}

/** What the server seals with, for the start-up log and /readyz. */
export type KeySource = { provider: 'development' } | { provider: 'enclave'; sealingKey: SealingKeyPolicy; identity: EnclaveIdentity };

export interface KeySettings {
  /** Gramine's pseudo-filesystem (a temporary fake tree in tests). */
  attestationDir: string;
  sealingKey: SealingKeyPolicy;
  /** Refuse to start with the development key. */
  requireEnclave: boolean;
}

// sgx_report_body_t (Intel SGX SDK): where the identity sits in the 384-byte body of an SGX report.
const REPORT_BODY = { attributes: 48, mrenclave: 64, mrsigner: 128, isvProdId: 256, isvSvn: 258, size: 384 } as const;
const ATTRIBUTE_DEBUG = 0x2n;

/** The identity in an SGX report (sgx_report_t: the body first). */
export function parseReportIdentity(report: Buffer): EnclaveIdentity {
  if (report.length < REPORT_BODY.size)
    throw new KeyProviderError(`An SGX report has at least ${REPORT_BODY.size} bytes, not ${report.length}`);
  return {
    mrenclave: report.subarray(REPORT_BODY.mrenclave, REPORT_BODY.mrenclave + 32).toString('hex'),
    mrsigner: report.subarray(REPORT_BODY.mrsigner, REPORT_BODY.mrsigner + 32).toString('hex'),
    isvProdId: report.readUInt16LE(REPORT_BODY.isvProdId),
    isvSvn: report.readUInt16LE(REPORT_BODY.isvSvn),
    debug: (report.readBigUInt64LE(REPORT_BODY.attributes) & ATTRIBUTE_DEBUG) !== 0n,
  };
}

/**
 * The enclave provider, or null outside an enclave (no sealing key file under `attestationDir`). The
 * identity comes from a report the enclave makes of itself: writing user_report_data (zeros) and
 * reading report, as Gramine's /dev/attestation interface has it.
 */
export function openEnclaveKeyProvider(
  settings: Pick<KeySettings, 'attestationDir' | 'sealingKey'>,
): { keys: KeyProvider; source: KeySource } | null {
  const keyFile = path.join(settings.attestationDir, 'keys', `_sgx_${settings.sealingKey}`);
  if (!fs.existsSync(keyFile)) return null;
  const sealingKey = fs.readFileSync(keyFile);
  if (sealingKey.length !== SEALING_KEY_BYTES) {
    throw new KeyProviderError(`${keyFile} holds ${sealingKey.length} bytes, not a ${SEALING_KEY_BYTES}-byte SGX sealing key`);
  }
  fs.writeFileSync(path.join(settings.attestationDir, 'user_report_data'), Buffer.alloc(64));
  const identity = parseReportIdentity(fs.readFileSync(path.join(settings.attestationDir, 'report')));
  const keys = keyProviderFromRootKey(sealingKey, `SGX sealing key bound to ${settings.sealingKey.toUpperCase()} (${keyFile})`);
  sealingKey.fill(0);
  return { keys, source: { provider: 'enclave', sealingKey: settings.sealingKey, identity } };
}

/**
 * The key provider the server runs with: the enclave's sealing key when there is one; otherwise the
 * development key file, unless `requireEnclave` says to refuse (KeyProviderError naming what is missing).
 */
export function openKeyProvider(dataDir: string, settings: KeySettings): { keys: KeyProvider; source: KeySource } {
  const enclave = openEnclaveKeyProvider(settings);
  if (enclave) return enclave;
  if (settings.requireEnclave) {
    throw new KeyProviderError(
      `BASTION_REQUIRE_ENCLAVE is set, but there is no SGX ` +
        `sealing key at ${path.join(settings.attestationDir, 'keys', `_sgx_${settings.sealingKey}`)}: ` +
        'run the server in its Gramine enclave (gramine-sgx), or unset BASTION_REQUIRE_ENCLAVE for development',
    );
  }
  return { keys: openDevKeyProvider(dataDir), source: { provider: 'development' } };
}
