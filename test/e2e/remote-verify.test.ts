// verifyServer (src/enclave/remote-verify.ts) against real servers, in-process: a Bastion server in a fake
// enclave (RA-TLS, the fake quoting enclave's root as trust anchor) verifies; the same server behind a TLS
// proxy that presents its own certificate fails at the TLS key binding; a server that answers with a quote
// made for another nonce fails at the nonce binding. The CLI refuses what it cannot check with exit 2.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { ATTEST_EXIT, attestVerify } from '../../src/cli/attest.js';
import { attestationReportData } from '../../src/enclave/attestation.js';
import { QuoteCheck } from '../../src/enclave/quote-verify.js';
import { RaTlsFormat } from '../../src/enclave/ra-tls.js';
import { RemoteCheck, ServerUnreachable, type ServerVerification, verifyServer } from '../../src/enclave/remote-verify.js';
import { createSelfSigned } from '../../src/enclave/tls.js';
import { createLogger } from '../../src/logger.js';
import type { RunningServer } from '../../src/main.js';
import { startInFakeEnclave } from '../helpers/enclave-server.js';
import { createFakeCollateral } from '../helpers/fake-collateral.js';
import { createFakeQuotingEnclave } from '../helpers/fake-quote.js';

const enclave = await createFakeQuotingEnclave();
const MRENCLAVE = '11'.repeat(32);
let server: RunningServer;

before(async () => {
  ({ server } = await startInFakeEnclave(enclave, createLogger('silent')));
});
after(() => server.close());

const explain = (r: ServerVerification) => (r.ok ? '' : `${r.failedCheck}: ${r.reason}`);
const trusting = () => ({ at: new Date(), trustAnchor: enclave.rootCa });

