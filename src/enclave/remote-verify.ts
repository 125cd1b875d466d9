// Attesting a running server from the outside, over one TLS connection: the certificate the socket
// presents is captured (not trusted: RA-TLS certificates are self-signed), a fresh nonce goes to
// GET /v1/attestation over that same socket, and the answer must be a genuine quote binding exactly the
// presented key and that nonce. Invariant: `ok: true` means the peer of this connection holds a key that
// the named enclave vouched for just now, so a client that keeps using a key it has checked this way
// talks to that enclave. A machine in the middle presents its own key and fails; a replayed answer
// carries another nonce and fails.

import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { spkiSha256 } from './attestation.js';
import type { CollateralFile, CollateralVerdict } from './collateral.js';
import { DerError } from './der.js';
import { checkQuoteExpectations, type ParsedQuote, type QuoteCheck, type QuoteExpectations, verifyQuote } from './quote-verify.js';
import { hasRaTlsEvidence, RaTlsCheck, type RaTlsEvidence, verifyRaTlsCertificate } from './ra-tls.js';

/** The checks of verifyServer that are its own; quote and RA-TLS checks keep their names. */
export const RemoteCheck = {
  /** 503 without Retry-After: the server says it has no enclave to quote from. */
  ENCLAVE: 'enclave',
  /** Any other status, or a body that is not the attestation JSON. */
  RESPONSE: 'response',
  /** Report data, first half: SHA-256 of the SPKI of the certificate this connection presented. */
  TLS_KEY_BINDING: 'tls-key-binding',
  /** Report data, second half: SHA-256 of the nonce this request sent. */
  NONCE_BINDING: 'nonce-binding',
  /** The certificate in the answer is the one this connection presented. */
  CERTIFICATE_MATCH: 'certificate-match',
} as const;
export type RemoteCheck = (typeof RemoteCheck)[keyof typeof RemoteCheck];

export type ServerVerification =
  | {
      ok: true;
      /** The fresh quote, verified and bound to the presented key and the nonce. */
      quote: ParsedQuote;
      certificate: {
        /** SHA-256 of the presented certificate's SubjectPublicKeyInfo, hex. */
        spkiSha256: string;
        /** SHA-256 of the presented certificate, colon-separated hex (what browsers and curl show). */
        fingerprint256: string;
        /** The RA-TLS evidence the certificate carries, each verified; null when it carries none. */
        raTls: RaTlsEvidence[] | null;
      };
      /** The nonce sent, hex. */
      nonce: string;
      notChecked: readonly string[];
      /** With collateral: the platform's TCB status, advisories and the bundle's validity. */
      collateral?: CollateralVerdict;
    }
  | { ok: false; failedCheck: RemoteCheck | RaTlsCheck | QuoteCheck; reason: string };

/** The server could not be asked at all (connection, TLS handshake, timeout, busy): nothing was checked. */
export class ServerUnreachable extends Error {}

const NONCE_BYTES = 32;
/** A quote and a certificate are a few KiB each; anything much larger is not an attestation answer. */
const MAX_RESPONSE_BYTES = 1 << 20;
const DEFAULT_TIMEOUT_MS = 30_000;

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest();

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

/** One TLS connection: the presented certificate, then one GET over the same socket. */
async function askOverOneConnection(target: URL, path: string, timeoutMs: number): Promise<{ presented: X509Certificate; answer: Answer }> {
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(target.port || 443);
  // Security choice: no CA check for the handshake (RA-TLS certificates are self-signed). Nothing is sent but the
  // nonce before the quote has bound the key this socket presented; the caller trusts the key only after that.
  const socket = tls.connect({
    host,
    port,
    ...(net.isIP(host) ? {} : { servername: host }),
    rejectUnauthorized: false,
    ALPNProtocols: ['http/1.1'],
  });
  socket.setTimeout(timeoutMs, () => socket.destroy(new ServerUnreachable(`no answer from ${target.host} within ${timeoutMs} ms`)));
  try {
    try {
      await once(socket, 'secureConnect');
    } catch (error) {
      if (error instanceof ServerUnreachable) throw error;
      throw new ServerUnreachable(`cannot connect to ${target.host}: ${(error as Error).message}`);
    }
    const presented = socket.getPeerX509Certificate();
    if (!presented) throw new ServerUnreachable(`${target.host} presented no certificate`);
    const answer = await new Promise<Answer>((resolve, reject) => {
      const request = http.request(
        {
          createConnection: () => socket,
          host,
          port,
          path,
          method: 'GET',
          headers: { accept: 'application/json', host: target.host },
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              response.destroy();
              reject(new ServerUnreachable(`the answer from ${target.host} is larger than ${MAX_RESPONSE_BYTES} bytes`));
            } else {
              chunks.push(chunk);
            }
          });
          response.on('end', () => {
            const retryAfter = response.headers['retry-after'];
            resolve({ status: response.statusCode ?? 0, retryAfter, body: Buffer.concat(chunks).toString('utf8') });
          });
          response.on('error', reject);
        },
      );
      request.on('error', (error) => {
        reject(error instanceof ServerUnreachable ? error : new ServerUnreachable(`request to ${target.host} failed: ${error.message}`));
      });
      request.end();
    });
    return { presented, answer };
  } finally {
    socket.destroy();
  }
}

function problemDetail(body: string): string {
  try {
    const detail = (JSON.parse(body) as { detail?: unknown }).detail;
    return typeof detail === 'string' ? detail : '';
  } catch {
    return '';
  }
}

