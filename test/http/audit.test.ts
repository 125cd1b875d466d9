// GET /v1/audit through app.inject(): who sees which entries, the cursor, and the query validation.
// The log holds, in order: 1 the first admin's creation (by the server), 2 the member's creation (by
// the admin, about the member), then the four entries recorded below (3–6).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { openAuditLog } from '../../src/governance/audit.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
let member: { id: string; token: string };
let adminId: string;
before(async () => {
  t = await buildTestApp();
  member = (await t.app.inject({ method: 'POST', url: '/v1/principals', headers: t.auth(), payload: { name: 'hospital-a' } })).json();
  adminId = (await t.app.inject({ url: '/v1/whoami', headers: t.auth() })).json().id;
  const log = openAuditLog(t.store, randomBytes(32), { highWaterFile: null });
  const dataset = { kind: 'dataset' as const, id: '0190a000-0000-7000-8000-0000000000d1' };
  const principal = { kind: 'principal' as const, id: member.id };
  log.record({ principalId: adminId, action: 'principal.create', target: principal, outcome: 'ok', details: { role: 'member' } });
  log.record({ principalId: member.id, action: 'dataset.create', target: dataset, outcome: 'ok', details: { name: 'claims' } });
  log.record({ principalId: adminId, action: 'dataset.read', target: dataset, outcome: 'refused', subjects: [member.id] });
  log.record({ principalId: null, action: 'training.resume', target: null, outcome: 'ok' });
});
after(async () => t.close());

test('an admin reads every entry in seq order, each as an AuditEntry', async () => {
  const res = await t.app.inject({ url: '/v1/audit', headers: t.auth() });
  assert.equal(res.statusCode, 200);
  const page = res.json();
  assert.deepEqual(
    page.items.map((e: { seq: number }) => e.seq),
    [1, 2, 3, 4, 5, 6],
  );
  assert.equal(page.next, null);
  assert.deepEqual(
    page.items.slice(0, 2).map((e: { action: string; principalId: string | null }) => [e.action, e.principalId]),
    [
      ['principal.create', null],
      ['principal.create', adminId],
    ],
  );
  assert.deepEqual(page.items[4], {
    seq: 5,
    time: page.items[4].time,
    principalId: adminId,
    action: 'dataset.read',
    target: { kind: 'dataset', id: '0190a000-0000-7000-8000-0000000000d1' },
    outcome: 'refused',
    details: {},
  });
  assert.equal(page.items[5].principalId, null);
});

test('a member reads only the entries it made or is a subject of', async () => {
  const res = await t.app.inject({ url: '/v1/audit', headers: t.auth(member.token) });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(
    res.json().items.map((e: { seq: number }) => e.seq),
    [2, 4, 5],
  );
});

test('after and limit arrive as query text and page through the log with the next cursor', async () => {
  const first = (await t.app.inject({ url: '/v1/audit?limit=3', headers: t.auth() })).json();
  assert.deepEqual([first.items.map((e: { seq: number }) => e.seq), first.next], [[1, 2, 3], 3]);
  const second = (await t.app.inject({ url: `/v1/audit?after=${first.next}&limit=3`, headers: t.auth() })).json();
  assert.deepEqual([second.items.map((e: { seq: number }) => e.seq), second.next], [[4, 5, 6], null]);
});

test('out-of-range or unknown query parameters get 400 validation-failed naming the parameter', async () => {
  const cases = [
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['limit=ten', 'limit'],
    ['after=0x10', 'after'],
    ['limit=%2010', 'limit'],
    ['after=', 'after'],
    ['after=-1', 'after'],
    ['after=1.5', 'after'],
    ['since=3', 'since'],
  ];
  for (const [query, parameter] of cases) {
    const res = await t.app.inject({ url: `/v1/audit?${query}`, headers: t.auth() });
    assert.equal(res.statusCode, 400, query);
    assert.equal(res.json().type, 'urn:bastion:problem:validation-failed', query);
    assert.deepEqual(
      res.json().errors.map((e: { parameter: string }) => e.parameter),
      [parameter],
      query,
    );
  }
});

test('without a token the log is 401', async () => {
  const res = await t.app.inject({ url: '/v1/audit' });
  assert.equal(res.statusCode, 401);
  assert.match(res.headers['www-authenticate'] as string, /^Bearer/);
});
