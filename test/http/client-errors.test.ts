// Requests Node's HTTP parser refuses before a request exists (src/http/plugins/problem.ts
// answerClientError), against a real listening app over HTTPS and plain HTTP: headers over the 16 KiB
// limit get 431, an unparseable request 400, both as problem+json that the client can read in full
// even while it is still sending (the connection is drained, not reset).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { createSelfSigned } from '../../src/enclave/tls.js';
import { openAuditLog } from '../../src/governance/audit.js';
import { openStore, type Store } from '../../src/store/db.js';
import { idlePool, unusedArtifacts } from '../helpers/app.js';

const run = promisify(execFile);

interface Listening {
  app: FastifyInstance;
  store: Store;
  port: number;
}

let material: { cert: string; key: string };
let dir: string;
const servers: Record<'https' | 'http', Listening> = {} as never;

before(async () => {
  material = await createSelfSigned(['127.0.0.1']);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-client-errors-'));
  fs.writeFileSync(path.join(dir, 'cert.pem'), material.cert);
  for (const scheme of ['https', 'http'] as const) {
    const store = openStore(':memory:');
    const audit = openAuditLog(store, Buffer.alloc(32), { highWaterFile: null });
    const tlsOption = scheme === 'https' ? { https: material } : {};
    const app = await buildApp({ store, audit, pool: idlePool, ...unusedArtifacts, isAddonLoaded: () => true, ...tlsOption });
    await app.listen({ host: '127.0.0.1', port: 0 });
    servers[scheme] = { app, store, port: (app.server.address() as net.AddressInfo).port };
  }
});
after(async () => {
  for (const { app, store } of Object.values(servers)) {
    await app.close();
    store.close();
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Sends `request` on a fresh connection; everything the server answered, and any error writing it. */
async function rawExchange(scheme: 'https' | 'http', request: string): Promise<{ response: string; writeError: string | null }> {
  const { port } = servers[scheme];
  const socket = scheme === 'https' ? tls.connect({ port, host: '127.0.0.1', ca: material.cert }) : net.connect(port, '127.0.0.1');
  let response = '';
  let writeError: string | null = null;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (response += chunk));
  socket.on('error', (err: NodeJS.ErrnoException) => (writeError ??= err.code ?? err.message));
  socket.write(request, (err) => {
    if (err) writeError ??= (err as NodeJS.ErrnoException).code ?? err.message;
  });
  await new Promise((resolve) => socket.on('close', resolve));
  return { response, writeError };
}

function parse(response: string): { status: number; headers: Record<string, string>; body: Record<string, unknown> } {
  const split = response.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = response.slice(0, split).split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body: JSON.parse(response.slice(split + 4)) };
}

for (const scheme of ['https', 'http'] as const) {
  describe(`${scheme}: refused before routing`, () => {
    test('an 8 MB Authorization header gets 431 problem+json, and the client can send all of it first', async () => {
      const request = `GET /v1/whoami HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${'a'.repeat(8 * 1024 * 1024)}\r\n\r\n`;
      const { response, writeError } = await rawExchange(scheme, request);
      assert.equal(writeError, null, 'the server read the whole request rather than resetting the connection');
      const answer = parse(response);
      assert.equal(answer.status, 431);
      assert.equal(answer.headers['content-type'], 'application/problem+json');
      assert.equal(answer.headers.connection, 'close');
      assert.equal(answer.body.type, 'urn:bastion:problem:headers-too-large');
      assert.equal(answer.body.status, 431);
      assert.equal(Number(answer.headers['content-length']), Buffer.byteLength(JSON.stringify(answer.body)));
    });

    test('a request line that is not HTTP gets 400 problem+json', async () => {
      const answer = parse((await rawExchange(scheme, 'HELLO THERE\r\n\r\n')).response);
      assert.equal(answer.status, 400);
      assert.equal(answer.body.type, 'urn:bastion:problem:bad-request');
    });

    test('curl with a 100 KB Authorization header reads 431 every time (it used to fail with a broken pipe)', async () => {
      const headerFile = path.join(dir, 'header');
      fs.writeFileSync(headerFile, `Authorization: Bearer ${'a'.repeat(100_000)}\n`);
      for (let i = 0; i < 8; i++) {
        const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', path.join(dir, 'cert.pem'), '-H', `@${headerFile}`];
        const { stdout } = await run('curl', [...args, `${scheme}://127.0.0.1:${servers[scheme].port}/v1/whoami`]);
        assert.equal(stdout, '431', `attempt ${i + 1}`);
      }
    });
  });
}
