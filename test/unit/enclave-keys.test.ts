// The enclave key provider (src/enclave/keys.ts) against a fake Gramine /dev/attestation tree: keys are
// stable per purpose and differ between purposes, between enclaves and between the MRENCLAVE and
// MRSIGNER policies; what one enclave sealed, another cannot open; the identity is read from the
// enclave's own report; and a server told to require an enclave refuses the development key.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openBlobStore, readBlob, stageBlob } from '../../src/artifacts/blob-store.js';
import { KeyProviderError, KeyPurpose, openEnclaveKeyProvider, openKeyProvider } from '../../src/enclave/keys.js';
import { fakeAttestationTree } from '../helpers/attestation.js';

const mrenclave = Buffer.alloc(32, 0xab);
const mrsigner = Buffer.alloc(32, 0xcd);

test('inside an enclave the sealing key is the root: stable per purpose, distinct across purposes and policies', () => {
  const tree = fakeAttestationTree({ mrenclave, mrsigner, isvProdId: 7, isvSvn: 3, debug: false });
  const a = openEnclaveKeyProvider({ attestationDir: tree, sealingKey: 'mrenclave' })!;
  const again = openEnclaveKeyProvider({ attestationDir: tree, sealingKey: 'mrenclave' })!;
  const signer = openEnclaveKeyProvider({ attestationDir: tree, sealingKey: 'mrsigner' })!;
  assert.deepEqual(a.keys.deriveKey(KeyPurpose.SEALED_BLOBS), again.keys.deriveKey(KeyPurpose.SEALED_BLOBS));
  assert.equal(a.keys.keyId, again.keys.keyId);
  assert.notDeepEqual(a.keys.deriveKey(KeyPurpose.SEALED_BLOBS), a.keys.deriveKey(KeyPurpose.AUDIT));
  assert.notDeepEqual(a.keys.deriveKey(KeyPurpose.SEALED_BLOBS), signer.keys.deriveKey(KeyPurpose.SEALED_BLOBS));
  assert.deepEqual(a.source, {
    provider: 'enclave',
    sealingKey: 'mrenclave',
    identity: { mrenclave: mrenclave.toString('hex'), mrsigner: mrsigner.toString('hex'), isvProdId: 7, isvSvn: 3, debug: false },
  });
  // The report was asked for with (zero) user data, as Gramine's interface has it.
  assert.deepEqual(fs.readFileSync(path.join(tree, 'user_report_data')), Buffer.alloc(64));
  assert.equal(
    openEnclaveKeyProvider({
      attestationDir: fakeAttestationTree({ mrenclave, mrsigner, isvProdId: 0, isvSvn: 0, debug: true }),
      sealingKey: 'mrenclave',
    })!.source.provider,
    'enclave',
  );
});

test('what one enclave sealed, another enclave cannot open', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-sealed-'));
  const mine = openEnclaveKeyProvider({
    attestationDir: fakeAttestationTree({ mrenclave, mrsigner, isvProdId: 1, isvSvn: 1, debug: false }),
    sealingKey: 'mrenclave',
  })!;
  const other = openEnclaveKeyProvider({
    attestationDir: fakeAttestationTree({ mrenclave, mrsigner, isvProdId: 1, isvSvn: 1, debug: false }),
    sealingKey: 'mrenclave',
  })!;
  const identity = { artifactId: '01a24b50-0000-7000-8000-000000000001', kind: 'model' as const };
  const staged = await stageBlob(
    openBlobStore(dataDir, mine.keys),
    identity,
    (async function* () {
      yield Buffer.from('weights of a model');
    })(),
  );
  await staged.commit();
  assert.equal((await readBlob(openBlobStore(dataDir, mine.keys), identity)).toString(), 'weights of a model');
  await assert.rejects(readBlob(openBlobStore(dataDir, other.keys), identity));
});

test('outside an enclave: the development key, unless an enclave is required; a wrong-sized sealing key is refused', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-dev-'));
  const nowhere = path.join(dataDir, 'no-attestation');
  assert.deepEqual(openKeyProvider(dataDir, { attestationDir: nowhere, sealingKey: 'mrenclave', requireEnclave: false }).source, {
    provider: 'development',
  });
  assert.throws(
    () => openKeyProvider(dataDir, { attestationDir: nowhere, sealingKey: 'mrenclave', requireEnclave: true }),
    (err: unknown) => err instanceof KeyProviderError && err.message.includes(path.join(nowhere, 'keys', '_sgx_mrenclave')),
  );
  const tree = fakeAttestationTree({ mrenclave, mrsigner, isvProdId: 0, isvSvn: 0, debug: false });
  fs.writeFileSync(path.join(tree, 'keys', '_sgx_mrenclave'), randomBytes(32));
  assert.throws(
    () => openKeyProvider(dataDir, { attestationDir: tree, sealingKey: 'mrenclave', requireEnclave: true }),
    /not a 16-byte SGX sealing key/,
  );
});
