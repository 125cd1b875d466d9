// The schema's history: an append-only list of migrations, applied in order at start. A released
// migration is never edited; a change to the schema is a new entry with the next version.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'principals and tokens',
    sql: `
      CREATE TABLE principals (
        id          TEXT PRIMARY KEY,            -- UUID v7
        name        TEXT NOT NULL,
        role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        created_at  TEXT NOT NULL,               -- RFC 3339
        revoked_at  TEXT                          -- set when deleted; the row stays for ownership and audit
      ) STRICT;

      CREATE TABLE tokens (
        id            TEXT PRIMARY KEY,          -- UUID v7, the public half of a token
        principal_id  TEXT NOT NULL REFERENCES principals (id),
        secret_hash   BLOB NOT NULL,             -- SHA-256 of the 32 secret bytes
        created_at    TEXT NOT NULL,
        revoked_at    TEXT
      ) STRICT;
      CREATE INDEX tokens_principal ON tokens (principal_id);
    `,
  },
];
