import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { dataLayout } from '../../src/config.js';
import { loadTlsMaterial } from '../../src/enclave/tls.js';

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-tls-'));

test('first start generates a self-signed certificate for localhost and the listen host, key 0600', async () => {
  const dataDir = tempDir();
  const tls = await loadTlsMaterial({ dataDir, certPath: null, keyPath: null, hosts: ['bastion.internal', '10.1.2.3'] });
  assert.equal(tls.generated, true);
  assert.equal(tls.certPath, dataLayout(dataDir).tlsCert);
  assert.equal(fs.statSync(dataLayout(dataDir).tlsKey).mode & 0o777, 0o600);
  const cert = new X509Certificate(tls.cert);
  assert.equal(
    cert.subjectAltName,
    'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:bastion.internal, IP Address:10.1.2.3',
  );
  assert.ok(cert.checkPrivateKey(createPrivateKey(tls.key)));
  assert.ok(cert.verify(cert.publicKey), 'self-signed');
  assert.equal(cert.ca, false);
  assert.ok(Date.parse(cert.validTo) > Date.now() + 365 * 24 * 3600 * 1000);
});

test('later starts reuse the certificate in the data folder', async () => {
  const dataDir = tempDir();
  const first = await loadTlsMaterial({ dataDir, certPath: null, keyPath: null });
  const second = await loadTlsMaterial({ dataDir, certPath: null, keyPath: null });
  assert.equal(second.generated, false);
  assert.equal(second.fingerprint256, first.fingerprint256);
  assert.equal(second.key, first.key);
});

test("an operator's certificate and key are used as given, and nothing is generated", async () => {
  const source = await loadTlsMaterial({ dataDir: tempDir(), certPath: null, keyPath: null });
  const dir = tempDir();
  const certPath = path.join(dir, 'c.pem');
  const keyPath = path.join(dir, 'k.pem');
  fs.writeFileSync(certPath, source.cert);
  fs.writeFileSync(keyPath, source.key);
  const dataDir = tempDir();
  const tls = await loadTlsMaterial({ dataDir, certPath, keyPath });
  assert.equal(tls.generated, false);
  assert.equal(tls.fingerprint256, source.fingerprint256);
  assert.equal(fs.existsSync(dataLayout(dataDir).tlsDir), false);
});
