// Connection settings and their messages: a flag wins over its variable, the data folder supplies the
// admin token and the development certificate, and every failure — no token, a CA file that is not
// there, a certificate the CA does not verify, nobody listening, a refused token — names what was
// tried and what to do, and never the token.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ApiError, createBastionClient, unwrap } from '../../src/client/client.js';
import { ConnectionError, resolveConnection } from '../../src/client/connection.js';
import { uploadModel } from '../../src/client/transfer.js';
import { createSelfSigned } from '../../src/enclave/tls.js';
import { buildTestApp } from '../helpers/app.js';

const folders: string[] = [];
after(() => {
  for (const dir of folders) fs.rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-connection-')));
  folders.push(dir);
  return dir;
};

/** A data folder as the server leaves it: admin-token and tls/server-cert.pem. */
function dataFolder(dir: string, files: { token?: string; cert?: string }): string {
  fs.mkdirSync(path.join(dir, 'tls'), { recursive: true });
  if (files.token !== undefined) fs.writeFileSync(path.join(dir, 'admin-token'), `${files.token}\n`);
  if (files.cert !== undefined) fs.writeFileSync(path.join(dir, 'tls', 'server-cert.pem'), files.cert);
  return dir;
}

const errorOf = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
};

test('a flag wins over its variable, and each value remembers its source', () => {
  const cwd = tempDir();
  const env = {
    BASTION_URL: 'https://env.example:1',
    BASTION_TOKEN: 'from-env',
    BASTION_CA: path.join(cwd, 'env.pem'),
    BASTION_DATA_DIR: path.join(cwd, 'env-dir'),
  };
  const fromEnv = resolveConnection({}, env, cwd);
  assert.deepEqual(
    [
      fromEnv.url,
      fromEnv.urlSource,
      fromEnv.token,
      fromEnv.tokenSource,
      fromEnv.caPath,
      fromEnv.caSource,
      fromEnv.dataDir,
      fromEnv.dataDirSource,
    ],
    [
      'https://env.example:1',
      'BASTION_URL',
      'from-env',
      'BASTION_TOKEN',
      env.BASTION_CA,
      'BASTION_CA',
      env.BASTION_DATA_DIR,
      'BASTION_DATA_DIR',
    ],
  );
  const fromFlags = resolveConnection(
    { url: 'http://flag.example:2/', token: 'from-flag', ca: 'flag.pem', dataDir: 'flag-dir', insecure: true },
    env,
    cwd,
  );
  assert.equal(fromFlags.url, 'http://flag.example:2');
  assert.equal(fromFlags.urlSource, '--url');
  assert.equal(fromFlags.tokenSource, '--token');
  assert.equal(fromFlags.caSource, '--ca');
  assert.equal(fromFlags.dataDirSource, '--data-dir');
  assert.equal(fromFlags.insecure, true);
});

test('without flags or variables: the server default URL (from its own BASTION_HOST and BASTION_PORT), and ./var for the token and certificate', () => {
  const cwd = tempDir();
  dataFolder(path.join(cwd, 'var'), { token: 'admin-secret', cert: 'PEM' });
  const c = resolveConnection({}, {}, cwd);
  assert.equal(c.url, 'https://127.0.0.1:8443');
  assert.equal(c.urlSource, 'default');
  assert.equal(c.token, 'admin-secret');
  assert.equal(c.tokenSource, `.${path.sep}var${path.sep}admin-token`);
  assert.equal(c.caPath, path.join(cwd, 'var', 'tls', 'server-cert.pem'));
  assert.equal(c.caSource, `--data-dir default .${path.sep}var`);
  const server = resolveConnection({}, { BASTION_HOST: '::1', BASTION_PORT: '9443', BASTION_INSECURE_HTTP: 'true' }, cwd);
  assert.equal(server.url, 'http://[::1]:9443');
  assert.match(server.urlSource, /BASTION_HOST, BASTION_PORT, BASTION_INSECURE_HTTP/);
});

test('--insecure has no variable: BASTION_INSECURE does not turn verification off', () => {
  assert.equal(resolveConnection({}, { BASTION_INSECURE: '1' }, tempDir()).insecure, false);
});

test('malformed values are refused naming the flag or variable', () => {
  assert.match(errorOf(() => resolveConnection({ url: 'localhost:8443' }, {})).message, /for --url but received 'localhost:8443'/);
  assert.match(errorOf(() => resolveConnection({}, { BASTION_URL: 'ftp://x' })).message, /https:\/\/ \(or http:\/\/\) URL for BASTION_URL/);
  assert.match(errorOf(() => resolveConnection({ token: '  ' }, {})).message, /non-empty value for --token/);
});

test('no token: the message lists every place looked at, in order, and what to do', () => {
  const cwd = tempDir();
  const err = errorOf(() => createBastionClient(resolveConnection({}, {}, cwd)));
  assert.ok(err instanceof ConnectionError);
  assert.equal(
    err.message,
    `no token: looked for --token, BASTION_TOKEN, .${path.sep}var${path.sep}admin-token; pass --token <token>, set BASTION_TOKEN, ` +
      'or --data-dir <dir> of a server whose admin token you may use',
  );
  const elsewhere = errorOf(() => createBastionClient(resolveConnection({ dataDir: '/nonexistent/bastion' }, {}, cwd)));
  assert.match(elsewhere.message, /^no token: looked for --token, BASTION_TOKEN, \/nonexistent\/bastion\/admin-token;/);
});

