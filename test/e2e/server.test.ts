import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot, type ServerProcess, startServerProcess } from '../helpers/server.js';

const run = promisify(execFile);

async function curl(args: string[]): Promise<{ status: number; contentType: string; body: string }> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '30', '-o', '-', '-w', '\n%{http_code} %{content_type}', ...args]);
  const cut = stdout.lastIndexOf('\n');
  const [status, contentType = ''] = stdout.slice(cut + 1).split(' ');
  return { status: Number(status), contentType, body: stdout.slice(0, cut) };
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(repoRoot, 'bin', 'bastion.mjs'), ...args], { cwd: repoRoot });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('the server as `npm start` runs it', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-'));
  let server: ServerProcess;
  let adminToken: string;
  const certFile = path.join(dataDir, 'tls', 'server-cert.pem');

  before(async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.start, 'node dist/main.js', 'this test runs what npm start runs');
    server = await startServerProcess(['--port', '0', '--pool-size', '1'], { BASTION_DATA_DIR: dataDir });
    adminToken = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  });
  after(async () => {
    await server?.stop();
  });

  test('serves HTTPS by default with a self-signed certificate kept in the data folder', async () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const insecure = await curl(['-k', `${server.url}/healthz`]);
    assert.equal(insecure.status, 200);
    assert.deepEqual(JSON.parse(insecure.body), { status: 'ok' });
    const verified = await curl(['--cacert', certFile, `${server.url}/readyz`]);
    assert.deepEqual(JSON.parse(verified.body), {
      status: 'ready',
      checks: { addon: true, store: true, pool: true },
      keys: { provider: 'development' },
    });
    const untrusted = await run('curl', ['-sS', `${server.url}/healthz`]).then(
      () => 'accepted',
      () => 'refused',
    );
    assert.equal(untrusted, 'refused', 'the certificate is self-signed, so curl without -k or --cacert refuses it');
  });

  test('a /v1 request without a token gets 401 problem+json', async () => {
    const res = await curl(['--cacert', certFile, `${server.url}/v1/whoami`]);
    assert.equal(res.status, 401);
    assert.match(res.contentType, /^application\/problem\+json/);
    assert.equal(JSON.parse(res.body).type, 'urn:bastion:problem:unauthorized');
  });

  test('the first admin token is in a 0600 file named in the log, and never in the log itself', async () => {
    const file = path.join(dataDir, 'admin-token');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.ok(server.logs.some((l) => l.file === file));
    const res = await curl(['--cacert', certFile, '-H', `Authorization: Bearer ${adminToken}`, `${server.url}/v1/whoami`]);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).role, 'admin');
    assert.equal(server.rawLog.join('\n').includes(adminToken), false);
  });

  test('the log says which libtorch and BLAS the workers use', () => {
    const entry = server.logs.find((l) => l.msg === 'libtorch addon loaded in the worker pool');
    assert.ok(entry);
    assert.match(String(entry.torch), /^1\.13/);
    assert.match(String(entry.blas), /OpenBLAS/i);
  });

  test('the bastion CLI creates, lists and revokes principals; a revoked token stops working', async () => {
    const common = ['--url', server.url, '--data-dir', dataDir, '--json'];
    const created = await cli(['principals', 'create', '--name', 'hospital-a', ...common]);
    assert.equal(created.code, 0, created.stderr);
    const principal = JSON.parse(created.stdout) as { id: string; token: string; role: string };
    assert.equal(principal.role, 'member');

    const listed = await cli(['principals', 'list', ...common]);
    assert.ok((JSON.parse(listed.stdout) as { items: { id: string }[] }).items.some((p) => p.id === principal.id));

    const asMember = await cli(['whoami', '--url', server.url, '--data-dir', dataDir, '--token', principal.token, '--json']);
    assert.equal(JSON.parse(asMember.stdout).name, 'hospital-a');

    const forbidden = await cli(['principals', 'list', '--url', server.url, '--data-dir', dataDir, '--token', principal.token]);
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /may not/);

    const revoked = await cli(['principals', 'revoke', principal.id, ...common]);
    assert.deepEqual(JSON.parse(revoked.stdout), { id: principal.id, revoked: true });
    const after = await curl(['--cacert', certFile, '-H', `Authorization: Bearer ${principal.token}`, `${server.url}/v1/whoami`]);
    assert.equal(after.status, 401);
  });

  test('SIGTERM shuts down gracefully; a restart keeps the admin token and the certificate', async () => {
    const fingerprint = server.logs.find((l) => l.msg === 'TLS certificate')?.fingerprint256;
    assert.equal(await server.stop(), 0);
    assert.ok(server.logs.some((l) => l.msg === 'stopped'));
    server = await startServerProcess(['--port', '0', '--pool-size', '1'], { BASTION_DATA_DIR: dataDir });
    const tls = server.logs.find((l) => l.msg === 'TLS certificate');
    assert.equal(tls?.generated, false);
    assert.equal(tls?.fingerprint256, fingerprint);
    assert.equal(fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim(), adminToken);
    assert.equal(
      server.logs.some((l) => String(l.msg).startsWith('first start')),
      false,
    );
    const res = await curl(['--cacert', certFile, '-H', `Authorization: Bearer ${adminToken}`, `${server.url}/v1/whoami`]);
    assert.equal(res.status, 200);
  });
});

describe('metrics', () => {
  test('/metrics needs the admin token; --metrics-port also serves it without one, on plain HTTP', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-metrics-'));
    const server = await startServerProcess(['--port', '0', '--pool-size', '1', '--metrics-port', '0', '--data-dir', dataDir]);
    try {
      const certFile = path.join(dataDir, 'tls', 'server-cert.pem');
      const adminToken = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
      assert.equal((await curl(['--cacert', certFile, `${server.url}/metrics`])).status, 401);
      const scraped = await curl(['--cacert', certFile, '-H', `Authorization: Bearer ${adminToken}`, `${server.url}/metrics`]);
      assert.equal(scraped.status, 200);
      assert.match(scraped.body, /^bastion_pool_threads 1$/m);
      const listener = server.logs.find((l) => /BASTION_METRICS_PORT/.test(String(l.msg)));
      assert.equal(listener?.level, 40, 'the tokenless listener is a warning in the log');
      assert.match(String(listener?.url), /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const open = await curl([String(listener!.url)]);
      assert.equal(open.status, 200);
      assert.match(open.contentType, /^text\/plain/);
      assert.match(open.body, /^# TYPE bastion_trainings_queued gauge$/m);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});

describe('plain HTTP only on request', () => {
  test('--insecure-http serves HTTP and says so in the log', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-http-'));
    const server = await startServerProcess(['--port', '0', '--pool-size', '1', '--insecure-http', '--data-dir', dataDir]);
    try {
      assert.match(server.url, /^http:\/\//);
      assert.equal((await curl([`${server.url}/healthz`])).status, 200);
      assert.ok(server.logs.some((l) => l.level === 40 && /plain HTTP/.test(String(l.msg))));
      assert.equal(fs.existsSync(path.join(dataDir, 'tls')), false);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  test('a bad setting stops the start with a message naming it', async () => {
    const result = await run(process.execPath, [path.join(repoRoot, 'dist', 'main.js'), '--port', 'many']).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--port/);
  });
});
