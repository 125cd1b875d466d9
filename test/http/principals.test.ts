import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
before(async () => {
  t = await buildTestApp();
});
after(async () => t.close());

describe('authentication on /v1', () => {
  test('a request without a token gets 401 problem+json with WWW-Authenticate: Bearer', async () => {
    for (const [method, url] of [
      ['GET', '/v1/whoami'],
      ['GET', '/v1/principals'],
      ['POST', '/v1/principals'],
      ['DELETE', '/v1/principals/01a2130d-2975-764e-9b8b-fddd285cddb6'],
    ] as const) {
      const res = await t.app.inject({ method, url });
      assert.equal(res.statusCode, 401, `${method} ${url}`);
      assert.match(res.headers['content-type'] as string, /^application\/problem\+json/);
      assert.match(res.headers['www-authenticate'] as string, /^Bearer/);
      assert.equal(res.json().type, 'urn:bastion:problem:unauthorized');
    }
  });

  test('an unknown, malformed or non-Bearer token gets 401', async () => {
    const forged = t.adminToken.slice(0, -4) + (t.adminToken.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    for (const authorization of ['Bearer nope', `Basic ${t.adminToken}`, `Bearer ${forged}`, 'Bearer', `Bearer ${t.adminToken} extra`]) {
      const res = await t.app.inject({ url: '/v1/whoami', headers: { authorization } });
      assert.equal(res.statusCode, 401, authorization.slice(0, 12));
    }
  });

  test('the admin token from the first start works, with the scheme in any case', async () => {
    const res = await t.app.inject({ url: '/v1/whoami', headers: { authorization: `bearer ${t.adminToken}` } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().role, 'admin');
    assert.equal(res.json().name, 'admin');
  });

  test('health probes need no token', async () => {
    assert.equal((await t.app.inject({ url: '/healthz' })).statusCode, 200);
    assert.equal((await t.app.inject({ url: '/readyz' })).json().status, 'ready');
  });
});

describe('principals', () => {
  test('an admin creates a member: 201 with id, Location and a token shown once that works', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/principals', headers: t.auth(), payload: { name: 'hospital-a' } });
    assert.equal(res.statusCode, 201);
    const body = res.json();
    assert.equal(body.role, 'member');
    assert.equal(res.headers.location, `/v1/principals/${body.id}`);
    assert.match(body.token, /^bst_/);
    const me = await t.app.inject({ url: '/v1/whoami', headers: t.auth(body.token) });
    assert.deepEqual(me.json(), { id: body.id, name: 'hospital-a', role: 'member', createdAt: body.createdAt });
    const listed = await t.app.inject({ url: '/v1/principals', headers: t.auth() });
    const entry = listed.json().items.find((p: { id: string }) => p.id === body.id);
    assert.ok(entry);
    assert.equal('token' in entry, false);
    const one = await t.app.inject({ url: `/v1/principals/${body.id}`, headers: t.auth() });
    assert.equal(one.json().name, 'hospital-a');
  });

  test('a member may not create, list, read or delete principals: 403', async () => {
    const member = (await t.app.inject({ method: 'POST', url: '/v1/principals', headers: t.auth(), payload: { name: 'bank' } })).json();
    const calls = [
      { method: 'POST' as const, url: '/v1/principals', payload: { name: 'x' } },
      { method: 'GET' as const, url: '/v1/principals' },
      { method: 'GET' as const, url: `/v1/principals/${member.id}` },
      { method: 'DELETE' as const, url: `/v1/principals/${member.id}` },
    ];
    for (const call of calls) {
      const res = await t.app.inject({ ...call, headers: t.auth(member.token) });
      assert.equal(res.statusCode, 403, `${call.method} ${call.url}`);
      assert.equal(res.json().type, 'urn:bastion:problem:forbidden');
    }
  });

  test('deleting a principal revokes its token at once; a second delete is 404', async () => {
    const member = (await t.app.inject({ method: 'POST', url: '/v1/principals', headers: t.auth(), payload: { name: 'ci' } })).json();
    assert.equal((await t.app.inject({ url: '/v1/whoami', headers: t.auth(member.token) })).statusCode, 200);
    const del = await t.app.inject({ method: 'DELETE', url: `/v1/principals/${member.id}`, headers: t.auth() });
    assert.equal(del.statusCode, 204);
    assert.equal(del.body, '');
    assert.equal((await t.app.inject({ url: '/v1/whoami', headers: t.auth(member.token) })).statusCode, 401);
    const again = await t.app.inject({ method: 'DELETE', url: `/v1/principals/${member.id}`, headers: t.auth() });
    assert.equal(again.statusCode, 404);
    assert.equal(again.json().type, 'urn:bastion:problem:not-found');
  });

  test('an admin may create another admin, and the last admin cannot be deleted (409)', async () => {
    const me = (await t.app.inject({ url: '/v1/whoami', headers: t.auth() })).json();
    const res = await t.app.inject({ method: 'DELETE', url: `/v1/principals/${me.id}`, headers: t.auth() });
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().type, 'urn:bastion:problem:last-admin');
    const second = await t.app.inject({
      method: 'POST',
      url: '/v1/principals',
      headers: t.auth(),
      payload: { name: 'ops', role: 'admin' },
    });
    assert.equal(second.json().role, 'admin');
    assert.equal((await t.app.inject({ url: '/v1/principals', headers: t.auth(second.json().token) })).statusCode, 200);
  });

  test('invalid bodies get 400 validation-failed naming every bad field by JSON pointer', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/principals', headers: t.auth(), payload: { role: 'root', extra: true } });
    assert.equal(res.statusCode, 400);
    const problem = res.json();
    assert.equal(problem.type, 'urn:bastion:problem:validation-failed');
    const pointers = problem.errors.map((e: { pointer: string }) => e.pointer).sort();
    assert.deepEqual(pointers, ['/extra', '/name', '/role']);
    const empty = await t.app.inject({ method: 'POST', url: '/v1/principals', headers: t.auth(), payload: { name: '' } });
    assert.deepEqual(
      empty.json().errors.map((e: { pointer: string }) => e.pointer),
      ['/name'],
    );
  });

  test('a name with a control, line-separator or bidirectional formatting character is 400 naming /name; nothing is created', async () => {
    const hostile = ['a\u0000b', 'tab\there', 'new\nline', 'cr\r', 'esc\u001b[31m', 'del\u007f', 'c1\u0085', 'c1\u009b'];
    hostile.push('admin\u202egnp.exe');
    hostile.push('\u202aembedded', 'iso\u2066late\u2069', 'mark\u200e', 'alm\u061c', 'ls\u2028', 'bom\ufeff');
    const before = (await t.app.inject({ url: '/v1/principals', headers: t.auth() })).json().items.length;
    for (const name of hostile) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/principals', headers: t.auth(), payload: { name } });
      assert.equal(res.statusCode, 400, JSON.stringify(name));
      assert.equal(res.json().type, 'urn:bastion:problem:validation-failed');
      const detail = 'must not contain control characters, line separators or bidirectional formatting characters';
      assert.deepEqual(res.json().errors, [{ pointer: '/name', detail }]);
    }
    assert.equal((await t.app.inject({ url: '/v1/principals', headers: t.auth() })).json().items.length, before);
  });

  test('names in any script, with spaces, punctuation and emoji, are accepted', async () => {
    for (const name of ['Hôpital Saint-Éloi', 'مستشفى', '病院 A', 'team (ci) #2', 'lab 🧪', 'a\u200db']) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/principals', headers: t.auth(), payload: { name } });
      assert.equal(res.statusCode, 201, name);
      assert.equal(res.json().name, name);
    }
  });

  test('a malformed id in the path is 400 naming the parameter; an unknown id is 404', async () => {
    const bad = await t.app.inject({ url: '/v1/principals/not-a-uuid', headers: t.auth() });
    assert.equal(bad.statusCode, 400);
    assert.deepEqual(
      bad.json().errors.map((e: { parameter: string }) => e.parameter),
      ['id'],
    );
    const unknown = await t.app.inject({ url: '/v1/principals/01a2130d-2975-764e-9b8b-fddd285cddb6', headers: t.auth() });
    assert.equal(unknown.statusCode, 404);
  });
});
