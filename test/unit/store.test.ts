import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { dataLayout } from '../../src/config.js';
import { migrate, openStore, StoreError } from '../../src/store/db.js';
import { migrations } from '../../src/store/migrations.js';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-store-'));
}

test('opens the data folder database in WAL mode with foreign keys on, at the newest schema', () => {
  const dir = tempDir();
  const store = openStore(dir);
  assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(store.db.pragma('foreign_keys', { simple: true }), 1);
  assert.equal(store.db.pragma('user_version', { simple: true }), Math.max(...migrations.map((m) => m.version)));
  assert.ok(store.isOpen());
  store.close();
  assert.equal(store.isOpen(), false);
  assert.ok(fs.existsSync(dataLayout(dir).database));
});

test('migrations are applied once: reopening applies nothing', () => {
  const dir = tempDir();
  openStore(dir).close();
  const db = new Database(dataLayout(dir).database);
  assert.deepEqual(migrate(db, migrations), []);
  db.close();
});

test('migration versions are unique and increasing', () => {
  const versions = migrations.map((m) => m.version);
  assert.deepEqual(
    versions,
    [...versions].sort((a, b) => a - b),
  );
  assert.equal(new Set(versions).size, versions.length);
  assert.equal(versions[0], 1);
});

test('a failing migration leaves the database at its previous version', () => {
  const db = new Database(':memory:');
  const broken = [...migrations, { version: 99, name: 'broken', sql: 'CREATE TABLE ok (x INTEGER); SELECT * FROM no_such_table;' }];
  assert.throws(() => migrate(db, broken));
  assert.equal(db.pragma('user_version', { simple: true }), 0);
  assert.equal((db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name IN ('ok', 'principals')").get() as { n: number }).n, 0);
  db.close();
});

test('refuses to open a database newer than this server', () => {
  const dir = tempDir();
  const db = new Database(dataLayout(dir).database);
  db.pragma('user_version = 999');
  db.close();
  assert.throws(
    () => openStore(dir),
    (err: unknown) => err instanceof StoreError && /999/.test(err.message),
  );
});

test('foreign keys are enforced: a token cannot point at a missing principal', () => {
  const store = openStore(':memory:');
  assert.throws(
    () => store.db.prepare("INSERT INTO tokens (id, principal_id, secret_hash, created_at) VALUES ('t', 'nobody', x'00', 'now')").run(),
    /FOREIGN KEY/,
  );
  store.close();
});

test('migration 8 gives each dataset that existed before it a random commitment salt of its own', () => {
  const db = new Database(':memory:');
  migrate(
    db,
    migrations.filter((m) => m.version < 8),
  );
  db.prepare("INSERT INTO principals (id, name, role, created_at) VALUES ('p', 'owner', 'member', '2026-01-01T00:00:00Z')").run();
  const insert = db.prepare(
    `INSERT INTO datasets (id, owner_id, name, description, format, sha256, size_bytes, privacy_limit, delta, sample_count, details, created_at)
     VALUES (?, 'p', 'd', '', 'csv', ?, 1, 1, 1e-5, 10, '{}', '2026-01-01T00:00:00Z')`,
  );
  insert.run('a', '0'.repeat(64));
  insert.run('b', '0'.repeat(64));
  migrate(db, migrations);
  const salts = (db.prepare('SELECT commitment_salt AS salt FROM datasets ORDER BY id').all() as { salt: string }[]).map((r) => r.salt);
  assert.equal(salts.length, 2);
  for (const salt of salts) assert.match(salt, /^[0-9a-f]{64}$/);
  assert.notEqual(salts[0], salts[1], 'same file hash, different salts');
  db.close();
});

test('migration 9 renames the dtypes of stored model checks to the safetensors names, keeping everything else', () => {
  const db = new Database(':memory:');
  migrate(
    db,
    migrations.filter((m) => m.version < 9),
  );
  db.prepare("INSERT INTO principals (id, name, role, created_at) VALUES ('p', 'owner', 'member', '2026-01-01T00:00:00Z')").run();
  const details = {
    methods: ['forward'],
    parameters: [
      { name: 'fc.weight', shape: [2, 4], dtype: 'float32', requiresGrad: true },
      { name: 'fc.bias', shape: [2], dtype: 'float64', requiresGrad: false },
    ],
    buffers: [
      { name: 'bn.num_batches_tracked', shape: [], dtype: 'int64' },
      { name: 'odd', shape: [1], dtype: 'complex64' },
      { name: 'unknown', shape: [1], dtype: 'Float8_e5m2' },
    ],
    parameterCount: 10,
    operators: ['aten::linear'],
    lineage: { loss: 'cross_entropy' },
  };
  db.prepare(
    `INSERT INTO models (id, owner_id, name, description, sha256, size_bytes, details, created_at)
     VALUES (?, 'p', 'm', '', ?, 1, ?, '2026-01-01T00:00:00Z')`,
  ).run('m', '0'.repeat(64), JSON.stringify(details));
  migrate(db, migrations);
  const row = db.prepare("SELECT details FROM models WHERE id = 'm'").get() as { details: string };
  assert.deepEqual(JSON.parse(row.details), {
    ...details,
    parameters: [
      { name: 'fc.weight', shape: [2, 4], dtype: 'F32', requiresGrad: true },
      { name: 'fc.bias', shape: [2], dtype: 'F64', requiresGrad: false },
    ],
    buffers: [
      { name: 'bn.num_batches_tracked', shape: [], dtype: 'I64' },
      { name: 'odd', shape: [1], dtype: 'ComplexFloat' },
      { name: 'unknown', shape: [1], dtype: 'Float8_e5m2' },
    ],
  });
  db.close();
});
