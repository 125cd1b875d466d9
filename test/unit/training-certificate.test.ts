// Training certificates: a statement signed by a key the enclave's quote binds. The hostile cases are a
// model file changed after the fact, a statement edited (ε lowered, a dataset dropped), a certificate
// re-signed under another key, a quote that binds some other key, and a development certificate passed
// off as attested; each fails at the check that names it.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { before, test } from 'node:test';
import { keyProviderFromRootKey } from '../../src/enclave/keys.js';
import {
  CERTIFICATE_FORMAT,
  datasetCommitment,
  developmentCertificateSigner,
  openCertificateSigner,
  signingKeyReportData,
  type TrainingCertificate,
  type TrainingStatement,
  verifyTrainingCertificate,
} from '../../src/enclave/training-certificate.js';
import { createFakeCollateral } from '../helpers/fake-collateral.js';
import { createFakeQuotingEnclave, type FakeQuotingEnclave } from '../helpers/fake-quote.js';

const model = Buffer.from('PK\u0003\u0004 a trained TorchScript archive, as downloaded');
const salt = randomBytes(32).toString('hex');
const fileSha = createHash('sha256').update('the uploaded CSV').digest('hex');
const fields = (): Omit<TrainingStatement, 'format' | 'enclave'> => ({
  modelId: '0190a8f0-0000-7000-8000-000000000001',
  trainingId: '0190a8f0-0000-7000-8000-000000000002',
  modelSha256: createHash('sha256').update(model).digest('hex'),
  sourceModelId: '0190a8f0-0000-7000-8000-000000000003',
  sourceModelSha256: '3'.repeat(64),
  datasets: [{ id: '0190a8f0-0000-7000-8000-000000000004', commitment: datasetCommitment(salt, fileSha) }],
  private: true,
  noiseMultiplier: 1.1,
  sampleRate: 0.01,
  steps: 300,
  epsilon: 2,
  delta: 1e-5,
  accountant: 'pld',
  maxGradNorm: 1,
  clipping: 'flat',
  codeVersion: '0.1.0',
  finishedAt: '2026-12-06T12:00:00.000Z',
});
const at = new Date('2026-12-06T12:00:00Z');
const keys = (fill: number) => keyProviderFromRootKey(Buffer.alloc(32, fill), 'test');

let enclave: FakeQuotingEnclave;
before(async () => {
  enclave = await createFakeQuotingEnclave();
});

test('a development certificate verifies only when development certificates are allowed, and says it is not attested', () => {
  const certificate = developmentCertificateSigner(keys(1)).sign(fields());
  assert.equal(certificate.statement.format, CERTIFICATE_FORMAT);
  assert.equal(certificate.statement.enclave, false);
  assert.equal(certificate.keyQuote, undefined);
  const refused = verifyTrainingCertificate(certificate, { model, at });
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.failedCheck, 'enclave');
  const accepted = verifyTrainingCertificate(JSON.parse(JSON.stringify(certificate)), { model, at, allowDevelopment: true });
  assert.deepEqual(accepted, { ok: true, statement: certificate.statement, attested: false });
});

test('the signing key is derived: the same root key gives the same key, another root key another', () => {
  assert.deepEqual(developmentCertificateSigner(keys(1)).publicKey, developmentCertificateSigner(keys(1)).publicKey);
  assert.notDeepEqual(developmentCertificateSigner(keys(1)).publicKey, developmentCertificateSigner(keys(2)).publicKey);
});

test('one byte of the model changed, anywhere, fails the model hash', () => {
  const certificate = developmentCertificateSigner(keys(1)).sign(fields());
  for (const i of [0, 7, model.length - 1]) {
    const changed = Buffer.from(model);
    changed[i]! ^= 0x01;
    const result = verifyTrainingCertificate(certificate, { model: changed, at, allowDevelopment: true });
    assert.equal(!result.ok && result.failedCheck, 'model-hash', `byte ${i}`);
  }
});

