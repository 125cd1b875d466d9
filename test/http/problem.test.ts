import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { BastionError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { bareApp, buildTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
before(async () => {
  t = await buildTestApp();
});
after(async () => t.close());

test('a body that is not JSON gets 400 bad-request as problem+json', async () => {
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/principals',
    headers: { ...t.auth(), 'content-type': 'application/json' },
    payload: '{"name":',
  });
  assert.equal(res.statusCode, 400);
  assert.match(res.headers['content-type'] as string, /^application\/problem\+json/);
  assert.equal(res.json().type, 'urn:bastion:problem:bad-request');
});

test('a body of another media type gets 415', async () => {
  for (const type of ['text/plain', 'application/xml']) {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/principals',
      headers: { ...t.auth(), 'content-type': type },
      payload: 'name=x',
    });
    assert.equal(res.statusCode, 415, type);
    assert.equal(res.json().type, 'urn:bastion:problem:unsupported-media-type');
  }
});

test('an unknown route gets 404 problem+json', async () => {
  const res = await t.app.inject({ url: '/v2/nothing' });
  assert.equal(res.statusCode, 404);
  assert.equal(res.json().type, 'urn:bastion:problem:not-found');
  assert.equal(res.json().status, 404);
});

test('every response carries the request id', async () => {
  const res = await t.app.inject({ url: '/healthz' });
  assert.match(res.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/);
});

test('an unexpected error is a 500 with only a requestId; the details go to the log under that id', async () => {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
  const { app, close } = await bareApp({ logger: createLogger('info', sink) });
  app.get('/boom', async () => {
    throw new Error('secret internal detail /etc/bastion');
  });
  app.get('/typed', async () => {
    throw new BastionError('SERVICE_UNAVAILABLE', 'queue full', { retryAfterSeconds: 7 });
  });
  const res = await app.inject({ url: '/boom' });
  assert.equal(res.statusCode, 500);
  const problem = res.json();
  assert.equal(problem.type, 'urn:bastion:problem:internal');
  assert.equal(res.body.includes('secret internal detail'), false);
  assert.equal(problem.requestId, res.headers['x-request-id']);
  const logged = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'unexpected error');
  assert.equal(logged.reqId, problem.requestId);
  assert.match(logged.err.message, /secret internal detail/);

  const typed = await app.inject({ url: '/typed' });
  assert.equal(typed.statusCode, 503);
  assert.equal(typed.headers['retry-after'], '7');
  await close();
});

test('bearer tokens never reach the log', async () => {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
  const { app, close } = await bareApp({ logger: createLogger('trace', sink) });
  await app.inject({ url: '/v1/whoami', headers: { authorization: `Bearer ${t.adminToken}` } });
  await app.inject({ method: 'POST', url: '/v1/principals', headers: { authorization: 'Bearer bst_0123' }, payload: { name: 'x' } });
  assert.ok(lines.length > 0);
  const all = lines.join('');
  assert.equal(all.includes(t.adminToken), false);
  assert.equal(all.includes('bst_0123'), false);
  await close();
});
