// The server's choice of key provider at start (dist/main.js): in an enclave (a fake /dev/attestation
// tree) it seals with the sealing key and /readyz shows the enclave's identity; told to require an
// enclave where there is none, it refuses to start and says why.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { enclaveAdmin, fakeAttestationTree } from '../helpers/attestation.js';
import { startServerProcess } from '../helpers/server.js';

test('in an enclave the server seals with its sealing key and /readyz names the enclave', async () => {
  const tree = fakeAttestationTree({
    mrenclave: Buffer.alloc(32, 0x11),
    mrsigner: Buffer.alloc(32, 0x22),
    isvProdId: 9,
    isvSvn: 2,
    debug: false,
  });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-enclave-'));
  const server = await startServerProcess([
    '--data-dir',
    dataDir,
    '--port',
    '0',
    '--insecure-http',
    '--attestation-dir',
    tree,
    '--require-enclave',
    '--admin-token-verifier',
    enclaveAdmin.verifier,
  ]);
  try {
    const ready = (await (await fetch(`${server.url}/readyz`)).json()) as { keys: unknown };
    assert.deepEqual(ready.keys, {
      provider: 'enclave',
      sealingKey: 'mrenclave',
      identity: { mrenclave: '11'.repeat(32), mrsigner: '22'.repeat(32), isvProdId: 9, isvSvn: 2, debug: false },
    });
    assert.equal(fs.existsSync(path.join(dataDir, 'dev-root.key')), false, 'no development key is made in an enclave');
  } finally {
    await server.stop();
  }
});

test('told to require an enclave where there is none, the server refuses to start and names the missing key', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-no-enclave-'));
  const nowhere = path.join(dataDir, 'attestation');
  await assert.rejects(
    startServerProcess(['--data-dir', dataDir, '--port', '0', '--insecure-http', '--attestation-dir', nowhere], {
      BASTION_REQUIRE_ENCLAVE: '1',
    }),
    (err: Error) => err.message.includes(path.join(nowhere, 'keys', '_sgx_mrenclave')),
  );
});

test('in an enclave the first admin comes from the configured token verifier (no token file); without one the server refuses to start', async () => {
  const identity = { mrenclave: Buffer.alloc(32, 0x11), mrsigner: Buffer.alloc(32, 0x22), isvProdId: 9, isvSvn: 2, debug: false };
  const refusedDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-enclave-'));
  await assert.rejects(
    startServerProcess(['--data-dir', refusedDir, '--port', '0', '--insecure-http', '--attestation-dir', fakeAttestationTree(identity)]),
    (err: Error) => /In an enclave the first admin needs BASTION_ADMIN_TOKEN_VERIFIER/.test(err.message),
  );
  assert.equal(fs.existsSync(path.join(refusedDir, 'admin-token')), false);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-enclave-'));
  const server = await startServerProcess(
    ['--data-dir', dataDir, '--port', '0', '--insecure-http', '--attestation-dir', fakeAttestationTree(identity)],
    {
      BASTION_ADMIN_TOKEN_VERIFIER: enclaveAdmin.verifier,
    },
  );
  try {
    const me = await fetch(`${server.url}/v1/whoami`, { headers: { authorization: `Bearer ${enclaveAdmin.token}` } });
    assert.equal(me.status, 200);
    assert.equal(((await me.json()) as { role: string }).role, 'admin');
    assert.equal(fs.existsSync(path.join(dataDir, 'admin-token')), false, 'no token in the sealed folder');
  } finally {
    await server.stop();
  }
});