test('an edited statement, or one re-signed under another key, fails the signature', () => {
  const certificate = developmentCertificateSigner(keys(1)).sign(fields());
  const edits: Array<(s: TrainingStatement) => void> = [
    (s) => void (s.epsilon = 0.5),
    (s) => void (s.noiseMultiplier = 10),
    (s) => void s.datasets.pop(),
    (s) => void (s.datasets[0] = { ...s.datasets[0]!, commitment: '0'.repeat(64) }),
    (s) => void (s.steps = 1),
    (s) => void (s.enclave = true),
  ];
  for (const edit of edits) {
    const copy = JSON.parse(JSON.stringify(certificate)) as TrainingCertificate;
    edit(copy.statement);
    const result = verifyTrainingCertificate(copy, { model, at, allowDevelopment: true });
    assert.equal(result.ok, false, String(edit));
    // Dropping the only dataset breaks the format (at least one dataset) before the signature is read.
    assert.ok(!result.ok && ['signature', 'format'].includes(result.failedCheck), String(edit));
  }
  // A forger's own key over the edited statement: signature verifies, but nothing binds the key.
  const forged = developmentCertificateSigner(keys(9)).sign({ ...fields(), epsilon: 0.1 });
  const swapped = { ...forged, publicKey: certificate.publicKey };
  assert.equal(
    (verifyTrainingCertificate(swapped, { model, at, allowDevelopment: true }) as { failedCheck: string }).failedCheck,
    'signature',
  );
});

test('what is not a certificate fails the format check, naming where', () => {
  for (const bad of [
    null,
    'cert',
    {},
    { statement: {}, signature: '', publicKey: '' },
    { ...developmentCertificateSigner(keys(1)).sign(fields()), extra: 1 },
  ]) {
    const result = verifyTrainingCertificate(bad, { model, at, allowDevelopment: true });
    assert.equal(!result.ok && result.failedCheck, 'format', JSON.stringify(bad));
  }
});

test("inside an enclave the certificate carries the quote binding its key, and verifies up to the quote's root", async () => {
  const signer = await openCertificateSigner(keys(3), enclave.attestor);
  assert.equal(signer.enclave, true);
  const certificate = signer.sign(fields());
  assert.equal(certificate.statement.enclave, true);
  const quote = Buffer.from(certificate.keyQuote!, 'base64');
  const result = verifyTrainingCertificate(certificate, {
    model,
    at,
    trustAnchor: enclave.rootCa,
    expected: { mrenclave: enclave.identity.mrenclave.toString('hex') },
  });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.attested, true);
  assert.equal(result.ok && result.attested && result.quote.reportData, signingKeyReportData(signer.publicKey).toString('hex'));
  assert.ok(quote.length > 1000);

  // The same certificate against the pinned Intel root: the fake enclave is not real hardware.
  const unpinned = verifyTrainingCertificate(certificate, { model, at });
  assert.deepEqual(!unpinned.ok && [unpinned.failedCheck, unpinned.quoteCheck], ['quote', 'pck-chain']);
  // Another enclave expected.
  const other = verifyTrainingCertificate(certificate, {
    model,
    at,
    trustAnchor: enclave.rootCa,
    expected: { mrenclave: 'ab'.repeat(32) },
  });
  assert.deepEqual(!other.ok && [other.failedCheck, other.quoteCheck], ['quote', 'mrenclave']);
  // A one-byte change of the model still fails first at its hash.
  const changed = Buffer.from(model);
  changed[3]! ^= 0x80;
  assert.equal(
    (verifyTrainingCertificate(certificate, { model: changed, at, trustAnchor: enclave.rootCa }) as { failedCheck: string }).failedCheck,
    'model-hash',
  );
});

