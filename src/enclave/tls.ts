// TLS material for the HTTPS listener: the operator's own certificate and key when configured, else a
// self-signed development certificate made at first start and kept in `<dataDir>/tls/`. The private
// key never leaves the data folder and is written 0600. (Inside an enclave, RA-TLS replaces this: ra-tls.ts.)
import { X509Certificate as NodeX509, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 handlers through tsyringe, which needs it
import * as x509 from '@peculiar/x509';
import { dataLayout } from '../config.js';
import { writeFileAtomic } from '../store/files.js';

export interface TlsMaterial {
  cert: string;
  key: string;
  /** Where the certificate lives, so clients can be pointed at it (`curl --cacert`). */
  certPath: string;
  /** SHA-256 fingerprint of the certificate, colon-separated hex. */
  fingerprint256: string;
  /** True when this call generated a new self-signed certificate. */
  generated: boolean;
}

const VALIDITY_DAYS = 825;
/** Regenerate a self-signed certificate this long before it expires. */
const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;

type X509Crypto = Parameters<typeof x509.cryptoProvider.set>[0];
export type X509KeyPair = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'];

x509.cryptoProvider.set(webcrypto as unknown as X509Crypto);

export async function loadTlsMaterial(options: {
  dataDir: string;
  certPath: string | null;
  keyPath: string | null;
  /** Extra DNS names or IP addresses to put in a generated certificate (e.g. the listen host). */
  hosts?: string[];
}): Promise<TlsMaterial> {
  if (options.certPath && options.keyPath) {
    const cert = fs.readFileSync(options.certPath, 'utf8');
    const key = fs.readFileSync(options.keyPath, 'utf8');
    return { cert, key, certPath: options.certPath, fingerprint256: new NodeX509(cert).fingerprint256, generated: false };
  }
  const { tlsDir: dir, tlsCert: certPath, tlsKey: keyPath } = dataLayout(options.dataDir);
  if (fs.existsSync(certPath) && fs.existsSync(keyPath)) {
    const cert = fs.readFileSync(certPath, 'utf8');
    const parsed = new NodeX509(cert);
    if (Date.parse(parsed.validTo) - Date.now() > RENEW_BEFORE_MS) {
      return { cert, key: fs.readFileSync(keyPath, 'utf8'), certPath, fingerprint256: parsed.fingerprint256, generated: false };
    }
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { cert, key } = await createSelfSigned(options.hosts ?? []);
  writeFileAtomic(keyPath, key, 0o600);
  writeFileAtomic(certPath, cert, 0o644);
  return { cert, key, certPath, fingerprint256: new NodeX509(cert).fingerprint256, generated: true };
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** subjectAltName entries for localhost and the given hosts (DNS names or IP addresses; wildcard listen addresses skipped). */
export function subjectAltNames(hosts: string[]): x509.JsonGeneralName[] {
  const names = new Map<string, x509.JsonGeneralName>();
  for (const host of ['localhost', '127.0.0.1', '::1', ...hosts]) {
    if (host === '' || host === '0.0.0.0' || host === '::') continue;
    const type = IPV4.test(host) || host.includes(':') ? 'ip' : 'dns';
    names.set(host, { type, value: host });
  }
  return [...names.values()];
}

/** A private key as PKCS#8 PEM text ending in a newline. */
export async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const pem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

/** A self-signed ECDSA P-256 certificate for localhost and the given hosts, as PEM strings. */
export async function createSelfSigned(hosts: string[]): Promise<{ cert: string; key: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as unknown as X509KeyPair;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + VALIDITY_DAYS * 24 * 3600 * 1000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: webcrypto.getRandomValues(new Uint8Array(16)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '7'),
    name: 'CN=Bastion development certificate, O=Bastion',
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(subjectAltNames(hosts)),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: certificate.toString('pem'), key: await privateKeyPem(keys.privateKey as unknown as webcrypto.CryptoKey) };
}
