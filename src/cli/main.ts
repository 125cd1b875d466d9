// The `bastion` command: `serve` starts the server; the other commands are clients of its HTTP API
// (through bastion/client, src/client/), except `privacy` (local math) and `audit verify` (a data folder).
// Every command that prints data takes --json and then prints exactly one JSON value. The commands for
// datasets and models are in artifacts.ts, those for trainings and evaluations in trainings.ts.

import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { ApiError, unwrap } from '../client/client.js';
import { ConnectionError } from '../client/connection.js';
import { dataLayout, loadConfig } from '../config.js';
import { mintToken, tokenVerifier } from '../governance/tokens.js';
import { createAccountant } from '../privacy/accountant.js';
import { calibrateNoiseMultiplier } from '../privacy/calibration.js';
import { addServeOptions, serveFlagsFrom } from '../serve-options.js';
import { type AccountantName, DEFAULT_ACCOUNTANT } from '../vocabulary.js';
import { addDatasetCommands, addModelCommands } from './artifacts.js';
import { addAttestCommands } from './attest.js';
import { addVerifyModelCommand } from './attest-model.js';
import {
  addClientOptions,
  type ClientCommandOptions as ClientOptionValues,
  clientFor as client,
  describe,
  number,
  type Output,
  print,
  table,
} from './common.js';
import { addEvaluationCommands, addTrainingCommands } from './trainings.js';

export function buildProgram(): Command {
  const program = new Command('bastion')
    .description('Bastion: confidential DP training server')
    .showHelpAfterError()
    .configureOutput({ outputError: (text, write) => write(text) });

  addServeOptions(program.command('serve').description('start the server (HTTPS on 127.0.0.1:8443 by default)')).action(
    async (options: Record<string, unknown>) => {
      const { runServer } = await import('../main.js');
      await runServer(loadConfig(process.env, serveFlagsFrom(options)));
    },
  );

  const principals = program.command('principals').description('manage principals and their tokens (admin)');
  addClientOptions(
    principals
      .command('create')
      .description('create a principal and print its token (shown once)')
      .requiredOption('--name <name>', 'display name')
      .addOption(new Option('--role <role>', 'role').choices(['member', 'admin']).default('member')),
  ).action(async (options: ClientOptionValues & Output & { name: string; role: 'member' | 'admin' }) => {
    const created = unwrap(await client(options).POST('/v1/principals', { body: { name: options.name, role: options.role } }));
    print(options, created, () => `created ${created.role} ${created.name} (${created.id})\ntoken (shown once): ${created.token}`);
  });
  addClientOptions(principals.command('list').description('list active principals')).action(
    async (options: ClientOptionValues & Output) => {
      const list = unwrap(await client(options).GET('/v1/principals'));
      print(options, list, () =>
        table(
          list.items.map((p) => ({ id: p.id, name: p.name, role: p.role, created: p.createdAt })),
          ['id', 'name', 'role', 'created'],
        ),
      );
    },
  );
  addClientOptions(principals.command('show').description('show one principal').argument('<id>', 'principal id')).action(
    async (id: string, options: ClientOptionValues & Output) => {
      const principal = unwrap(await client(options).GET('/v1/principals/{id}', { params: { path: { id } } }));
      print(options, principal, () => describe(principal));
    },
  );
  addClientOptions(
    principals.command('revoke').description('revoke a principal; its tokens stop working at once').argument('<id>', 'principal id'),
  ).action(async (id: string, options: ClientOptionValues & Output) => {
    unwrap(await client(options).DELETE('/v1/principals/{id}', { params: { path: { id } } }));
    print(options, { id, revoked: true }, () => `revoked ${id}`);
  });
  addClientOptions(program.command('whoami').description('show the principal of the token in use')).action(
    async (options: ClientOptionValues & Output) => {
      const me = unwrap(await client(options).GET('/v1/whoami'));
      print(options, me, () => `${me.name} (${me.role}) ${me.id}`);
    },
  );
  addDatasetCommands(program);
  addModelCommands(program);
  addTrainingCommands(program);
  addEvaluationCommands(program);
  addPrivacyCommands(program);
  addAuditCommands(program);
  addVerifyModelCommand(addAttestCommands(program));
  addTokenCommands(program);
  return program;
}

