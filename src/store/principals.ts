// Rows of the principals and tokens tables. Data access only; the rules (who may do what, how tokens
// are minted and checked) live in src/governance/.
import type { Store } from './db.js';

export type Role = 'admin' | 'member';

export interface PrincipalRow {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  revokedAt: string | null;
}

export interface TokenRow {
  id: string;
  principalId: string;
  secretHash: Buffer;
  createdAt: string;
  revokedAt: string | null;
}

const principalColumns = 'id, name, role, created_at AS createdAt, revoked_at AS revokedAt';

export function insertPrincipal(store: Store, row: PrincipalRow): void {
  store.db
    .prepare('INSERT INTO principals (id, name, role, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)')
    .run(row.id, row.name, row.role, row.createdAt, row.revokedAt);
}

export function insertToken(store: Store, row: TokenRow): void {
  store.db
    .prepare('INSERT INTO tokens (id, principal_id, secret_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)')
    .run(row.id, row.principalId, row.secretHash, row.createdAt, row.revokedAt);
}

/** Active principals, oldest first (UUID v7 ids sort by creation). */
export function listActivePrincipals(store: Store): PrincipalRow[] {
  return store.db.prepare(`SELECT ${principalColumns} FROM principals WHERE revoked_at IS NULL ORDER BY id`).all() as PrincipalRow[];
}

export function findActivePrincipal(store: Store, id: string): PrincipalRow | undefined {
  return store.db.prepare(`SELECT ${principalColumns} FROM principals WHERE id = ? AND revoked_at IS NULL`).get(id) as
    | PrincipalRow
    | undefined;
}

export function countPrincipals(store: Store): number {
  return (store.db.prepare('SELECT count(*) AS n FROM principals').get() as { n: number }).n;
}

export function countActiveAdmins(store: Store): number {
  return (
    store.db.prepare("SELECT count(*) AS n FROM principals WHERE role = 'admin' AND revoked_at IS NULL").get() as {
      n: number;
    }
  ).n;
}

/** Marks the principal and all its tokens revoked. Returns false when no active principal had the id. */
export function revokePrincipalRow(store: Store, id: string, at: string): boolean {
  const changed = store.db.prepare('UPDATE principals SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes;
  if (changed === 0) return false;
  store.db.prepare('UPDATE tokens SET revoked_at = ? WHERE principal_id = ? AND revoked_at IS NULL').run(at, id);
  return true;
}

/** The token with this id and its principal, both active, or undefined. */
export function findActiveToken(store: Store, tokenId: string): { token: TokenRow; principal: PrincipalRow } | undefined {
  const row = store.db
    .prepare(
      `SELECT t.id AS tokenId, t.principal_id AS principalId, t.secret_hash AS secretHash,
              t.created_at AS tokenCreatedAt, p.name AS name, p.role AS role, p.created_at AS createdAt
         FROM tokens t JOIN principals p ON p.id = t.principal_id
        WHERE t.id = ? AND t.revoked_at IS NULL AND p.revoked_at IS NULL`,
    )
    .get(tokenId) as
    | { tokenId: string; principalId: string; secretHash: Buffer; tokenCreatedAt: string; name: string; role: Role; createdAt: string }
    | undefined;
  if (!row) return undefined;
  return {
    token: { id: row.tokenId, principalId: row.principalId, secretHash: row.secretHash, createdAt: row.tokenCreatedAt, revokedAt: null },
    principal: { id: row.principalId, name: row.name, role: row.role, createdAt: row.createdAt, revokedAt: null },
  };
}
