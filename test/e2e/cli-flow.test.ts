// The whole flow through the `bastion` binary against the compiled server: the admin creates a data
// owner and a scientist; the owner uploads a CSV dataset whose policy names the scientist and asks for
// release approval; the scientist uploads a TorchScript model, plans, starts a training with --watch
// (plain lines on a pipe, exit 0), waits for the owner's approval, downloads the trained model,
// evaluates it with DP, and cancels a second training (its watch exits 1). Every --json output is one
// JSON value; connection failures name their sources; no token reaches the server's log.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createSelfSigned } from '../../src/enclave/tls.js';
import { prng } from '../helpers/prng.js';
import { repoRoot, type ServerProcess, startServerProcess } from '../helpers/server.js';
import { testdataPath } from '../helpers/testdata.js';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const FEATURES = 100; // mlp.script.pt: Linear(100→256)…Linear(256→2)
const SAMPLES = 256;

/** A learnable CSV: FEATURES columns in [-1, 1) and label = whether the first exceeds the second. */
function pointsCsv(): string {
  const random = prng(7);
  const lines = [[...Array.from({ length: FEATURES }, (_, i) => `f${i}`), 'label'].join(',')];
  for (let row = 0; row < SAMPLES; row++) {
    const x = Array.from({ length: FEATURES }, () => random() * 2 - 1);
    lines.push([...x.map((v) => v.toFixed(4)), x[0]! > x[1]! ? '1' : '0'].join(','));
  }
  return `${lines.join('\n')}\n`;
}

