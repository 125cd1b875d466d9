// The server in an enclave (a fake /dev/attestation tree for its keys, the fake quoting enclave for quotes,
// both in-process through startServer) serves an RA-TLS certificate made at start: its key never touches
// disk or the log, the certificate verifies with the fake root, and /v1/attestation binds that same key.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { attestationReportData } from '../../src/enclave/attestation.js';
import { verifyQuote } from '../../src/enclave/quote-verify.js';
import { verifyRaTlsCertificate } from '../../src/enclave/ra-tls.js';
import { createLogger } from '../../src/logger.js';
import { startInFakeEnclave } from '../helpers/enclave-server.js';
import { createFakeQuotingEnclave } from '../helpers/fake-quote.js';

/** GET over a TLS connection that trusts nothing, returning the body and the certificate the server presented. */
function getPresenting(url: string): Promise<{ status: number; body: string; presented: X509Certificate }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { rejectUnauthorized: false, agent: false }, (res) => {
        const presented = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate()!;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), presented }));
      })
      .on('error', reject);
  });
}

test('in an enclave without an operator certificate the server serves RA-TLS: key in memory, quotes bound, route binds it', async () => {
  const enclave = await createFakeQuotingEnclave();
  const logLines: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  const { dataDir, server } = await startInFakeEnclave(enclave, createLogger('info', sink));
  try {
    const nonce = Buffer.from('5eed'.repeat(8), 'hex');
    const res = await getPresenting(`${server.url}/v1/attestation?nonce=${nonce.toString('hex')}`);
    assert.equal(res.status, 200, res.body);
    const now = new Date();
    const trust = { at: now, trustAnchor: enclave.rootCa };
    const raTls = verifyRaTlsCertificate(res.presented.raw, { ...trust, expected: { mrenclave: '11'.repeat(32) } });
    assert.ok(raTls.ok, raTls.ok ? '' : `${raTls.failedCheck}: ${raTls.reason}`);

    const body = JSON.parse(res.body) as { quote: string; reportData: string; certificate: string };
    assert.deepEqual(new X509Certificate(body.certificate).raw, res.presented.raw, 'the route names the certificate the server presents');
    assert.equal(body.reportData, attestationReportData(res.presented, nonce).toString('hex'));
    const quote = verifyQuote(Buffer.from(body.quote, 'base64'), { ...trust, expected: { reportData: body.reportData } });
    assert.ok(quote.ok, quote.ok ? '' : `${quote.failedCheck}: ${quote.reason}`);

    // The key exists only in memory: no TLS folder, no PEM key anywhere in the data folder or the log.
    assert.equal(fs.existsSync(path.join(dataDir, 'tls')), false);
    const files = fs.readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
    for (const file of files) {
      assert.ok(!fs.readFileSync(path.join(file.parentPath, file.name)).includes('PRIVATE KEY'), file.name);
    }
    const log = logLines.join('\n');
    assert.doesNotMatch(log, /PRIVATE KEY/);
    const spki = res.presented.publicKey.export({ type: 'spki', format: 'der' });
    const entries = logLines.map((l) => JSON.parse(l) as { msg: string; spkiSha256?: string });
    const logged = entries.find((l) => l.msg.startsWith('TLS certificate: RA-TLS'));
    assert.equal(logged?.spkiSha256, createHash('sha256').update(spki).digest('hex'), 'the log names the key by its SPKI SHA-256');
  } finally {
    await server.close();
  }
});

test('each start makes a new RA-TLS key: two servers in the same enclave present different keys', async () => {
  const enclave = await createFakeQuotingEnclave();
  const keys: string[] = [];
  for (let i = 0; i < 2; i++) {
    const { server } = await startInFakeEnclave(enclave, createLogger('silent'));
    try {
      const res = await getPresenting(`${server.url}/readyz`);
      keys.push(res.presented.fingerprint256);
    } finally {
      await server.close();
    }
  }
  assert.notEqual(keys[0], keys[1]);
});
