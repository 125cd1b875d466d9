// The server's choice of key provider at start (dist/main.js): in an enclave (a fake /dev/attestation
// tree) it seals with the sealing key and /readyz shows the enclave's identity; told to require an
// enclave where there is none, it refuses to start and says why.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fakeAttestationTree } from '../helpers/attestation.js';
import { startServerProcess } from '../helpers/server.js';

test('in an enclave the server seals with its sealing key and /readyz names the enclave', async () => {
  const tree = fakeAttestationTree({ mrenclave: Buffer.alloc(32, 0x11), mrsigner: Buffer.alloc(32, 0x22), isvProdId: 9, isvSvn: 2, debug: false });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-enclave-'));
  const server = await startServerProcess(['--data-dir', dataDir, '--port', '0', '--insecure-http', '--attestation-dir', tree, '--require-enclave']);
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
    startServerProcess(['--data-dir', dataDir, '--port', '0', '--insecure-http', '--attestation-dir', nowhere], { BASTION_REQUIRE_ENCLAVE: '1' }),
    (err: Error) => err.message.includes(path.join(nowhere, 'keys', '_sgx_mrenclave')),
  );
});