describe('the bastion CLI drives the whole flow against a real server', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-cli-'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-cli-files-'));
  let server: ServerProcess;
  const tokens: string[] = [];
  let owner: { id: string; token: string };
  let scientist: { id: string; token: string };
  let datasetId: string;
  let modelId: string;
  let trainedModelId: string;

  /** Runs bin/bastion.mjs with the server's URL and data folder; `token` goes in BASTION_TOKEN (not argv). */
  function bastion(
    args: string[],
    options: { token?: string; input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ): Promise<CliResult> {
    const env: NodeJS.ProcessEnv = { ...process.env, BASTION_URL: server.url, BASTION_DATA_DIR: dataDir, ...options.env };
    delete env.BASTION_TOKEN;
    delete env.BASTION_CA;
    if (options.token !== undefined) env.BASTION_TOKEN = options.token;
    for (const [key, value] of Object.entries(options.env ?? {})) if (value === undefined) delete env[key];
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'bastion.mjs'), ...args], {
      cwd: options.cwd ?? work,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdin.end(options.input ?? '');
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }
  /** Runs a --json command that must succeed; its one JSON value. */
  // biome-ignore lint/suspicious/noExplicitAny: the commands print many shapes; each test reads the fields it checks
  async function json<T = Record<string, any>>(args: string[], options: Parameters<typeof bastion>[1] = {}): Promise<T> {
    const result = await bastion([...args, '--json'], options);
    assert.equal(result.code, 0, `bastion ${args.slice(0, 2).join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  }

  const trainingFlags = (epochs: number, epsilon: number) => [
    '--model',
    modelId,
    '--dataset',
    datasetId,
    '--epochs',
    String(epochs),
    '--batch-size',
    '32',
    '--epsilon',
    String(epsilon),
    '--max-grad-norm',
    '1',
    '--lr',
    '0.1',
    '--loss',
    'cross_entropy',
  ];

  before(async () => {
    server = await startServerProcess(['--port', '0', '--pool-size', '2'], { BASTION_DATA_DIR: dataDir });
    tokens.push(fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim());
    fs.writeFileSync(path.join(work, 'points.csv'), pointsCsv());
  });
  after(async () => {
    await server?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('the admin (token from the data folder) creates two principals; --json prints each with its token', async () => {
    const me = await json(['whoami']);
    assert.equal(me.role, 'admin');
    const created = await Promise.all(['hospital', 'scientist'].map((name) => json(['principals', 'create', '--name', name])));
    owner = { id: created[0]!.id, token: created[0]!.token };
    scientist = { id: created[1]!.id, token: created[1]!.token };
    tokens.push(owner.token, scientist.token);
    const list = await json(['principals', 'list']);
    assert.deepEqual(list.items.map((p: { name: string }) => p.name).sort(), ['admin', 'hospital', 'scientist']);
  });

  test('the owner uploads a CSV dataset (streamed) whose policy names the scientist and asks for approval', async () => {
    const policy = JSON.stringify({ trainers: [scientist.id], release: 'approval' });
    const args = [
      'datasets',
      'upload',
      'points.csv',
      '--name',
      'points',
      '--privacy-limit',
      '20',
      '--format',
      'csv',
      '--label-column',
      'label',
      '--policy',
      policy,
    ];
    const dataset = await json(args, { token: owner.token });
    datasetId = dataset.id;
    assert.equal(dataset.format, 'csv');
    assert.equal(dataset.sampleCount, SAMPLES);
    assert.deepEqual(dataset.inputs[0].shape, [SAMPLES, FEATURES]);
    assert.deepEqual(dataset.policy, { trainers: [scientist.id], allowEvaluation: true, allowNonPrivate: false, release: 'approval' });
    assert.equal(
      dataset.sha256,
      createHash('sha256')
        .update(fs.readFileSync(path.join(work, 'points.csv')))
        .digest('hex'),
    );

    // Without --json: one sentence (no progress bar on a pipe).
    const again = await bastion(['datasets', 'upload', 'points.csv', '--name', 'copy', '--privacy-limit', '1'], { token: owner.token });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^uploaded dataset copy \\(${UUID}\\): ${SAMPLES} samples, ε limit 1, δ [0-9.e-]+\\n$`));
    const copyId = again.stdout.match(new RegExp(UUID))![0];
    assert.deepEqual(await json(['datasets', 'delete', copyId], { token: owner.token }), { id: copyId, deleted: true });

    const seen = await json(['datasets', 'list'], { token: scientist.token });
    assert.deepEqual(
      seen.items.map((d: { id: string }) => d.id),
      [datasetId],
    );
    const shown = await json(['datasets', 'show', datasetId], { token: scientist.token });
    assert.equal(shown.name, 'points');
  });

  test('the scientist uploads a TorchScript model; its policy is shown to its owner', async () => {
    const model = await json(['models', 'upload', testdataPath('torchscript', 'torch-1.13', 'mlp.script.pt'), '--name', 'mlp'], {
      token: scientist.token,
    });
    modelId = model.id;
    assert.equal(model.check.parameterCount, 92162);
    assert.equal(model.release, 'released');
    assert.deepEqual(await json(['models', 'policy', modelId], { token: scientist.token }), { readers: [] });
    const list = await json(['models', 'list'], { token: scientist.token });
    assert.deepEqual(
      list.items.map((m: { id: string }) => m.id),
      [modelId],
    );
  });

  test('trainings plan takes the request from stdin (--request -) with flags for the common fields', async () => {
    const request = JSON.stringify({
      optimizer: { type: 'sgd', learningRate: 0.5, momentum: 0.9 },
      privacy: { accountant: 'rdp', maxGradNorm: 3 },
    });
    const plan = await json(['trainings', 'plan', '--request', '-', ...trainingFlags(2, 1)], { token: scientist.token, input: request });
    assert.equal(plan.allowed, true);
    assert.equal(plan.steps, (2 * SAMPLES) / 32);
    assert.equal(plan.sampleRate, 32 / SAMPLES);
    assert.equal(plan.accountant, 'rdp', 'from the request');
    assert.equal(plan.maxGradNorm, 1, 'the flag wins over the request');
    assert.ok(plan.noiseMultiplier > 0);
    assert.equal(plan.datasets[0].epsilonSpent, 0, 'a plan charges nothing');

    const human = await bastion(['trainings', 'plan', ...trainingFlags(2, 1)], { token: scientist.token });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^allowed: 16 steps over 256 samples \(q 0\.125, batch 32, 2 epochs\)\nσ [0-9.]+ \(C 1, flat, pld\): ε /);
    assert.match(
      human.stdout,
      /\nper-sample gradients: (\d+) of \1 parameters by rule\n/,
      'the pre-flight found a rule for every parameter',
    );
  });

  test('trainings start --watch on a pipe prints plain lines until the training succeeds, then exits 0', async () => {
    // 40 epochs of 8 steps: a few hundred small steps.
    const result = await bastion(['trainings', 'start', ...trainingFlags(40, 2), '--watch'], { token: scientist.token });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const lines = result.stdout.trimEnd().split('\n');
    const started = lines[0]!.match(new RegExp(`^started training (${UUID}): 320 steps, σ [0-9.]+$`));
    assert.ok(started, lines[0]);
    const trainingId = started[1]!;
    const head = `training ${trainingId}`;
    const shapes = [
      new RegExp(
        `^${head} (queued|running|succeeded): step \\d+/320 \\(epoch [0-9.]+\\), ε [0-9.e-]+ of 2(, [0-9.e+]+ samples/s)?(, ETA \\w+)?$`,
      ),
      new RegExp(`^${head} checkpoint at step \\d+$`),
      new RegExp(`^${head} succeeded: step 320/320 \\(epoch 40\\), ε 2 of 2; trained model (${UUID})$`),
    ];
    for (const line of lines.slice(1))
      assert.ok(
        shapes.some((s) => s.test(line)),
        `unexpected line: ${line}`,
      );
    assert.ok(
      lines.slice(1, -1).some((line) => shapes[0]!.test(line)),
      'at least one line of progress or state',
    );
    const end = lines.at(-1)!.match(shapes[2]!);
    assert.ok(end, `the last line says how it ended: ${lines.at(-1)}`);
    trainedModelId = end[1]!;

    const shown = await json(['trainings', 'show', trainingId], { token: scientist.token });
    assert.deepEqual([shown.status, shown.step, shown.resultModelId], ['succeeded', 320, trainedModelId]);
    const list = await json(['trainings', 'list'], { token: scientist.token });
    assert.deepEqual(
      list.items.map((t: { id: string }) => t.id),
      [trainingId],
    );
  });

  test('the trained model is downloaded only once the owner approves its release', async () => {
    const target = path.join(work, 'trained.pt');
    const early = await bastion(['models', 'download', trainedModelId, '-o', target], { token: scientist.token });
    assert.equal(early.code, 1);
    assert.match(early.stderr, /awaits the release approval/);
    assert.equal(fs.existsSync(target), false, 'nothing written');
    assert.equal(fs.existsSync(`${target}.partial`), false, 'no partial file left');

    const pending = await json(['models', 'approvals', trainedModelId], { token: owner.token });
    assert.equal(pending.release, 'pending');
    assert.deepEqual(
      pending.approvals.map((a: { approverId: string; decision: null }) => [a.approverId, a.decision]),
      [[owner.id, null]],
    );
    const approved = await json(['models', 'approve', trainedModelId, '--reason', 'DP at ε 2 is acceptable'], { token: owner.token });
    assert.equal(approved.release, 'released');
    assert.equal(approved.approvals[0].reason, 'DP at ε 2 is acceptable');
    const twice = await bastion(['models', 'reject', trainedModelId], { token: owner.token });
    assert.equal(twice.code, 1, 'a decision is final');

    const saved = await json(['models', 'download', trainedModelId, '-o', target], { token: scientist.token });
    const model = await json(['models', 'show', trainedModelId], { token: scientist.token });
    assert.deepEqual(saved, { id: trainedModelId, file: target, sizeBytes: model.sizeBytes });
    assert.equal(createHash('sha256').update(fs.readFileSync(target)).digest('hex'), model.sha256);
    assert.equal(model.lineage.sourceModelId, modelId);
    const overwrite = await bastion(['models', 'download', trainedModelId, '-o', target], { token: scientist.token });
    assert.equal(overwrite.code, 1);
    assert.match(overwrite.stderr, /exists; pass --force to overwrite it/);

    // The training certificate: signed by the development key here, so verify-model refuses it unless told
    // to accept an unattested certificate; one byte of the model changed fails at its hash.
    const certFile = path.join(work, 'trained.cert.json');
    const savedCert = await json(['models', 'certificate', trainedModelId, '-o', certFile], { token: scientist.token });
    assert.deepEqual(savedCert, { id: trainedModelId, file: certFile, enclave: false });
    const strict = await bastion(['attest', 'verify-model', '--model', target, '--certificate', certFile]);
    assert.equal(strict.code, 1);
    assert.match(strict.stdout, /check enclave failed: signed outside an enclave/);
    const verified = await bastion(['attest', 'verify-model', '--model', target, '--certificate', certFile, '--allow-development']);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(
      verified.stdout,
      new RegExp(`^model ${trainedModelId}: SHA-256 [0-9a-f]{64} matches the certificate, signature verified$`, 'm'),
    );
    assert.match(verified.stdout, /^NOT attested: signed outside an enclave/m);
    const tampered = path.join(work, 'tampered.pt');
    const bytes = fs.readFileSync(target);
    bytes[bytes.length >> 1]! ^= 0x01;
    fs.writeFileSync(tampered, bytes);
    const result = await bastion([
      'attest',
      'verify-model',
      '--model',
      tampered,
      '--certificate',
      certFile,
      '--allow-development',
      '--json',
    ]);
    assert.equal(result.code, 1);
    assert.equal(JSON.parse(result.stdout).failedCheck, 'model-hash');
    // The dataset is in it as a commitment the owner can recompute from the file and the salt only the owner sees.
    const certificate = JSON.parse(fs.readFileSync(certFile, 'utf8'));
    const ownerView = await json(['datasets', 'show', datasetId], { token: owner.token });
    const fileSha = createHash('sha256')
      .update(fs.readFileSync(path.join(work, 'points.csv')))
      .digest();
    const commitment = createHash('sha256').update(Buffer.from(ownerView.commitmentSalt, 'hex')).update(fileSha).digest('hex');
    assert.deepEqual(certificate.statement.datasets, [{ id: datasetId, commitment }]);
    const trainerView = await json(['datasets', 'show', datasetId], { token: scientist.token });
    assert.deepEqual([trainerView.sha256, trainerView.sizeBytes, trainerView.commitmentSalt], [undefined, undefined, undefined]);

    // The owner downloads the dataset as uploaded, named after its id and format by default.
    const back = await json(['datasets', 'download', datasetId], { token: owner.token });
    assert.equal(back.file, path.join(work, `${datasetId}.csv`));
    assert.deepEqual(fs.readFileSync(back.file), fs.readFileSync(path.join(work, 'points.csv')));
  });

  test('evaluate with --epsilon releases a noisy accuracy and charges the dataset; privacy shows both charges', async () => {
    const evaluation = await json(
      ['evaluate', '--model', trainedModelId, '--dataset', datasetId, '--loss', 'cross_entropy', '--epsilon', '0.5'],
      {
        token: scientist.token,
      },
    );
    assert.equal(evaluation.private, true);
    assert.equal(evaluation.epsilon, 0.5);
    assert.equal(evaluation.samples, SAMPLES);
    const exact = await bastion(['evaluate', '--model', trainedModelId, '--dataset', datasetId, '--loss', 'cross_entropy'], {
      token: scientist.token,
    });
    assert.equal(exact.code, 1);
    assert.match(exact.stderr, /does not allow non-private use/);

    const budget = await json(['datasets', 'privacy', datasetId], { token: owner.token });
    assert.deepEqual(
      budget.events.map((e: { source: { kind: string } }) => e.source.kind),
      ['training', 'evaluation'],
    );
    assert.ok(budget.epsilonSpent > 2 && budget.epsilonSpent < 20, String(budget.epsilonSpent));
    assert.equal(budget.epsilonRemaining, budget.privacyLimit - budget.epsilonSpent);
    assert.deepEqual(await json(['evaluations', 'list'], { token: scientist.token }), { items: [] }, 'none in flight');
  });

  test('a second training is cancelled; watching it then exits 1 saying so', async () => {
    // 5000 epochs: it runs far longer than this test.
    const started = await json(['trainings', 'start', ...trainingFlags(5000, 1)], { token: scientist.token });
    assert.ok(['queued', 'running'].includes(started.status));
    const cancelled = await json(['trainings', 'cancel', started.id], { token: scientist.token });
    assert.equal(cancelled.status, 'cancelled');
    const watched = await bastion(['trainings', 'watch', started.id], { token: scientist.token });
    assert.equal(watched.code, 1);
    assert.match(watched.stdout.trimEnd().split('\n').at(-1)!, new RegExp(`^training ${started.id} cancelled at step \\d+/`));
    assert.equal(watched.stderr, `bastion: training ${started.id} cancelled\n`);
    const asJson = await bastion(['trainings', 'watch', started.id, '--json'], { token: owner.token });
    assert.equal(asJson.code, 1);
    assert.equal(JSON.parse(asJson.stdout).status, 'cancelled', '--json: the training as it ended, also for the owner of its dataset');
  });

  test('the owner replaces the dataset policy; the scientist no longer sees it; the audit log lists it', async () => {
    const policy = await json(['datasets', 'policy', datasetId, '--policy', '{"trainers":[]}'], { token: owner.token });
    assert.deepEqual(policy, { trainers: [], allowEvaluation: true, allowNonPrivate: false, release: 'trainer' });
    const hidden = await bastion(['datasets', 'show', datasetId], { token: scientist.token });
    assert.equal(hidden.code, 1);
    assert.match(hidden.stderr, /^bastion: No such resource/);
    const audit = await json(['audit', 'list', '--limit', '1000']);
    assert.ok(
      audit.items.some(
        (e: { action: string; target: { id: string } | null }) => e.action === 'dataset.setPolicy' && e.target?.id === datasetId,
      ),
      'the change is audited',
    );
  });

  test('connection failures name their sources: no token, a refused token, a CA that does not verify', async () => {
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-cli-cwd-'));
    try {
      const none = await bastion(['whoami'], { cwd: elsewhere, env: { BASTION_DATA_DIR: undefined } });
      assert.equal(none.code, 1);
      assert.equal(
        none.stderr.split('\n')[0],
        `bastion: no token: looked for --token, BASTION_TOKEN, .${path.sep}var${path.sep}admin-token; pass --token <token>, set ` +
          `BASTION_TOKEN, or --data-dir <dir> of a server whose admin token you may use`,
      );

      const refused = await bastion(['whoami'], { token: 'bst_wrong-token-value' });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /the server refused the token from BASTION_TOKEN/);
      assert.doesNotMatch(refused.stderr, /bst_wrong-token-value/);

      const other = path.join(elsewhere, 'other.pem');
      fs.writeFileSync(other, (await createSelfSigned(['127.0.0.1'])).cert);
      const untrusted = await bastion(['whoami', '--ca', other], { token: owner.token });
      assert.equal(untrusted.code, 1);
      assert.match(
        untrusted.stderr,
        new RegExp(
          `^bastion: could not verify the server's certificate using CA file ${other} \\(from --ca\\): [A-Z_]+; pass --ca <file> or ` +
            `--data-dir <dir>\\n$`,
        ),
      );
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  test('bastion/client (the package export) is the built client the CLI uses', async () => {
    const { connect, unwrap } = await import('bastion/client');
    const client = connect({ url: server.url, token: scientist.token, ca: path.join(dataDir, 'tls', 'server-cert.pem') }, {});
    const models = unwrap(await client.GET('/v1/models'));
    assert.deepEqual(models.items.map((m) => m.id).sort(), [modelId, trainedModelId].sort());
  });

  test('no token reaches the server log', () => {
    const log = server.rawLog.join('\n');
    for (const token of tokens) assert.ok(!log.includes(token), 'a token is in the server log');
  });
});
