// What the request log shows of a URL (src/logger.ts): the path, and of the query only plain
// parameter names — never a value, so a token sent as ?access_token=… does not reach the log.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { openAuditLog } from '../../src/governance/audit.js';
import { createLogger, redactQuery } from '../../src/logger.js';
import { openStore, type Store } from '../../src/store/db.js';
import { idlePool, unusedArtifacts } from '../helpers/app.js';

const lines: string[] = [];
let store: Store;
let app: FastifyInstance;
before(async () => {
  const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
  store = openStore(':memory:');
  const audit = openAuditLog(store, Buffer.alloc(32), { highWaterFile: null });
  app = await buildApp({ store, audit, pool: idlePool, ...unusedArtifacts, isAddonLoaded: () => true, logger: createLogger('info', sink) });
});
after(async () => {
  await app.close();
  store.close();
});

const logged = () => lines.map((line) => JSON.parse(line) as { msg: string; req?: { url: string; method: string } });

test('the request log keeps the path and plain parameter names, and replaces every query value', async () => {
  const secret = 'bst_SECRETSECRETSECRETSECRETSECRET0123456789';
  const urls = [
    `/v1/whoami?access_token=${secret}`,
    `/healthz?${secret}`,
    `/v1/audit?after=3&limit=10&token=${encodeURIComponent(secret)}`,
    `/nowhere?${secret}=1&&x=`,
  ];
  for (const url of urls) await app.inject({ url });
  assert.equal(lines.join('').includes('SECRETSECRET'), false, 'no query value reaches the log');
  const incoming = logged()
    .filter((l) => l.msg === 'incoming request')
    .map((l) => l.req!.url);
  assert.deepEqual(incoming, [
    '/v1/whoami?access_token=[redacted]',
    '/healthz?[redacted]',
    '/v1/audit?after=[redacted]&limit=[redacted]&token=[redacted]',
    '/nowhere?[redacted]&x=[redacted]',
  ]);
  assert.equal(logged().find((l) => l.msg === 'incoming request')!.req!.method, 'GET');
});

test('redactQuery leaves a URL without a query as it is', () => {
  assert.equal(redactQuery('/v1/models/0192'), '/v1/models/0192');
  assert.equal(redactQuery('/v1/models?'), '/v1/models?');
  assert.equal(redactQuery('/a?b'), '/a?[redacted]');
});
