// The SQLite database of one data folder: opened with WAL and foreign keys, migrated to the newest
// schema at start inside one transaction. A database newer than this code is refused, never touched.

import fs from 'node:fs';
import Database from 'better-sqlite3';
import { dataLayout } from '../config.js';
import { migrations as allMigrations, type Migration } from './migrations.js';

export type Db = Database.Database;

export interface Store {
  readonly db: Db;
  /** Runs fn in one IMMEDIATE transaction: all of it commits, or none of it. */
  transaction<T>(fn: () => T): T;
  /** True while the database answers a trivial query. */
  isOpen(): boolean;
  close(): void;
}

export class StoreError extends Error {
  override readonly name = 'StoreError';
}

/** Opens (creating if needed) `<dataDir>/bastion.db`, or an in-memory database for ':memory:'. */
export function openStore(location: string, migrations: readonly Migration[] = allMigrations): Store {
  let file = location;
  if (location !== ':memory:') {
    fs.mkdirSync(location, { recursive: true, mode: 0o700 });
    file = dataLayout(location).database;
  }
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db, migrations);
  } catch (err) {
    db.close();
    throw err;
  }
  return {
    db,
    transaction: <T>(fn: () => T): T => db.transaction(fn).immediate(),
    isOpen: () => {
      if (!db.open) return false;
      try {
        return db.prepare('SELECT 1 AS ok').get() !== undefined;
      } catch {
        return false;
      }
    },
    close: () => {
      if (db.open) db.close();
    },
  };
}

/**
 * Opens `<dataDir>/bastion.db` read-only and without migrating, for offline checks (`bastion audit
 * verify`) that must not change what they inspect, even while a server runs on the folder. Refuses a
 * missing database, one older than `minVersion` (it lacks what the check reads: `needs` names it) and
 * one newer than this code.
 */
export function openStoreReadOnly(
  dataDir: string,
  options: { minVersion: number; needs: string },
  migrations: readonly Migration[] = allMigrations,
): Store {
  const file = dataLayout(dataDir).database;
  if (!fs.existsSync(file)) throw new StoreError(`No database at ${file}; is ${dataDir} a Bastion data folder?`);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const current = db.pragma('user_version', { simple: true }) as number;
    const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
    if (current < options.minVersion) {
      throw new StoreError(
        `The database at ${file} is at schema version ${current}, older than ${options.needs} (version ${options.minVersion}); ` +
          'start the server once to migrate it',
      );
    }
    if (current > latest) {
      throw new StoreError(`The database at ${file} is at schema version ${current}, newer than this code's ${latest}`);
    }
  } catch (err) {
    db.close();
    throw err;
  }
  return {
    db,
    transaction: <T>(fn: () => T): T => db.transaction(fn).deferred(),
    isOpen: () => db.open,
    close: () => {
      if (db.open) db.close();
    },
  };
}

/** Applies every migration above the database's `user_version`; returns the versions applied. */
export function migrate(db: Db, migrations: readonly Migration[]): number[] {
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > latest) {
    throw new StoreError(
      `The database is at schema version ${current}, newer than this server's ${latest}; refusing to open it with an older server`,
    );
  }
  const pending = migrations.filter((m) => m.version > current).sort((a, b) => a.version - b.version);
  if (pending.length === 0) return [];
  db.transaction(() => {
    for (const m of pending) {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }
  }).immediate();
  return pending.map((m) => m.version);
}