// A token made on this machine, for a server that must never hold it: the first admin of an enclave.
function addTokenCommands(program: Command): void {
  const token = program.command('token').description('bearer tokens made locally (no server)');
  token
    .command('new')
    .description(
      'make a token and its verifier: give the server the verifier (BASTION_ADMIN_TOKEN_VERIFIER, make -C gramine ' +
        'ADMIN_TOKEN_VERIFIER=…) and keep the token',
    )
    .addOption(new Option('--json', 'print JSON'))
    .action((options: Output) => {
      const { token: value } = mintToken();
      const verifier = tokenVerifier(value)!;
      print(
        options,
        { token: value, verifier },
        () => `token    ${value}\nverifier ${verifier}\nkeep the token secret; the verifier reveals nothing that signs in`,
      );
    });
}

// Planning without a server (data owners, CI pipelines): the same accountants the server uses.
interface PrivacyOptions extends Output {
  sampleRate: number;
  steps: number;
  delta: number;
  accountant: AccountantName;
}

function addPrivacyCommands(program: Command): void {
  const privacy = program.command('privacy').description('privacy accounting for DP-SGD, computed locally (no server)');
  const common = (command: Command) =>
    command
      .requiredOption('--sample-rate <q>', 'Poisson sampling rate q in (0, 1] (expected batch size / samples)', number('--sample-rate'))
      .requiredOption('--steps <n>', 'number of DP-SGD steps', number('--steps', { integer: true }))
      .requiredOption('--delta <d>', 'δ in (0, 1)', number('--delta'))
      .addOption(new Option('--accountant <name>', 'accountant').choices(['rdp', 'pld']).default(DEFAULT_ACCOUNTANT))
      .addOption(new Option('--json', 'print JSON'));
  common(privacy.command('epsilon').description('ε spent by n steps of DP-SGD with noise multiplier σ'))
    .requiredOption('--noise-multiplier <sigma>', 'noise multiplier σ', number('--noise-multiplier'))
    .action((options: PrivacyOptions & { noiseMultiplier: number }) => {
      const accountant = createAccountant(options.accountant);
      const epsilon = accountant.epsilon(
        [{ kind: 'poisson-gaussian', sampleRate: options.sampleRate, noiseMultiplier: options.noiseMultiplier, count: options.steps }],
        { delta: options.delta },
      );
      print(options, { epsilon }, () => `ε = ${epsilon} (δ = ${options.delta}, ${options.accountant})`);
    });
  common(privacy.command('noise').description('the smallest noise multiplier σ with which n steps of DP-SGD spend at most the target ε'))
    .requiredOption('--target-epsilon <eps>', 'ε the training may spend', number('--target-epsilon'))
    .action((options: PrivacyOptions & { targetEpsilon: number }) => {
      const noiseMultiplier = calibrateNoiseMultiplier({
        accountant: createAccountant(options.accountant),
        targetEpsilon: options.targetEpsilon,
        delta: options.delta,
        sampleRate: options.sampleRate,
        steps: options.steps,
      });
      print(
        options,
        { noiseMultiplier },
        () => `σ = ${noiseMultiplier} (ε ≤ ${options.targetEpsilon}, δ = ${options.delta}, ${options.accountant})`,
      );
    });
}

// The audit log: `verify` reads a data folder offline (it needs the audit key, which only the folder's
// key provider holds); `list` is a client of GET /v1/audit.
const AUDIT_EXIT = { intact: 0, broken: 1, unchecked: 2 } as const;

function addAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('verify')
    .description('check the audit log of a data folder, read-only (a running server may go on); exit 0 intact, 1 broken, 2 unchecked')
    .addOption(new Option('--data-dir <dir>', 'data folder').env('BASTION_DATA_DIR').makeOptionMandatory())
    .addOption(new Option('--json', 'print JSON'))
    // Usage errors exit 2, like a folder that cannot be read, so that 1 always means "the log is broken".
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : AUDIT_EXIT.unchecked))
    .action(async (options: Output & { dataDir: string }) => {
      let result: Awaited<ReturnType<typeof verifyDataFolderAudit>>;
      try {
        result = await verifyDataFolderAudit(path.resolve(options.dataDir));
      } catch (err) {
        process.stderr.write(`bastion: audit verify: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = AUDIT_EXIT.unchecked;
        return;
      }
      print(options, result, () => {
        if (result.ok && result.entries === 0) return 'audit log intact: no entries';
        if (result.ok) return `audit log intact: ${result.entries} entries, last seq ${result.lastSeq}`;
        const where = result.firstBadSeq === null ? '' : ` at entry ${result.firstBadSeq}`;
        return `audit log BROKEN${where}: ${result.reason} (${result.entries} entries verified before it)`;
      });
      process.exitCode = result.ok ? AUDIT_EXIT.intact : AUDIT_EXIT.broken;
    });
  addClientOptions(
    audit
      .command('list')
      .description('list audit log entries, oldest first (admins: all; members: their own and those about what they own)')
      .addOption(new Option('--after <seq>', 'entries after this seq (default 0)').argParser(number('--after', { integer: true })))
      .addOption(new Option('--limit <n>', 'most entries to list, 1–1000 (default 100)').argParser(number('--limit', { integer: true }))),
  ).action(async (options: ClientOptionValues & Output & { after?: number; limit?: number }) => {
    const page = unwrap(await client(options).GET('/v1/audit', { params: { query: { after: options.after, limit: options.limit } } }));
    print(options, page, () => {
      const rows = page.items.map((e) => ({
        seq: String(e.seq),
        time: e.time,
        principal: e.principalId ?? 'server',
        action: e.action,
        target: e.target ? `${e.target.kind} ${e.target.id}` : '',
        outcome: e.outcome,
      }));
      const more = page.next === null ? '' : `\nmore: bastion audit list --after ${page.next}`;
      return table(rows, ['seq', 'time', 'principal', 'action', 'target', 'outcome']) + more;
    });
  });
}

/** Verifies `<dataDir>`'s audit log without migrating or writing to it (a key file is never created). */
async function verifyDataFolderAudit(dataDir: string) {
  // Loaded here, not at the top: the other commands need neither SQLite nor the key provider.
  const [{ openStoreReadOnly }, { AUDIT_LOG_SCHEMA_VERSION }, { openDevKeyProvider, KeyPurpose }, { verifyAuditLog }] = await Promise.all([
    import('../store/db.js'),
    import('../store/audit.js'),
    import('../enclave/keys.js'),
    import('../governance/audit.js'),
  ]);
  const layout = dataLayout(dataDir);
  const store = openStoreReadOnly(dataDir, { minVersion: AUDIT_LOG_SCHEMA_VERSION, needs: 'the audit log' });
  try {
    // openDevKeyProvider would create a missing key, and a new key would only report every entry as forged.
    if (!fs.existsSync(layout.devRootKey)) {
      throw new Error(`No key file ${layout.devRootKey}: the audit key of this data folder cannot be derived`);
    }
    return verifyAuditLog(store, openDevKeyProvider(dataDir).deriveKey(KeyPurpose.AUDIT), layout.auditHighWater);
  } finally {
    store.close();
  }
}

export async function runCli(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof ConnectionError) {
      // Its message names what was tried and what to do; the cause ("fetch failed") adds nothing.
      process.stderr.write(`bastion: ${err.message}\n`);
    } else if (err instanceof ApiError) {
      process.stderr.write(`bastion: ${err.message}\n`);
      for (const e of err.problem?.errors ?? []) process.stderr.write(`  ${e.pointer ?? e.parameter ?? ''} ${e.detail}\n`);
    } else {
      const cause = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : '';
      process.stderr.write(`bastion: ${err instanceof Error ? err.message : String(err)}${cause}\n`);
    }
    process.exitCode = 1;
  }
}
