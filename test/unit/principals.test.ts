import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { dataLayout } from '../../src/config.js';
import { BastionError } from '../../src/errors.js';
import {
  authenticate,
  bootstrapAdmin,
  createPrincipal,
  listPrincipals,
  revokePrincipal,
} from '../../src/governance/principals.js';
import { openStore } from '../../src/store/db.js';

test('first start creates one admin and writes its token to a 0600 file; later starts do not', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-gov-'));
  const store = openStore(dir);
  const file = bootstrapAdmin(store, dir);
  assert.equal(file, dataLayout(dir).adminToken);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const token = fs.readFileSync(file, 'utf8').trim();
  const admin = authenticate(store, token);
  assert.equal(admin?.role, 'admin');
  assert.equal(bootstrapAdmin(store, dir), null);
  assert.equal(fs.readFileSync(file, 'utf8').trim(), token);
  assert.equal(listPrincipals(store).length, 1);
  store.close();
});

test('ids are UUID v7 and lists come oldest first', () => {
  const store = openStore(':memory:');
  const names = ['a', 'b', 'c', 'd'];
  for (const name of names) createPrincipal(store, { name, role: 'member' });
  const list = listPrincipals(store);
  assert.deepEqual(list.map((p) => p.name), names);
  for (const p of list) assert.match(p.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  store.close();
});

test('revoking a principal stops its token at once and hides it from the list', () => {
  const store = openStore(':memory:');
  createPrincipal(store, { name: 'root', role: 'admin' });
  const member = createPrincipal(store, { name: 'bank', role: 'member' });
  assert.equal(authenticate(store, member.token)?.id, member.id);
  revokePrincipal(store, member.id);
  assert.equal(authenticate(store, member.token), null);
  assert.equal(listPrincipals(store).some((p) => p.id === member.id), false);
  assert.throws(() => revokePrincipal(store, member.id), (e: unknown) => e instanceof BastionError && e.code === 'NOT_FOUND');
  store.close();
});

test('the last active admin cannot be revoked', () => {
  const store = openStore(':memory:');
  const admin = createPrincipal(store, { name: 'root', role: 'admin' });
  assert.throws(() => revokePrincipal(store, admin.id), (e: unknown) => e instanceof BastionError && e.code === 'LAST_ADMIN');
  const second = createPrincipal(store, { name: 'root2', role: 'admin' });
  revokePrincipal(store, admin.id);
  assert.equal(authenticate(store, second.token)?.id, second.id);
  store.close();
});

test('a token for one principal never authenticates as another, and garbage authenticates no one', () => {
  const store = openStore(':memory:');
  const a = createPrincipal(store, { name: 'a', role: 'member' });
  const b = createPrincipal(store, { name: 'b', role: 'member' });
  // The secret is base64url and may itself contain '_': split at the first two only.
  const parts = (token: string) => /^bst_([0-9a-f]{32})_(.+)$/.exec(token)!.slice(1);
  const [aId, aSecret] = parts(a.token);
  const [bId] = parts(b.token);
  assert.equal(authenticate(store, `bst_${bId}_${aSecret}`), null);
  assert.equal(authenticate(store, `bst_${aId}_${aSecret}`)?.id, a.id);
  assert.equal(authenticate(store, 'garbage'), null);
  store.close();
});