test('a CA file that is not there: the message names the file and where it was chosen', () => {
  const cwd = tempDir();
  const missing = path.join(cwd, 'nope.pem');
  const fromFlag = errorOf(() => createBastionClient(resolveConnection({ token: 't', ca: missing }, {}, cwd)));
  assert.ok(fromFlag instanceof ConnectionError);
  assert.equal(fromFlag.message, `could not read CA file ${missing} (from --ca): no such file; pass --ca <file> or --data-dir <dir>`);
  const fromEnv = errorOf(() => createBastionClient(resolveConnection({ token: 't' }, { BASTION_CA: missing }, cwd)));
  assert.match(fromEnv.message, /\(from BASTION_CA\): no such file/);
});

async function httpsServer(cert: { cert: string; key: string }): Promise<{ url: string; close(): Promise<void> }> {
  const server = https.createServer({ cert: cert.cert, key: cert.key }, (_req, res) => res.end('{}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `https://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test("a certificate the CA file does not verify: the message names the CA file and the data folder's source", async () => {
  const [served, other] = await Promise.all([createSelfSigned(['127.0.0.1']), createSelfSigned(['127.0.0.1'])]);
  const server = await httpsServer(served);
  try {
    const dir = dataFolder(tempDir(), { token: 'secret-token', cert: other.cert });
    const connection = resolveConnection({ url: server.url, dataDir: dir }, {});
    await assert.rejects(createBastionClient(connection).GET('/v1/whoami'), (err: Error) => {
      assert.ok(err instanceof ConnectionError);
      const cert = path.join(dir, 'tls', 'server-cert.pem');
      assert.match(
        err.message,
        new RegExp(
          `^could not verify the server's certificate using CA file ${cert} \\(from --data-dir\\): [A-Z_]+; pass --ca <file> or ` +
            `--data-dir <dir>$`,
        ),
      );
      assert.doesNotMatch(err.message, /secret-token/);
      return true;
    });
    // Without any CA file: the system's roots, and the message says which file would have been used.
    const bare = resolveConnection({ url: server.url, token: 't', dataDir: tempDir() }, {});
    await assert.rejects(
      createBastionClient(bare).GET('/v1/whoami'),
      /using the system's trusted roots \(no --ca, BASTION_CA, or .*server-cert\.pem from --data-dir\)/,
    );
    // The right CA: the request goes through.
    const good = resolveConnection({ url: server.url, token: 't', dataDir: dataFolder(tempDir(), { cert: served.cert }) }, {});
    assert.equal((await createBastionClient(good).GET('/v1/whoami')).response.status, 200);
  } finally {
    await server.close();
  }
});

test('nobody listening: the message names the URL and its source, and what to do', async () => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const connection = resolveConnection({ token: 't' }, { BASTION_URL: `https://127.0.0.1:${port}` }, tempDir());
  await assert.rejects(
    createBastionClient(connection).GET('/v1/whoami'),
    new ConnectionError(
      `could not connect to https://127.0.0.1:${port} (from BASTION_URL): connection refused; is the server running? pass --url ` +
        `<url> or set BASTION_URL`,
    ),
  );
});

test('a refused token: 401 as ApiError naming where the token came from, never the token', async () => {
  const t = await buildTestApp();
  try {
    const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const token = 'bst_not-a-real-token-0123456789';
    for (const [flags, env, source] of [
      [{ url, token }, {}, '--token'],
      [{ url }, { BASTION_TOKEN: token }, 'BASTION_TOKEN'],
    ] as const) {
      const client = createBastionClient(resolveConnection(flags, env, tempDir()));
      await assert.rejects(client.GET('/v1/whoami'), (err: Error) => {
        assert.ok(err instanceof ApiError);
        assert.equal(err.status, 401);
        assert.equal(err.hint, `the server refused the token from ${source}; check it, or pass another with --token or BASTION_TOKEN`);
        assert.ok(err.message.includes(`the server refused the token from ${source}`));
        assert.ok(!err.message.includes(token));
        return true;
      });
      // A streamed upload (not through fetch) says the same.
      const file = path.join(tempDir(), 'model.pt');
      fs.writeFileSync(file, Buffer.alloc(64 * 1024));
      await assert.rejects(uploadModel(client, file, { name: 'm' }), (err: Error) => {
        assert.ok(err instanceof ApiError);
        assert.equal(err.status, 401);
        assert.equal(err.hint, `the server refused the token from ${source}; check it, or pass another with --token or BASTION_TOKEN`);
        return true;
      });
    }
    const admin = createBastionClient(resolveConnection({ url, token: t.adminToken }, {}, tempDir()));
    assert.equal(unwrap(await admin.GET('/v1/whoami')).role, 'admin');
  } finally {
    await t.close();
  }
});
