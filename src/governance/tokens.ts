// Bearer tokens: minting, parsing and constant-time verification. A token is
// `bst_<token id>_<secret>`: the id (a UUID v7, not secret) finds the row, the 32-byte secret is
// checked against its stored SHA-256 with timingSafeEqual. Only the hash is ever stored; the token is
// shown once, at creation. A plain SHA-256 suffices because the secret has 256 bits of entropy: there
// is nothing to brute-force that a slow KDF would protect.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';

export const TOKEN_PREFIX = 'bst_';
const SECRET_BYTES = 32;
const TOKEN_PATTERN = /^bst_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;

export interface MintedToken {
  /** Token id in UUID form, the primary key of its row. */
  id: string;
  /** The full bearer token, to be shown once. */
  token: string;
  secretHash: Buffer;
}

export function mintToken(): MintedToken {
  const id = uuidv7();
  const secret = randomBytes(SECRET_BYTES);
  return {
    id,
    token: `${TOKEN_PREFIX}${id.replaceAll('-', '')}_${secret.toString('base64url')}`,
    secretHash: hashSecret(secret),
  };
}

export function hashSecret(secret: Buffer): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Splits a bearer token into its id (UUID form) and secret bytes; null when it is not well-formed. */
export function parseToken(token: string): { id: string; secret: Buffer } | null {
  const match = TOKEN_PATTERN.exec(token);
  if (!match) return null;
  const hex = match[1]!;
  const secret = Buffer.from(match[2]!, 'base64url');
  if (secret.length !== SECRET_BYTES) return null;
  const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return { id, secret };
}

/**
 * A token's verifier, `bstv_<token id>_<SHA-256 of the secret, hex>`: what the server stores of the token,
 * and nothing that lets anyone use it. An operator makes the admin token on its own machine and gives the
 * server only this (BASTION_ADMIN_TOKEN_VERIFIER): inside an enclave the manifest carries it, so MRENCLAVE
 * commits to who the admin is, and no token ever needs to leave the sealed data folder.
 */
export function tokenVerifier(token: string): string | null {
  const parsed = parseToken(token);
  return parsed ? `bstv_${parsed.id.replaceAll('-', '')}_${hashSecret(parsed.secret).toString('hex')}` : null;
}

const VERIFIER_PATTERN = /^bstv_([0-9a-f]{32})_([0-9a-f]{64})$/;

/** The token id (UUID form) and secret hash of a verifier; null when it is not well-formed. */
export function parseTokenVerifier(verifier: string): { id: string; secretHash: Buffer } | null {
  const match = VERIFIER_PATTERN.exec(verifier);
  if (!match) return null;
  const hex = match[1]!;
  return {
    id: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    secretHash: Buffer.from(match[2]!, 'hex'),
  };
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: Buffer, storedHash: Buffer): boolean {
  const presented = hashSecret(secret);
  return presented.length === storedHash.length && timingSafeEqual(presented, storedHash);
}
