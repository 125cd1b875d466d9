// Attestation: a DCAP quote from the enclave that binds the server's TLS key and a client's nonce.
// The report data is SHA-256(TLS public key, SPKI DER) ‖ SHA-256(nonce), so a client that checks the
// quote (and that it came over the TLS connection whose key it names) knows it talks to that enclave's
// code, now. Under Gramine the quote comes from /dev/attestation: write user_report_data, read quote.
// Outside an enclave there is no attestor, and nothing pretends to be a quote.
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BastionError } from '../errors.js';
import { parseCertificateDer } from './der.js';
import { type EnclaveIdentity, parseReportIdentity } from './keys.js';

export interface Attestor {
  /** A quote over these 64 bytes of report data. */
  quote(reportData: Buffer): Promise<Buffer>;
}

/** Gramine's attestor, when `attestationDir` offers quotes (its `quote` file exists). */
export function gramineAttestor(attestationDir: string): Attestor | null {
  if (!fs.existsSync(path.join(attestationDir, 'quote'))) return null;
  return {
    async quote(reportData) {
      await fs.promises.writeFile(path.join(attestationDir, 'user_report_data'), reportData);
      return fs.promises.readFile(path.join(attestationDir, 'quote'));
    },
  };
}

/**
 * SHA-256 of a certificate's SubjectPublicKeyInfo, hashed as the certificate encodes it: the key hash every
 * binding here uses (the attestation route's report data, RA-TLS extensions, remote verification).
 */
export function spkiSha256(certificate: string | Buffer | X509Certificate): Buffer {
  // A PEM string is read by its first BEGIN line, the certificate's own; DER goes to the strict reader directly
  // (node:crypto would parse the first PEM text inside an RA-TLS certificate's quote instead).
  let der: Buffer;
  if (certificate instanceof X509Certificate) der = certificate.raw;
  else if (typeof certificate === 'string') der = new X509Certificate(certificate).raw;
  else der = certificate;
  return createHash('sha256').update(parseCertificateDer(der).spki).digest();
}

/** SHA-256(SPKI DER of the certificate's public key) ‖ SHA-256(nonce): the 64 bytes a quote binds. */
export function attestationReportData(certificate: string | Buffer | X509Certificate, nonce: Buffer): Buffer {
  return reportDataForKey(spkiSha256(certificate), nonce);
}

/** The same 64 bytes from the key's SHA-256, computed once (the server's TLS key does not change while it runs). */
export function reportDataForKey(tlsKeySha256: Buffer, nonce: Buffer): Buffer {
  return Buffer.concat([tlsKeySha256, createHash('sha256').update(nonce).digest()]);
}

const HEADER_BYTES = 48;
const SGX_BODY_BYTES = 384;
const REPORT_DATA_OFFSET = 320;

/**
 * The enclave identity and report data in an SGX quote (version 3, 4 or 5 with an SGX body). This is
 * parsing, not verification: the signature chain to Intel is checked by the quote verifier.
 */
export function parseQuoteBody(quote: Buffer): { version: number; identity: EnclaveIdentity; reportData: Buffer } {
  if (quote.length < HEADER_BYTES + SGX_BODY_BYTES)
    throw new BastionError('INTERNAL', `A quote of ${quote.length} bytes is too short for an SGX report`);
  const version = quote.readUInt16LE(0);
  let offset = HEADER_BYTES;
  if (version === 4 && quote.readUInt32LE(4) !== 0) throw new BastionError('INTERNAL', 'The quote is not an SGX quote (TEE type)');
  if (version === 5) {
    if (quote.readUInt16LE(HEADER_BYTES) !== 1) throw new BastionError('INTERNAL', 'The quote body is not an SGX report');
    offset += 6;
  } else if (version !== 3 && version !== 4) {
    throw new BastionError('INTERNAL', `Quote version ${version} is not one this server reads`);
  }
  const body = quote.subarray(offset, offset + SGX_BODY_BYTES);
  return {
    version,
    identity: parseReportIdentity(body),
    reportData: Buffer.from(body.subarray(REPORT_DATA_OFFSET, REPORT_DATA_OFFSET + 64)),
  };
}

/** One quote at a time, and at most `maxWaiting` requests waiting for one; more is SERVICE_UNAVAILABLE. */
export function serialized(attestor: Attestor, maxWaiting = 4): Attestor {
  let tail: Promise<unknown> = Promise.resolve();
  let waiting = 0;
  return {
    quote(reportData) {
      if (waiting >= maxWaiting) {
        throw new BastionError('SERVICE_UNAVAILABLE', 'The enclave is busy making quotes; retry shortly', { retryAfterSeconds: 1 });
      }
      waiting += 1;
      const run = tail
        .then(() => attestor.quote(reportData))
        .finally(() => {
          waiting -= 1;
        });
      tail = run.catch(() => undefined);
      return run;
    },
  };
}
