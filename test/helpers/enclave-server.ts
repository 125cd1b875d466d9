// A Bastion server started as in an enclave, for the e2e tests of RA-TLS and remote verification:
// sealing keys from a fake attestation tree (MRENCLAVE 11…, MRSIGNER 22…), quotes from a fake quoting
// enclave, the enclave admin's token verifier, no operator certificate.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { defaultConfig } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/main.js';
import { enclaveAdmin, fakeAttestationTree } from './attestation.js';
import type { FakeQuotingEnclave } from './fake-quote.js';

export async function startInFakeEnclave(enclave: FakeQuotingEnclave, logger: Logger): Promise<{ dataDir: string; server: RunningServer }> {
  const identity = { mrenclave: Buffer.alloc(32, 0x11), mrsigner: Buffer.alloc(32, 0x22), isvProdId: 0, isvSvn: 0, debug: false };
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-enclave-'));
  const config = {
    ...defaultConfig(),
    dataDir,
    port: 0,
    poolSize: 1,
    torchThreads: 1,
    attestationDir: fakeAttestationTree(identity),
    adminTokenVerifier: enclaveAdmin.verifier,
  };
  return { dataDir, server: await startServer(config, logger, { attestor: enclave.attestor }) };
}