test('a real quote that binds another key does not vouch for this one; an "enclave" statement without a quote fails', async () => {
  const attested = (await openCertificateSigner(keys(4), enclave.attestor)).sign(fields());
  // The operator, outside the enclave, signs a statement of its own and attaches the enclave's genuine quote.
  const stolenQuote = attested.keyQuote!;
  const operator = developmentCertificateSigner(keys(5)).sign(fields());
  const dressedUp = { ...operator, keyQuote: stolenQuote };
  const asDevelopment = verifyTrainingCertificate(dressedUp, { model, at, trustAnchor: enclave.rootCa });
  assert.equal(!asDevelopment.ok && asDevelopment.failedCheck, 'enclave', 'the signed statement says enclave: false');
  // With enclave: true in its statement it needs the quote to bind its key, which it does not.
  const key = keys(5);
  const liar = (await openCertificateSigner(key, { quote: async () => Buffer.from(stolenQuote, 'base64') })).sign(fields());
  assert.equal(liar.statement.enclave, true);
  const result = verifyTrainingCertificate({ ...liar, keyQuote: stolenQuote }, { model, at, trustAnchor: enclave.rootCa });
  assert.deepEqual(!result.ok && [result.failedCheck, result.quoteCheck], ['quote', 'report-data']);
  assert.match(!result.ok ? result.reason : '', /does not bind this certificate key/);
  // Without any quote.
  const { keyQuote: _dropped, ...bare } = attested;
  const noQuote = verifyTrainingCertificate(bare, { model, at, trustAnchor: enclave.rootCa });
  assert.equal(!noQuote.ok && noQuote.failedCheck, 'quote');
  // A quote given separately (as `--quote`) is used instead of the embedded one.
  const separate = verifyTrainingCertificate(bare, { model, at, trustAnchor: enclave.rootCa, quote: Buffer.from(stolenQuote, 'base64') });
  assert.ok(separate.ok, JSON.stringify(separate));
});

test("a dataset's commitment is SHA-256(salt ‖ SHA-256(file)): its owner recomputes it, and without the salt guesses cannot be tested", () => {
  const commitment = datasetCommitment(salt, fileSha);
  assert.equal(
    commitment,
    createHash('sha256')
      .update(Buffer.concat([Buffer.from(salt, 'hex'), Buffer.from(fileSha, 'hex')]))
      .digest('hex'),
  );
  assert.notEqual(commitment, fileSha);
  assert.notEqual(datasetCommitment(randomBytes(32).toString('hex'), fileSha), commitment);
});

test('an attestation device that answers over other report data binds nothing: the signer drops its quote and certificates fail at it', async () => {
  const recorded = enclave.quote(Buffer.alloc(64, 7));
  const signer = await openCertificateSigner(keys(6), { quote: async () => recorded });
  assert.deepEqual([signer.enclave, signer.keyQuote], [true, null]);
  const certificate = signer.sign(fields());
  assert.equal(certificate.keyQuote, undefined);
  const result = verifyTrainingCertificate(certificate, { model, at, trustAnchor: enclave.rootCa });
  assert.equal(!result.ok && result.failedCheck, 'quote');
});

test("with Intel's collateral the certificate's quote is also checked for TCB status and revocation", async () => {
  const certificate = (await openCertificateSigner(keys(7), enclave.attestor)).sign(fields());
  const options = { model, at: new Date('2026-01-15T00:00:00Z'), trustAnchor: enclave.rootCa };
  const current = verifyTrainingCertificate(certificate, { ...options, collateral: await createFakeCollateral(enclave) });
  assert.ok(current.ok && current.attested, JSON.stringify(current));
  assert.deepEqual([current.collateral?.tcbStatus, current.notChecked], ['UpToDate', []]);
  const revoked = verifyTrainingCertificate(certificate, {
    ...options,
    collateral: await createFakeCollateral(enclave, { revokePck: true }),
  });
  assert.deepEqual(!revoked.ok && [revoked.failedCheck, revoked.quoteCheck], ['quote', 'revocation']);
});
