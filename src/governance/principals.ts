// Principals (the parties: people, services, CI pipelines) and their tokens: creation, listing,
// revocation, authentication and the first admin. Invariants: a token is usable only while it and its
// principal are active; revocation takes effect on the next request; there is always an active admin.
import type { Static } from 'typebox';
import { v7 as uuidv7 } from 'uuid';
import { dataLayout } from '../config.js';
import { BastionError } from '../errors.js';
import type { CreatedPrincipalSchema, PrincipalSchema } from '../schemas/principals.js';
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
  type PrincipalRow,
  type Role,
  revokePrincipalRow,
} from '../store/principals.js';
import { enforce, type GovernanceDeps } from './authorize.js';
import { mintToken, parseToken, parseTokenVerifier, secretMatches } from './tokens.js';

export type { Role } from '../store/principals.js';

export type Principal = Static<typeof PrincipalSchema>;
/** With the bearer token: returned once, never stored in clear. */
export type CreatedPrincipal = Static<typeof CreatedPrincipalSchema>;

function toPrincipal(row: PrincipalRow): Principal {
  return { id: row.id, name: row.name, role: row.role, createdAt: row.createdAt };
}

/** Admins manage principals: FORBIDDEN (audited) for anyone else. */
function requireManager(deps: GovernanceDeps, actor: Principal): void {
  enforce(deps, actor, 'principals.manage', { kind: 'principals' });
}

/**
 * Creates a principal with one fresh token, for an admin `actor`. `name` is 1–200 characters (checked
 * by the route schema).
 */
export function createPrincipal(deps: GovernanceDeps, actor: Principal, input: { name: string; role: Role }): CreatedPrincipal {
  requireManager(deps, actor);
  const createdAt = new Date().toISOString();
  const row: PrincipalRow = { id: uuidv7(), name: input.name, role: input.role, createdAt, revokedAt: null };
  const minted = mintToken();
  deps.store.transaction(() => {
    insertPrincipal(deps.store, row);
    insertToken(deps.store, { id: minted.id, principalId: row.id, secretHash: minted.secretHash, createdAt, revokedAt: null });
    deps.audit.record({
      principalId: actor.id,
      action: 'principal.create',
      target: { kind: 'principal', id: row.id },
      outcome: 'ok',
      details: { role: row.role },
      subjects: [row.id],
    });
  });
  return { ...toPrincipal(row), token: minted.token };
}

export function listPrincipals(deps: GovernanceDeps, actor: Principal): Principal[] {
  requireManager(deps, actor);
  return listActivePrincipals(deps.store).map(toPrincipal);
}

export function getPrincipal(deps: GovernanceDeps, actor: Principal, id: string): Principal {
  requireManager(deps, actor);
  const row = findActivePrincipal(deps.store, id);
  if (!row) throw new BastionError('NOT_FOUND', `No principal with id ${id}`);
  return toPrincipal(row);
}

/**
 * Revokes a principal and every token it holds, for an admin `actor`. Refuses to remove the last active
 * admin. The caller then cancels the principal's jobs (training/jobs.ts cancelAllOf); if the process
 * stops first, the next start cancels them.
 */
export function revokePrincipal(deps: GovernanceDeps, actor: Principal, id: string): void {
  requireManager(deps, actor);
  deps.store.transaction(() => {
    const row = findActivePrincipal(deps.store, id);
    if (!row) throw new BastionError('NOT_FOUND', `No principal with id ${id}`);
    if (row.role === 'admin' && countActiveAdmins(deps.store) <= 1) {
      throw new BastionError('LAST_ADMIN', 'This is the only active admin; create another admin before removing it');
    }
    revokePrincipalRow(deps.store, id, new Date().toISOString());
    deps.audit.record({
      principalId: actor.id,
      action: 'principal.revoke',
      target: { kind: 'principal', id },
      outcome: 'ok',
      details: { role: row.role },
      subjects: [id],
    });
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
export function bootstrapAdmin(deps: GovernanceDeps, dataDir: string): string | null {
  const file = dataLayout(dataDir).adminToken;
  const minted = mintToken();
  return createFirstAdmin(deps, minted, () => writeFileAtomic(file, `${minted.token}\n`, 0o600)) ? file : null;
}

/**
 * On a store without principals, creates the admin principal with the token whose verifier is given
 * (tokens.ts: the operator made the token on its own machine; the server never sees it, and writes no
 * file). Inside an enclave this is how an admin exists at all: the data folder is sealed from the host.
 * Returns whether an admin was created. Throws VALIDATION_FAILED for a malformed verifier.
 */
export function bootstrapAdminFromVerifier(deps: GovernanceDeps, verifier: string): boolean {
  const parsed = parseTokenVerifier(verifier);
  if (!parsed)
    throw new BastionError(
      'VALIDATION_FAILED',
      'The admin token verifier is not bstv_<32 hex digits>_<64 hex digits> (bastion token new prints one)',
    );
  return createFirstAdmin(deps, parsed, () => undefined);
}

function createFirstAdmin(deps: GovernanceDeps, token: { id: string; secretHash: Buffer }, alsoInTransaction: () => void): boolean {
  const { store } = deps;
  if (countPrincipals(store) > 0) return false;
  const createdAt = new Date().toISOString();
  const row: PrincipalRow = { id: uuidv7(), name: 'admin', role: 'admin', createdAt, revokedAt: null };
  return store.transaction(() => {
    if (countPrincipals(store) > 0) return false;
    insertPrincipal(store, row);
    insertToken(store, { id: token.id, principalId: row.id, secretHash: token.secretHash, createdAt, revokedAt: null });
    deps.audit.record({
      principalId: null,
      action: 'principal.create',
      target: { kind: 'principal', id: row.id },
      outcome: 'ok',
      details: { role: 'admin', bootstrap: true },
    });
    alsoInTransaction();
    return true;
  });
}
