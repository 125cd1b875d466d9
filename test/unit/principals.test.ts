import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { dataLayout } from '../../src/config.js';
import { BastionError } from '../../src/errors.js';
import { openAuditLog } from '../../src/governance/audit.js';
import type { GovernanceDeps } from '../../src/governance/authorize.js';
import {
  authenticate,
  bootstrapAdmin,
  bootstrapAdminFromVerifier,
  createPrincipal,
  getPrincipal,
  listPrincipals,
  type Principal,
  revokePrincipal,
} from '../../src/governance/principals.js';
import { mintToken, parseToken, tokenVerifier } from '../../src/governance/tokens.js';
import { openStore } from '../../src/store/db.js';

/** A store in a fresh folder with its bootstrapped admin, the actor of the tests' principal management. */
function governed(): GovernanceDeps & { dir: string; admin: Principal } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-gov-'));
  const store = openStore(dir);
  const deps = { store, audit: openAuditLog(store, Buffer.alloc(32), { highWaterFile: null }) };
  const admin = authenticate(store, fs.readFileSync(bootstrapAdmin(deps, dir)!, 'utf8').trim())!;
  return { ...deps, dir, admin };
}

const forbidden = (e: unknown) => e instanceof BastionError && e.code === 'FORBIDDEN';

test('first start creates one admin and writes its token to a 0600 file; later starts do not', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-gov-'));
  const store = openStore(dir);
  const deps = { store, audit: openAuditLog(store, Buffer.alloc(32), { highWaterFile: null }) };
  const file = bootstrapAdmin(deps, dir);
  assert.equal(file, dataLayout(dir).adminToken);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const token = fs.readFileSync(file, 'utf8').trim();
  const admin = authenticate(store, token);
  assert.equal(admin?.role, 'admin');
  assert.equal(bootstrapAdmin(deps, dir), null);
  assert.equal(fs.readFileSync(file, 'utf8').trim(), token);
  assert.equal(listPrincipals(deps, admin!).length, 1);
  store.close();
});

test('given a token verifier, the first start creates the admin with that token and writes no file; the verifier itself does not sign in', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-gov-'));
  const store = openStore(dir);
  const deps = { store, audit: openAuditLog(store, Buffer.alloc(32), { highWaterFile: null }) };
  const { token } = mintToken();
  const verifier = tokenVerifier(token)!;
  assert.match(verifier, /^bstv_[0-9a-f]{32}_[0-9a-f]{64}$/);
  // The secret is base64url and may itself hold '_': take it by parsing, never by splitting the token.
  const { secret } = parseToken(token)!;
  for (const form of [secret.toString('hex'), secret.toString('base64url')])
    assert.equal(verifier.includes(form), false, 'the secret is not in the verifier');
  assert.throws(
    () => bootstrapAdminFromVerifier(deps, 'bstv_nope'),
    (e: unknown) => e instanceof BastionError && e.code === 'VALIDATION_FAILED',
  );
  assert.equal(bootstrapAdminFromVerifier(deps, verifier), true);
  assert.equal(fs.existsSync(dataLayout(dir).adminToken), false, 'no token file');
  assert.equal(authenticate(store, token)?.role, 'admin');
  assert.equal(authenticate(store, verifier), null);
  const other = mintToken().token;
  assert.equal(authenticate(store, other), null);
  assert.equal(bootstrapAdminFromVerifier(deps, tokenVerifier(other)!), false, 'an admin exists: nothing is created');
  assert.equal(bootstrapAdmin(deps, dir), null);
  store.close();
});

test('ids are UUID v7 and lists come oldest first', () => {
  const deps = governed();
  const names = ['a', 'b', 'c', 'd'];
  for (const name of names) createPrincipal(deps, deps.admin, { name, role: 'member' });
  const list = listPrincipals(deps, deps.admin);
  assert.deepEqual(
    list.map((p) => p.name),
    ['admin', ...names],
  );
  for (const p of list) assert.match(p.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  deps.store.close();
});

test('revoking a principal stops its token at once and hides it from the list', () => {
  const deps = governed();
  const { store, admin } = deps;
  const member = createPrincipal(deps, admin, { name: 'bank', role: 'member' });
  assert.equal(authenticate(store, member.token)?.id, member.id);
  revokePrincipal(deps, admin, member.id);
  assert.equal(authenticate(store, member.token), null);
  assert.equal(
    listPrincipals(deps, admin).some((p) => p.id === member.id),
    false,
  );
  assert.throws(
    () => getPrincipal(deps, admin, member.id),
    (e: unknown) => e instanceof BastionError && e.code === 'NOT_FOUND',
  );
  assert.throws(
    () => revokePrincipal(deps, admin, member.id),
    (e: unknown) => e instanceof BastionError && e.code === 'NOT_FOUND',
  );
  store.close();
});

test('the last active admin cannot be revoked', () => {
  const deps = governed();
  const { store, admin } = deps;
  assert.throws(
    () => revokePrincipal(deps, admin, admin.id),
    (e: unknown) => e instanceof BastionError && e.code === 'LAST_ADMIN',
  );
  const second = createPrincipal(deps, admin, { name: 'root2', role: 'admin' });
  revokePrincipal(deps, second, admin.id);
  assert.equal(authenticate(store, second.token)?.id, second.id);
  assert.throws(
    () => revokePrincipal(deps, second, second.id),
    (e: unknown) => e instanceof BastionError && e.code === 'LAST_ADMIN',
  );
  store.close();
});

test('only admins manage principals: a member actor gets FORBIDDEN and changes nothing', () => {
  const deps = governed();
  const { store, admin } = deps;
  const member = createPrincipal(deps, admin, { name: 'bank', role: 'member' });
  const other = createPrincipal(deps, admin, { name: 'hospital', role: 'member' });
  const before = listPrincipals(deps, admin);
  assert.throws(() => createPrincipal(deps, member, { name: 'sneaky', role: 'admin' }), forbidden);
  assert.throws(() => listPrincipals(deps, member), forbidden);
  assert.throws(() => getPrincipal(deps, member, other.id), forbidden);
  assert.throws(() => revokePrincipal(deps, member, other.id), forbidden);
  assert.throws(() => revokePrincipal(deps, member, member.id), forbidden);
  assert.deepEqual(listPrincipals(deps, admin), before);
  assert.equal(authenticate(store, other.token)?.id, other.id);
  assert.equal(getPrincipal(deps, admin, other.id).name, 'hospital');
  store.close();
});

test('a token for one principal never authenticates as another, and garbage authenticates no one', () => {
  const deps = governed();
  const { store, admin } = deps;
  const a = createPrincipal(deps, admin, { name: 'a', role: 'member' });
  const b = createPrincipal(deps, admin, { name: 'b', role: 'member' });
  // The secret is base64url and may itself contain '_': split at the first two only.
  const parts = (token: string) => /^bst_([0-9a-f]{32})_(.+)$/.exec(token)!.slice(1);
  const [aId, aSecret] = parts(a.token);
  const [bId] = parts(b.token);
  assert.equal(authenticate(store, `bst_${bId}_${aSecret}`), null);
  assert.equal(authenticate(store, `bst_${aId}_${aSecret}`)?.id, a.id);
  assert.equal(authenticate(store, 'garbage'), null);
  store.close();
});