/** An HTTPS server on a free port; resolves with its https:// URL and a close function. */
async function listen(server: https.Server | tls.Server): Promise<{ url: string; close: () => Promise<void> }> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return { url: `https://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test('a Bastion server in an enclave verifies: fresh quote bound to the presented RA-TLS key and nonce, RA-TLS evidence too', async () => {
  const result = await verifyServer(server.url, { ...trusting(), expected: { mrenclave: MRENCLAVE } });
  assert.ok(result.ok, explain(result));
  assert.equal(result.quote.identity?.mrenclave, MRENCLAVE);
  assert.deepEqual(
    result.certificate.raTls?.map((e) => e.format),
    [RaTlsFormat.GRAMINE_LEGACY, RaTlsFormat.TCG_DICE],
  );
  assert.equal(result.nonce.length, 64, '32 fresh bytes');
  assert.equal(result.quote.reportData.slice(0, 64), result.certificate.spkiSha256);
  const again = await verifyServer(server.url, trusting());
  assert.ok(again.ok);
  assert.notEqual(again.nonce, result.nonce, 'a new nonce each time');
});

test('the same server with a wrong expected MRENCLAVE fails at mrenclave; without the fake root, at pck-chain', async () => {
  const wrong = await verifyServer(server.url, { ...trusting(), expected: { mrenclave: 'ab'.repeat(32) } });
  assert.equal(wrong.ok ? 'ok' : wrong.failedCheck, QuoteCheck.MRENCLAVE);
  const pinned = await verifyServer(server.url, { at: new Date() });
  assert.equal(pinned.ok ? 'ok' : pinned.failedCheck, QuoteCheck.PCK_CHAIN);
});

test("with the platform's collateral the server's quote is checked for TCB status and revocation too", async () => {
  const at = new Date();
  const window = {
    issueDate: new Date(at.getTime() - 86_400_000).toISOString(),
    nextUpdate: new Date(at.getTime() + 30 * 86_400_000).toISOString(),
  };
  const current = await verifyServer(server.url, {
    at,
    trustAnchor: enclave.rootCa,
    collateral: await createFakeCollateral(enclave, window),
  });
  assert.ok(current.ok, explain(current));
  assert.deepEqual([current.collateral?.tcbStatus, current.notChecked], ['UpToDate', []]);
  const revoked = await verifyServer(server.url, {
    at,
    trustAnchor: enclave.rootCa,
    collateral: await createFakeCollateral(enclave, { ...window, revokePck: true }),
  });
  assert.equal(revoked.ok ? 'ok' : revoked.failedCheck, 'revocation');
});

test('a man in the middle (a TLS proxy with its own certificate, forwarding to the real server) fails at tls-key-binding', async () => {
  const own = await createSelfSigned([]);
  const target = new URL(server.url);
  const proxy = tls.createServer({ cert: own.cert, key: own.key }, (client) => {
    const upstream = tls.connect({ host: target.hostname, port: Number(target.port), rejectUnauthorized: false });
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  const { url, close } = await listen(proxy);
  try {
    const result = await verifyServer(url, trusting());
    assert.equal(result.ok ? 'ok' : result.failedCheck, RemoteCheck.TLS_KEY_BINDING, explain(result));
    assert.match((result as { reason: string }).reason, /another TLS key than the one this connection presented/);
  } finally {
    await close();
  }
});

/** An HTTPS server with a plain certificate that answers /v1/attestation with `answer(nonce, certPem)`. */
async function fakeAttestationServer(answer: (nonce: Buffer, certPem: string) => { status: number; body: string; headers?: object }) {
  const own = await createSelfSigned([]);
  const httpsServer = https.createServer({ cert: own.cert, key: own.key }, (req, res) => {
    connections.add(req.socket);
    const nonce = Buffer.from(new URL(req.url!, 'https://x').searchParams.get('nonce') ?? '', 'hex');
    const { status, body, headers } = answer(nonce, own.cert);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body);
  });
  return listen(httpsServer);
}

/** The TLS connections the fake attestation servers have seen. */
const connections = new Set<unknown>();

const quoteAnswer = (reportData: Buffer, certificate: string) => {
  const quote = enclave.quote(reportData);
  return { status: 200, body: JSON.stringify({ quote: quote.toString('base64'), reportData: reportData.toString('hex'), certificate }) };
};

test('a server without RA-TLS whose fresh quote binds its key and the nonce verifies, over one TLS connection', async () => {
  const { url, close } = await fakeAttestationServer((nonce, cert) => quoteAnswer(attestationReportData(cert, nonce), cert));
  try {
    connections.clear();
    const result = await verifyServer(url, trusting());
    assert.ok(result.ok, explain(result));
    assert.equal(result.certificate.raTls, null);
    assert.equal(connections.size, 1, 'the request went over the connection whose certificate was checked');
  } finally {
    await close();
  }
});

test('a replayed attestation (a quote made for another nonce, bound to the right key) fails at nonce-binding', async () => {
  const recordedNonce = Buffer.alloc(32, 7);
  const { url, close } = await fakeAttestationServer((_nonce, cert) => quoteAnswer(attestationReportData(cert, recordedNonce), cert));
  try {
    const result = await verifyServer(url, trusting());
    assert.equal(result.ok ? 'ok' : result.failedCheck, RemoteCheck.NONCE_BINDING, explain(result));
    assert.match((result as { reason: string }).reason, /replayed/);
  } finally {
    await close();
  }
});

test('an answer naming another certificate than the presented one fails at certificate-match', async () => {
  const other = await createSelfSigned([]);
  const { url, close } = await fakeAttestationServer((nonce, cert) => quoteAnswer(attestationReportData(cert, nonce), other.cert));
  try {
    const result = await verifyServer(url, trusting());
    assert.equal(result.ok ? 'ok' : result.failedCheck, RemoteCheck.CERTIFICATE_MATCH, explain(result));
  } finally {
    await close();
  }
});

test('hostile answers: 503 is no enclave (failed), 503 + Retry-After busy (unchecked), garbage and 500 fail at response', async () => {
  const cases: Array<[{ status: number; body: string; headers?: object }, string]> = [
    [{ status: 503, body: JSON.stringify({ detail: 'This server does not run in an SGX enclave' }) }, RemoteCheck.ENCLAVE],
    [{ status: 200, body: 'not json' }, RemoteCheck.RESPONSE],
    [{ status: 200, body: JSON.stringify({ quote: 1 }) }, RemoteCheck.RESPONSE],
    [{ status: 500, body: '{}' }, RemoteCheck.RESPONSE],
    [{ status: 200, body: JSON.stringify({ quote: 'AAAA', certificate: 'x' }) }, QuoteCheck.STRUCTURE],
  ];
  for (const [answer, check] of cases) {
    const { url, close } = await fakeAttestationServer(() => answer);
    try {
      const result = await verifyServer(url, trusting());
      assert.equal(result.ok ? 'ok' : result.failedCheck, check, `${answer.status} ${answer.body}`);
      if (check === RemoteCheck.ENCLAVE) assert.match(explain(result), /the server says it does not run in an enclave \(503: This server/);
    } finally {
      await close();
    }
  }
  const busy = await fakeAttestationServer(() => ({ status: 503, body: '{}', headers: { 'retry-after': '1' } }));
  try {
    await assert.rejects(verifyServer(busy.url, trusting()), (err: Error) => err instanceof ServerUnreachable && /busy/.test(err.message));
  } finally {
    await busy.close();
  }
});

test('nothing to check: a closed port, a plain-HTTP URL and a non-URL are unchecked (ServerUnreachable or TypeError)', async () => {
  const closed = net.createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const { port } = closed.address() as net.AddressInfo;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  await assert.rejects(verifyServer(`https://127.0.0.1:${port}`, trusting()), ServerUnreachable);
  await assert.rejects(verifyServer('http://127.0.0.1:1', trusting()), /Expected an https:\/\/ URL/);
  await assert.rejects(verifyServer('not a url', trusting()), TypeError);
});

test('the CLI: --url against the enclave server without its root fails (exit 1, the pinned root); bad usage exits 2', async () => {
  // The CLI has no trust-anchor option: the fake enclave's quotes are not Intel's.
  const run = await attestVerify({ url: server.url, allowDebug: true }, new Date());
  assert.equal(run.exitCode, ATTEST_EXIT.failed);
  assert.match(run.output, /server NOT verified: check pck-chain failed/);
  const both = await attestVerify({ url: server.url, quote: '/x' }, new Date());
  assert.equal(both.exitCode, ATTEST_EXIT.unchecked);
  assert.match(both.output, /exactly one of --quote/);
  assert.equal((await attestVerify({}, new Date())).exitCode, ATTEST_EXIT.unchecked);
  assert.equal((await attestVerify({ url: server.url, reportData: '00'.repeat(64) }, new Date())).exitCode, ATTEST_EXIT.unchecked);
  assert.equal((await attestVerify({ url: 'http://127.0.0.1:1' }, new Date())).exitCode, ATTEST_EXIT.unchecked);
});
