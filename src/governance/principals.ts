// Principals (the parties: people, services, CI pipelines) and their tokens: creation, listing,
// revocation, authentication and the first admin. Invariants: a token is usable only while it and its
// principal are active; revocation takes effect on the next request; there is always an active admin.
import { v7 as uuidv7 } from 'uuid';
import { dataLayout } from '../config.js';
import { BastionError } from '../errors.js';
import type { Store } from '../store/db.js';
import { writeFileAtomic } from '../store/files.js';
import {
  countActiveAdmins,
  countPrincipals,
  findActivePrincipal,
  findActiveToken,
  insertPrincipal,
  insertToken,
  listActivePrincipals,
  revokePrincipalRow,
  type PrincipalRow,
  type Role,
} from '../store/principals.js';
import { mintToken, parseToken, secretMatches } from './tokens.js';

export type { Role } from '../store/principals.js';

export interface Principal {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
}

export interface CreatedPrincipal extends Principal {
  /** The bearer token; returned once, never stored in clear. */
  token: string;
}

function toPrincipal(row: PrincipalRow): Principal {
  return { id: row.id, name: row.name, role: row.role, createdAt: row.createdAt };
}

/** Creates a principal with one fresh token. `name` is 1–200 characters (checked by the route schema). */
export function createPrincipal(store: Store, input: { name: string; role: Role }): CreatedPrincipal {
  const createdAt = new Date().toISOString();
  const row: PrincipalRow = { id: uuidv7(), name: input.name, role: input.role, createdAt, revokedAt: null };
  const minted = mintToken();
  store.transaction(() => {
    insertPrincipal(store, row);
    insertToken(store, { id: minted.id, principalId: row.id, secretHash: minted.secretHash, createdAt, revokedAt: null });
  });
  return { ...toPrincipal(row), token: minted.token };
}

export function listPrincipals(store: Store): Principal[] {
  return listActivePrincipals(store).map(toPrincipal);
}

export function getPrincipal(store: Store, id: string): Principal {
  const row = findActivePrincipal(store, id);
  if (!row) throw new BastionError('NOT_FOUND', `No principal with id ${id}`);
  return toPrincipal(row);
}

/** Revokes a principal and every token it holds. Refuses to remove the last active admin. */
export function revokePrincipal(store: Store, id: string): void {
  store.transaction(() => {
    const row = findActivePrincipal(store, id);
    if (!row) throw new BastionError('NOT_FOUND', `No principal with id ${id}`);
    if (row.role === 'admin' && countActiveAdmins(store) <= 1) {
      throw new BastionError('LAST_ADMIN', 'This is the only active admin; create another admin before removing it');
    }
    revokePrincipalRow(store, id, new Date().toISOString());
  });
}

/** The active principal a bearer token belongs to, or null for any token that is not valid now. */
export function authenticate(store: Store, bearer: string): Principal | null {
  const parsed = parseToken(bearer);
  if (!parsed) return null;
  const found = findActiveToken(store, parsed.id);
  if (!found) return null;
  return secretMatches(parsed.secret, found.token.secretHash) ? toPrincipal(found.principal) : null;
}

/**
 * On a store without principals, creates the admin principal and writes its token to
 * `<dataDir>/admin-token` (mode 0600). The file is written and fsynced before the row commits, so a
 * crash leaves either no admin (and the next start tries again) or an admin whose token is on disk.
 * Returns the file's path when an admin was created, else null.
 */
export function bootstrapAdmin(store: Store, dataDir: string): string | null {
  if (countPrincipals(store) > 0) return null;
  const file = dataLayout(dataDir).adminToken;
  const createdAt = new Date().toISOString();
  const row: PrincipalRow = { id: uuidv7(), name: 'admin', role: 'admin', createdAt, revokedAt: null };
  const minted = mintToken();
  store.transaction(() => {
    if (countPrincipals(store) > 0) return;
    insertPrincipal(store, row);
    insertToken(store, { id: minted.id, principalId: row.id, secretHash: minted.secretHash, createdAt, revokedAt: null });
    writeFileAtomic(file, `${minted.token}\n`, 0o600);
  });
  return file;
}
