// GET /v1/attestation against the real server (dist/main.js): outside an enclave it is 503 and never a
// made-up quote; in an enclave (a fake /dev/attestation tree handing out a real recorded quote) with the
// operator's certificate, the server writes SHA-256(its TLS key, SPKI DER) ‖ SHA-256(nonce) as the report
// data and returns the quote with the certificate whose key it binds. Without an operator certificate the
// server makes an RA-TLS one (test/e2e/ra-tls-server.test.ts), which a recorded quote cannot bind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createSelfSigned } from '../../src/enclave/tls.js';
import { enclaveAdmin, fakeAttestationTree } from '../helpers/attestation.js';
import { curlFor } from '../helpers/curl.js';
import { repoRoot, startServerProcess } from '../helpers/server.js';
import { testdataPath } from '../helpers/testdata.js';

const nonce = '5eed'.repeat(8);

test('outside an enclave the attestation route is 503 problem+json for everyone, and a bad nonce is 400', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-attest-none-'));
  const server = await startServerProcess(['--data-dir', dataDir, '--port', '0', '--attestation-dir', path.join(dataDir, 'none')]);
  try {
    const curl = curlFor(dataDir);
    const res = await curl([`${server.url}/v1/attestation?nonce=${nonce}`]);
    assert.equal(res.status, 503);
    const problem = JSON.parse(res.body) as { type: string; detail: string };
    assert.equal(problem.type, 'urn:bastion:problem:service-unavailable');
    assert.match(problem.detail, /does not run in an SGX enclave/);
    assert.doesNotMatch(res.body, /quote"/);
    const bad = await curl([`${server.url}/v1/attestation?nonce=xyz`]);
    assert.equal(bad.status, 400);
  } finally {
    await server.stop();
  }
});

test('bastion attest verify --url against a server outside an enclave exits 1 saying the server does not run in one', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-attest-cli-'));
  const server = await startServerProcess(['--data-dir', dataDir, '--port', '0', '--attestation-dir', path.join(dataDir, 'none')]);
  try {
    const cliPath = path.join(repoRoot, 'bin', 'bastion.mjs');
    const bastion = (...args: string[]) => spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8' });
    const cli = bastion('attest', 'verify', '--url', server.url);
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stdout, /server NOT verified: check enclave failed: the server says it does not run in an enclave \(503: /);
    const json = bastion('attest', 'verify', '--url', server.url, '--json');
    assert.equal(json.status, 1);
    assert.equal((JSON.parse(json.stdout) as { failedCheck: string }).failedCheck, 'enclave');
  } finally {
    await server.stop();
  }
});

test("in an enclave with the operator's own certificate, the quote binds that certificate's key and the caller's nonce", async () => {
  const recorded = fs.readFileSync(testdataPath('attestation', 'phala-dcap-qvl.v3.quote'));
  const tree = fakeAttestationTree(
    { mrenclave: Buffer.alloc(32, 1), mrsigner: Buffer.alloc(32, 2), isvProdId: 0, isvSvn: 0, debug: false },
    recorded,
  );
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-attest-'));
  // An operator certificate turns RA-TLS off (the recorded quote could not bind an RA-TLS key anyway).
  const certFile = path.join(dataDir, 'operator-cert.pem');
  const keyFile = path.join(dataDir, 'operator-key.pem');
  const operator = await createSelfSigned([]);
  fs.writeFileSync(certFile, operator.cert);
  fs.writeFileSync(keyFile, operator.key, { mode: 0o600 });
  const tlsFlags = ['--tls-cert', certFile, '--tls-key', keyFile];
  const server = await startServerProcess([
    '--data-dir',
    dataDir,
    '--port',
    '0',
    '--attestation-dir',
    tree,
    '--admin-token-verifier',
    enclaveAdmin.verifier,
    ...tlsFlags,
  ]);
  try {
    const res = await curlFor(dataDir)(['--cacert', certFile, `${server.url}/v1/attestation?nonce=${nonce}`]);
    assert.equal(res.status, 200, res.body);
    const body = JSON.parse(res.body) as {
      quote: string;
      version: number;
      reportData: string;
      certificate: string;
      identity: { mrenclave: string };
    };
    assert.deepEqual(Buffer.from(body.quote, 'base64'), recorded);
    assert.equal(body.version, 3);
    // The certificate returned is the one the server presents, and the report data binds its key and the nonce.
    assert.equal(body.certificate, operator.cert);
    const spki = new X509Certificate(body.certificate).publicKey.export({ type: 'spki', format: 'der' });
    const expected = Buffer.concat([
      createHash('sha256').update(spki).digest(),
      createHash('sha256').update(Buffer.from(nonce, 'hex')).digest(),
    ]);
    assert.equal(body.reportData, expected.toString('hex'));
    assert.deepEqual(
      fs.readFileSync(path.join(tree, 'user_report_data')),
      expected,
      'the enclave was asked for a quote over exactly these bytes',
    );
    // The identity is the quote's own (MRENCLAVE at body offset 64, after the 48-byte header).
    assert.equal(body.identity.mrenclave, recorded.subarray(48 + 64, 48 + 96).toString('hex'));
  } finally {
    await server.stop();
  }
});

test('in an enclave whose quotes lack the report data asked for, the server refuses to start (no unverifiable RA-TLS)', async () => {
  const recorded = fs.readFileSync(testdataPath('attestation', 'phala-dcap-qvl.v3.quote'));
  const tree = fakeAttestationTree(
    { mrenclave: Buffer.alloc(32, 1), mrsigner: Buffer.alloc(32, 2), isvProdId: 0, isvSvn: 0, debug: false },
    recorded,
  );
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-attest-'));
  await assert.rejects(
    startServerProcess(['--data-dir', dataDir, '--port', '0', '--attestation-dir', tree, '--admin-token-verifier', enclaveAdmin.verifier]),
    (err: Error) => /RA-TLS legacy extension does not carry the report data asked for/.test(err.message),
  );
  assert.equal(fs.existsSync(path.join(dataDir, 'tls')), false, 'no certificate of any kind was written');
});