/**
 * Attests the HTTPS server at `url` (https://host:port) at time `at`: one TLS connection, a fresh 32-byte
 * nonce, then the quote (verifyQuote against the pinned Intel root, or `trustAnchor` for tests), its binding
 * to the presented key and the nonce, the answer's certificate against the presented one, the presented
 * certificate's own RA-TLS evidence when it carries any, and last `expected` (on every quote). Throws
 * ServerUnreachable when nothing could be checked, and a TypeError for a URL that is not https.
 */
export async function verifyServer(
  url: string,
  options: {
    at: Date;
    expected?: Omit<QuoteExpectations, 'reportData'>;
    trustAnchor?: X509Certificate;
    timeoutMs?: number;
    /** Intel's collateral for the server's platform: its quote's TCB status and revocation are checked too. */
    collateral?: CollateralFile;
    acceptTcbStatuses?: readonly string[];
  },
): Promise<ServerVerification> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new TypeError(`Expected an https:// URL but received ${JSON.stringify(url)}`);
  }
  if (target.protocol !== 'https:') {
    throw new TypeError(`Expected an https:// URL but received ${JSON.stringify(url)}: attestation binds a TLS key`);
  }
  const nonce = randomBytes(NONCE_BYTES);
  const path = `/v1/attestation?nonce=${nonce.toString('hex')}`;
  const { presented, answer } = await askOverOneConnection(target, path, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const failure = (failedCheck: RemoteCheck | RaTlsCheck | QuoteCheck, reason: string) => ({ ok: false as const, failedCheck, reason });

  if (answer.status === 503 && answer.retryAfter !== undefined) {
    throw new ServerUnreachable(`the server is busy making quotes; retry in ${answer.retryAfter} s`);
  }
  if (answer.status === 503) {
    const detail = problemDetail(answer.body);
    return failure(RemoteCheck.ENCLAVE, `the server says it does not run in an enclave (503${detail ? `: ${detail}` : ''})`);
  }
  if (answer.status !== 200) {
    return failure(RemoteCheck.RESPONSE, `GET /v1/attestation answered ${answer.status}: ${problemDetail(answer.body) || 'no detail'}`);
  }
  let body: { quote?: unknown; certificate?: unknown };
  try {
    body = JSON.parse(answer.body) as typeof body;
  } catch {
    return failure(RemoteCheck.RESPONSE, 'the attestation answer is not JSON');
  }
  if (typeof body.quote !== 'string' || typeof body.certificate !== 'string') {
    return failure(RemoteCheck.RESPONSE, 'the attestation answer lacks a quote or a certificate');
  }

  const anchor = options.trustAnchor ? { trustAnchor: options.trustAnchor } : {};
  // allowDebug here: the identity policy runs last, once the quote is known to be genuine and bound to this connection.
  const withCollateral = options.collateral
    ? { collateral: options.collateral, ...(options.acceptTcbStatuses ? { acceptTcbStatuses: options.acceptTcbStatuses } : {}) }
    : {};
  const verified = verifyQuote(Buffer.from(body.quote, 'base64'), {
    at: options.at,
    expected: { allowDebug: true },
    ...anchor,
    ...withCollateral,
  });
  if (!verified.ok) return failure(verified.failedCheck, verified.reason);
  const reportData = verified.quote.reportData;
  let presentedKeyHash: Buffer;
  try {
    presentedKeyHash = spkiSha256(presented);
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
    return failure(RaTlsCheck.CERTIFICATE, `the presented certificate is not strict DER: ${error.message}`);
  }
  if (reportData.slice(0, 64) !== presentedKeyHash.toString('hex')) {
    return failure(
      RemoteCheck.TLS_KEY_BINDING,
      'the quote binds another TLS key than the one this connection presented: something between here and the enclave holds this key',
    );
  }
  if (reportData.slice(64) !== sha256(nonce).toString('hex')) {
    return failure(RemoteCheck.NONCE_BINDING, 'the quote was not made for the nonce this request sent: a replayed attestation');
  }
  let answered: X509Certificate;
  try {
    answered = new X509Certificate(body.certificate);
  } catch {
    return failure(RemoteCheck.CERTIFICATE_MATCH, 'the certificate in the answer does not parse');
  }
  if (!answered.raw.equals(presented.raw)) {
    return failure(RemoteCheck.CERTIFICATE_MATCH, 'the certificate in the answer is not the one this connection presented');
  }

  let raTls: RaTlsEvidence[] | null = null;
  if (hasRaTlsEvidence(presented.raw)) {
    const result = verifyRaTlsCertificate(presented.raw, { at: options.at, expected: { allowDebug: true }, ...anchor });
    if (!result.ok) return failure(result.failedCheck, `RA-TLS certificate: ${result.reason}`);
    raTls = result.evidence;
  }
  for (const quote of [verified.quote, ...(raTls ?? []).map((e) => e.quote)]) {
    const policy = checkQuoteExpectations(quote, options.expected ?? {});
    if (!policy.ok) return policy;
  }
  return {
    ok: true,
    quote: verified.quote,
    certificate: { spkiSha256: presentedKeyHash.toString('hex'), fingerprint256: presented.fingerprint256, raTls },
    nonce: nonce.toString('hex'),
    notChecked: verified.notChecked,
    ...(verified.collateral ? { collateral: verified.collateral } : {}),
  };
}
