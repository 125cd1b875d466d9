// The OpenAPI document as the running server serves it (/openapi.json, and /docs/json behind the /docs
// page): its servers name the address the client reached, on whatever port the server listens; and the
// /docs page is Bastion's.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { repoRoot } from '../helpers/server.js';

let t: TestApp;
let port: number;

before(async () => {
  t = await buildTestApp();
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  port = (t.app.server.address() as AddressInfo).port;
});
after(() => t.close());

/** GET `path` from the listening server over a plain socket, with the Host header given (Node's default otherwise). */
function get(path: string, host?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, ...(host !== undefined ? { headers: { host } } : {}) }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body }));
    });
    request.on('error', reject);
  });
}

const serversOf = (body: string) => (JSON.parse(body) as { servers: { url: string }[] }).servers;

test('/openapi.json names the port the server really listens on as its server', async () => {
  assert.notEqual(port, 8443);
  const res = await fetch(`http://127.0.0.1:${port}/openapi.json`);
  assert.equal(res.status, 200);
  const document = (await res.json()) as { openapi: string; servers: { url: string }[]; paths: Record<string, unknown> };
  assert.equal(document.openapi, '3.1.0');
  assert.deepEqual(
    document.servers.map((s) => s.url),
    [`http://127.0.0.1:${port}`],
  );
  assert.ok(document.paths['/v1/models'], 'the rest of the document is served as ever');
});

test('the document behind /docs (/docs/json and /docs/yaml) names the same server, so "Try it out" calls it', async () => {
  const json = await get('/docs/json');
  assert.equal(json.status, 200);
  assert.deepEqual(
    serversOf(json.body).map((s) => s.url),
    [`http://127.0.0.1:${port}`],
  );
  const yaml = await get('/docs/yaml');
  assert.equal(yaml.status, 200);
  assert.deepEqual(
    (parse(yaml.body) as { servers: { url: string }[] }).servers.map((s) => s.url),
    [`http://127.0.0.1:${port}`],
  );
});

test('the server is the Host the client used (a name, or a port mapped in front of the server)', async () => {
  assert.deepEqual(
    serversOf((await get('/openapi.json', 'Bastion.Example:9443')).body).map((s) => s.url),
    ['http://bastion.example:9443'],
  );
  assert.deepEqual(
    serversOf((await get('/openapi.json', `localhost:${port}`)).body).map((s) => s.url),
    [`http://localhost:${port}`],
  );
  assert.deepEqual(
    serversOf((await get('/openapi.json', '[::1]:8080')).body).map((s) => s.url),
    ['http://[::1]:8080'],
  );
});

test('a Host header that is not a plain host[:port] is not echoed: the server is the socket address instead', async () => {
  for (const host of ['evil.example/phish?x=', 'user@evil.example', 'evil.example:80 onerror=alert(1)', '"><script>', 'a:b:c']) {
    const res = await get('/openapi.json', host);
    assert.equal(res.status, 200, host);
    assert.deepEqual(
      serversOf(res.body).map((s) => s.url),
      [`http://127.0.0.1:${port}`],
      host,
    );
  }
});

test("/docs is branded Bastion: page title, logo and favicon are Bastion's, none of them Fastify's", async () => {
  const page = await get('/docs');
  assert.equal(page.status, 200);
  assert.match(page.body, /<title>Bastion API<\/title>/);
  assert.doesNotMatch(page.body, /Swagger UI<\/title>|favicon-(16x16|32x32)\.png/, 'the default title and Fastify favicons are gone');
  const favicon = /<link rel="icon" type="image\/svg\+xml" href="([^"]+)"/.exec(page.body);
  assert.ok(favicon, page.body);

  const initializer = await get('/docs/static/swagger-initializer.js');
  assert.equal(initializer.status, 200);
  const logos = [...initializer.body.matchAll(/data:image\/svg\+xml;base64,([A-Za-z0-9+/=]+)/g)].map((m) =>
    Buffer.from(m[1]!, 'base64').toString('utf8'),
  );
  assert.equal(logos.length, 1, initializer.body);
  assert.match(logos[0]!, /^<svg [^>]*aria-label="Bastion API"/);
  assert.match(logos[0]!, />Bastion API<\/text>/);
  const fastifyLogo = fs.readFileSync(path.join(repoRoot, 'node_modules', '@fastify', 'swagger-ui', 'static', 'logo.svg'));
  assert.equal(initializer.body.includes(fastifyLogo.toString('base64').slice(0, 64)), false, 'not the Fastify logo');

  const icon = await get(new URL(favicon[1]!, `http://127.0.0.1:${port}/docs/`).pathname);
  assert.equal(icon.status, 200);
  assert.match(icon.body, /^<svg /);
});
