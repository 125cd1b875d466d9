// Collateral from a fake Intel: the fake quoting enclave's root signs a TCB signing certificate, which signs a
// TCB info and a QE identity written for the enclave's platform; the root and the PCK CA sign CRLs that may
// list the PCK CA or the PCK certificate. With it the collateral checks run on cases no real bundle shows:
// a revoked PCK certificate, a QE of another signer, a platform below every level.
import { KeyObject, sign, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { CollateralFile } from '../../src/enclave/collateral.js';
import type { FakeQuotingEnclave } from './fake-quote.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export interface FakeCollateralOptions {
  /** TCB levels, highest first (default: one level at the platform's own values, UpToDate). */
  tcbLevels?: Array<{ components: number[]; pceSvn: number; tcbStatus: string; advisoryIDs?: string[] }>;
  /** QE identity levels (default: ISV SVN 9, UpToDate; the fake QE's SVN is 9). */
  qeLevels?: Array<{ isvsvn: number; tcbStatus: string }>;
  /** The QE identity's MRSIGNER (default: the fake QE's, 0xe2 × 32). */
  qeMrsigner?: string;
  fmspc?: string;
  issueDate?: string;
  nextUpdate?: string;
  revokePck?: boolean;
  revokePckCa?: boolean;
}

const pem = (der: ArrayBuffer) => x509.PemConverter.encode(der, 'CERTIFICATE').replace(/\r\n/g, '\n').replace(/\n?$/, '\n');

export async function createFakeCollateral(enclave: FakeQuotingEnclave, options: FakeCollateralOptions = {}): Promise<CollateralFile> {
  const { root, ca } = enclave.issuers;
  const platform = enclave.pck.platform;
  const issueDate = options.issueDate ?? '2026-01-01T00:00:00Z';
  const nextUpdate = options.nextUpdate ?? '2026-02-01T00:00:00Z';
  const signingKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const signer = await x509.X509CertificateGenerator.create({
    serialNumber: '10',
    subject: 'CN=Bastion test SGX TCB Signing (fake), O=Bastion tests',
    issuer: root.cert.subject,
    notBefore: new Date('2000-01-01T00:00:00Z'),
    notAfter: new Date('2049-12-31T23:59:59Z'),
    publicKey: signingKeys.publicKey,
    signingKey: root.keys.privateKey,
    signingAlgorithm: ALG,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const signerKey = KeyObject.from(signingKeys.privateKey as unknown as Parameters<typeof KeyObject.from>[0]);
  const signed = (text: string) => sign('sha256', Buffer.from(text, 'utf8'), { key: signerKey, dsaEncoding: 'ieee-p1363' }).toString('hex');
  const levels = options.tcbLevels ?? [{ components: platform.components, pceSvn: platform.pceSvn, tcbStatus: 'UpToDate' }];
  const tcbInfo = JSON.stringify({
    id: 'SGX',
    version: 3,
    issueDate,
    nextUpdate,
    fmspc: (options.fmspc ?? platform.fmspc).toUpperCase(),
    pceId: platform.pceId,
    tcbType: 0,
    tcbEvaluationDataNumber: 1,
    tcbLevels: levels.map((l) => ({
      tcb: { sgxtcbcomponents: l.components.map((svn) => ({ svn })), pcesvn: l.pceSvn },
      tcbDate: '2025-01-01T00:00:00Z',
      tcbStatus: l.tcbStatus,
      ...(l.advisoryIDs ? { advisoryIDs: l.advisoryIDs } : {}),
    })),
  });
  const qeIdentity = JSON.stringify({
    id: 'QE',
    version: 2,
    issueDate,
    nextUpdate,
    tcbEvaluationDataNumber: 1,
    miscselect: '00000000',
    miscselectMask: 'FFFFFFFF',
    attributes: '05000000000000000000000000000000',
    attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000',
    mrsigner: options.qeMrsigner ?? 'E2'.repeat(32),
    isvprodid: 1,
    tcbLevels: (options.qeLevels ?? [{ isvsvn: 9, tcbStatus: 'UpToDate' }]).map((l) => ({
      tcb: { isvsvn: l.isvsvn },
      tcbDate: '2025-01-01T00:00:00Z',
      tcbStatus: l.tcbStatus,
    })),
  });
  const crl = async (issuer: typeof root, revoked: string | null) =>
    Buffer.from(
      (
        await x509.X509CrlGenerator.create({
          issuer: issuer.cert.subject,
          thisUpdate: new Date(issueDate),
          nextUpdate: new Date(nextUpdate),
          signingAlgorithm: ALG,
          signingKey: issuer.keys.privateKey,
          entries: revoked ? [{ serialNumber: revoked, revocationDate: new Date(issueDate) }] : [],
        })
      ).rawData,
    ).toString('hex');
  return {
    pck_crl_issuer_chain: pem(ca.cert.rawData) + pem(root.cert.rawData),
    root_ca_crl: await crl(root, options.revokePckCa ? ca.cert.serialNumber : null),
    pck_crl: await crl(ca, options.revokePck ? enclave.pck.serialNumber : null),
    tcb_info_issuer_chain: pem(signer.rawData) + pem(root.cert.rawData),
    tcb_info: tcbInfo,
    tcb_info_signature: signed(tcbInfo),
    qe_identity_issuer_chain: pem(signer.rawData) + pem(root.cert.rawData),
    qe_identity: qeIdentity,
    qe_identity_signature: signed(qeIdentity),
  };
}
