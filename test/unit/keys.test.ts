import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { KeyProviderError, KeyPurpose, keyProviderFromRootKey, openDevKeyProvider } from '../../src/enclave/keys.js';

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-keys-'));

test('the development provider creates a 32-byte root key file with mode 0600 and reuses it at the next start', () => {
  const dir = tempDir();
  const first = openDevKeyProvider(dir);
  const file = path.join(dir, 'dev-root.key');
  assert.equal(fs.statSync(file).size, 32);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const second = openDevKeyProvider(dir);
  assert.equal(second.keyId, first.keyId);
  assert.deepEqual(second.deriveKey(KeyPurpose.SEALED_BLOBS), first.deriveKey(KeyPurpose.SEALED_BLOBS));
  assert.match(first.description, /development key file/);
  assert.ok(!first.description.includes(fs.readFileSync(file).toString('hex')), 'the description never holds the key');
});

test('derived keys are HKDF-SHA256 of the root key: 32 bytes, distinct from the root key and from other roots', () => {
  const root = Buffer.alloc(32, 7);
  const provider = keyProviderFromRootKey(root, 'test');
  const key = provider.deriveKey(KeyPurpose.SEALED_BLOBS);
  assert.equal(key.length, 32);
  assert.notDeepEqual(key, root);
  const other = keyProviderFromRootKey(Buffer.alloc(32, 8), 'test');
  assert.notDeepEqual(other.deriveKey(KeyPurpose.SEALED_BLOBS), key);
  assert.notEqual(other.keyId, provider.keyId);
  assert.match(provider.keyId, /^[0-9a-f]{16}$/);
});

test('the provider keeps its own copy of the root key: wiping the caller buffer changes nothing', () => {
  const root = Buffer.alloc(32, 9);
  const provider = keyProviderFromRootKey(root, 'test');
  const before = provider.deriveKey(KeyPurpose.SEALED_BLOBS);
  root.fill(0);
  assert.deepEqual(provider.deriveKey(KeyPurpose.SEALED_BLOBS), before);
});

test('refuses a key file others can read, naming the fix', () => {
  const dir = tempDir();
  openDevKeyProvider(dir);
  fs.chmodSync(path.join(dir, 'dev-root.key'), 0o644);
  assert.throws(
    () => openDevKeyProvider(dir),
    (e: unknown) => e instanceof KeyProviderError && /chmod 600/.test(e.message),
  );
});

test('refuses a key file of the wrong size and a root key of the wrong length', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'dev-root.key'), Buffer.alloc(31), { mode: 0o600 });
  assert.throws(() => openDevKeyProvider(dir), /holds 31 bytes/);
  assert.throws(() => keyProviderFromRootKey(Buffer.alloc(20), 'x'), /32 \(or, sealed, 16\) bytes, not 20/);
  // 16 bytes is an SGX sealing key's size (the enclave provider's root); a 16-byte development key file is still refused.
  assert.equal(keyProviderFromRootKey(Buffer.alloc(16, 1), 'sealing key').keyId.length, 16);
  fs.writeFileSync(path.join(dir, 'dev-root.key'), Buffer.alloc(16), { mode: 0o600 });
  assert.throws(() => openDevKeyProvider(dir), /holds 16 bytes/);
});
