// A fake Gramine /dev/attestation tree in a temporary folder: the two sealing keys (random) and the SGX
// report the enclave gets of itself, with the identity given, and optionally a recorded quote.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EnclaveIdentity } from '../../src/enclave/keys.js';
import { mintToken, tokenVerifier } from '../../src/governance/tokens.js';

/** The first admin of a fake enclave: its token, and the verifier the server is given instead (no token file in a sealed folder). */
export const enclaveAdmin = (() => {
  const { token } = mintToken();
  return { token, verifier: tokenVerifier(token)! };
})();

/** A fake /dev/attestation: sealing keys and the report the enclave gets of itself. */
export function fakeAttestationTree(
  identity: Omit<EnclaveIdentity, 'mrenclave' | 'mrsigner'> & { mrenclave: Buffer; mrsigner: Buffer },
  /** A recorded quote the tree hands out, whatever report data was written (Gramine makes a fresh one). */
  quote?: Buffer,
): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-attestation-'));
  fs.mkdirSync(path.join(dir, 'keys'));
  fs.writeFileSync(path.join(dir, 'keys', '_sgx_mrenclave'), randomBytes(16));
  fs.writeFileSync(path.join(dir, 'keys', '_sgx_mrsigner'), randomBytes(16));
  const report = Buffer.alloc(432);
  report.writeBigUInt64LE(identity.debug ? 0x7n : 0x5n, 48); // INIT | MODE64BIT (| DEBUG)
  identity.mrenclave.copy(report, 64);
  identity.mrsigner.copy(report, 128);
  report.writeUInt16LE(identity.isvProdId, 256);
  report.writeUInt16LE(identity.isvSvn, 258);
  fs.writeFileSync(path.join(dir, 'report'), report);
  if (quote) fs.writeFileSync(path.join(dir, 'quote'), quote);
  return dir;
}
