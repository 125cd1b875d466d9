// Key derivation: the one place that holds the root key from which every data-at-rest key is derived.
// Callers ask a KeyProvider for the key of one purpose (HKDF-SHA256, RFC 5869, with the purpose in
// `info`), so keys for different uses are independent and the root key itself never leaves this
// module. This file ships the development provider (a random key file in the data folder); the
// enclave provider (Gramine's sealing key, bound to MRENCLAVE/MRSIGNER) implements the same interface,
// so callers do not change when it arrives.
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { dataLayout } from '../config.js';
import { writeFileAtomic } from '../store/files.js';

/** What a derived key is for. Each purpose gets an independent key; never reuse one for another use. */
export const KeyPurpose = {
  /** AES-256-GCM segment keys of sealed artifact blobs (src/artifacts/sealed-blob.ts). */
  SEALED_BLOBS: 'sealed-blobs',
  /** HMAC-SHA256 key of the audit log's chain and its high-water mark (src/governance/audit.ts). */
  AUDIT: 'audit',
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
const HKDF_SALT = Buffer.from('bastion key derivation v1');

/** A provider over a root key held in memory (the development provider, and tests). */
export function keyProviderFromRootKey(rootKey: Buffer, description: string): KeyProvider {
  if (rootKey.length !== ROOT_KEY_BYTES) throw new KeyProviderError(`A root key has ${ROOT_KEY_BYTES} bytes, not ${rootKey.length}`);
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
