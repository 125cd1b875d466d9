// `bastion datasets …` and `bastion models …`: thin wrappers over the typed client's routes for the two
// kinds of artifact. Files are streamed both ways (uploads from disk, downloads to a partial file).

import fs from 'node:fs';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { type Schemas, unwrap } from '../client/client.js';
import { displayPath } from '../client/connection.js';
import { downloadDataset, downloadModel, uploadDataset, uploadModel } from '../client/transfer.js';
import { BastionError } from '../errors.js';
import {
  addClientOptions,
  type ClientCommandOptions,
  clientFor,
  describe,
  formatBytes,
  number,
  policyText,
  print,
  table,
} from './common.js';
import { byteProgress } from './progress.js';

interface PolicyOptions {
  policy?: string;
  policyFile?: string;
}

const policyOptions = (command: Command, example: string) =>
  command
    .addOption(new Option('--policy <json>', `the policy as JSON, e.g. '${example}'`))
    .addOption(new Option('--policy-file <file>', 'the policy as a JSON file ("-" for stdin)'));

const short = (iso: string) => iso.replace(/\.\d+Z$/, 'Z');

/** Refuses to overwrite a file unless --force; the path it will write. */
function downloadTarget(output: string | undefined, fallback: string, force: boolean | undefined): string {
  const target = path.resolve(output ?? fallback);
  if (fs.existsSync(target) && !force) {
    throw new BastionError('VALIDATION_FAILED', `${displayPath(target)} exists; pass --force to overwrite it, or -o <file>`);
  }
  return target;
}

async function download(
  label: string,
  fetchTo: (target: string, onBytes: ReturnType<typeof byteProgress>['onBytes']) => Promise<number>,
  target: string,
) {
  const progress = byteProgress(label);
  try {
    return await fetchTo(target, progress.onBytes);
  } finally {
    progress.done();
  }
}

const datasetExtension: Record<Schemas['Dataset']['format'], string> = { torchscript: '.pt', safetensors: '.safetensors', csv: '.csv' };

export function addDatasetCommands(program: Command): void {
  const datasets = program.command('datasets').description('datasets: upload, inspect, download, budgets and policies');

  addClientOptions(
    policyOptions(
      datasets
        .command('upload')
        .description('upload a dataset file (TorchScript, safetensors or CSV), streamed from disk; it is checked and sealed')
        .argument('<file>', 'the dataset file')
        .requiredOption('--name <name>', 'display name')
        .option('--description <text>', 'description')
        .addOption(
          new Option('--privacy-limit <epsilon>', 'ε budget of the dataset (required unless a TorchScript file carries one)').argParser(
            number('--privacy-limit'),
          ),
        )
        .addOption(new Option('--delta <delta>', 'δ (default min(1e-5, 1/(10·samples)))').argParser(number('--delta')))
        .addOption(new Option('--format <format>', 'file format (default: detected)').choices(['torchscript', 'safetensors', 'csv']))
        .option('--label-column <name>', 'CSV: the label column (default label, labels, target or y, else the last)')
        .option('--allow-non-private', "allow trainings and evaluations without DP (the policy's allowNonPrivate)"),
      '{"trainers":["<principal id>"],"release":"approval"}',
    ),
  ).action(
    async (
      file: string,
      options: ClientCommandOptions &
        PolicyOptions & {
          name: string;
          description?: string;
          privacyLimit?: number;
          delta?: number;
          format?: 'torchscript' | 'safetensors' | 'csv';
          labelColumn?: string;
          allowNonPrivate?: boolean;
        },
    ) => {
      const client = clientFor(options);
      const policy = await policyText(options);
      const progress = byteProgress(`uploading ${path.basename(file)}`);
      let dataset: Schemas['Dataset'];
      try {
        dataset = await uploadDataset(
          client,
          file,
          {
            name: options.name,
            description: options.description,
            format: options.format,
            privacyLimit: options.privacyLimit,
            delta: options.delta,
            labelColumn: options.labelColumn,
            allowNonPrivate: options.allowNonPrivate,
            policy,
          },
          progress.onBytes,
        );
      } finally {
        progress.done();
      }
      print(
        options,
        dataset,
        () =>
          `uploaded dataset ${dataset.name} (${dataset.id}): ${dataset.sampleCount} samples, ` +
          `ε limit ${dataset.privacyLimit}, δ ${dataset.delta}`,
      );
    },
  );

  addClientOptions(datasets.command('list').description('list the datasets you may see')).action(async (options: ClientCommandOptions) => {
    const list = unwrap(await clientFor(options).GET('/v1/datasets'));
    print(options, list, () =>
      table(
        list.items.map((d) => ({
          id: d.id,
          name: d.name,
          format: d.format,
          samples: String(d.sampleCount),
          epsilon: String(d.privacyLimit),
          size: d.sizeBytes === undefined ? '-' : formatBytes(d.sizeBytes),
          created: short(d.createdAt),
        })),
        ['id', 'name', 'format', 'samples', 'epsilon', 'size', 'created'],
      ),
    );
  });

  addClientOptions(datasets.command('show').description('show one dataset').argument('<id>', 'dataset id')).action(
    async (id: string, options: ClientCommandOptions) => {
      const dataset = unwrap(await clientFor(options).GET('/v1/datasets/{id}', { params: { path: { id } } }));
      print(options, dataset, () => describe(dataset));
    },
  );

  addClientOptions(
    datasets
      .command('download')
      .description('download the dataset file as uploaded (owner only), streamed to a file')
      .argument('<id>', 'dataset id')
      .option('-o, --output <file>', 'where to write it (default <id> with the format’s extension)')
      .option('--force', 'overwrite the file if it exists'),
  ).action(async (id: string, options: ClientCommandOptions & { output?: string; force?: boolean }) => {
    const client = clientFor(options);
    let fallback = id;
    if (options.output === undefined) {
      const dataset = unwrap(await client.GET('/v1/datasets/{id}', { params: { path: { id } } }));
      fallback = `${id}${datasetExtension[dataset.format]}`;
    }
    const target = downloadTarget(options.output, fallback, options.force);
    const sizeBytes = await download(`downloading ${id}`, (to, onBytes) => downloadDataset(client, id, to, onBytes), target);
    print(options, { id, file: target, sizeBytes }, () => `saved dataset ${id} to ${displayPath(target)} (${formatBytes(sizeBytes)})`);
  });

  addClientOptions(
    datasets.command('delete').description('delete a dataset and its sealed files (owner only)').argument('<id>', 'dataset id'),
  ).action(async (id: string, options: ClientCommandOptions) => {
    unwrap(await clientFor(options).DELETE('/v1/datasets/{id}', { params: { path: { id } } }));
    print(options, { id, deleted: true }, () => `deleted dataset ${id}`);
  });

  addClientOptions(
    datasets
      .command('privacy')
      .description('the privacy budget: limit, spent, remaining and the releases charged')
      .argument('<id>', 'dataset id'),
  ).action(async (id: string, options: ClientCommandOptions) => {
    const budget = unwrap(await clientFor(options).GET('/v1/datasets/{id}/privacy', { params: { path: { id } } }));
    print(options, budget, () => {
      const head =
        `dataset ${id}: ε spent ${budget.epsilonSpent} of ${budget.privacyLimit} ` +
        `(remaining ${budget.epsilonRemaining}), δ ${budget.delta}, ${budget.accountant}`;
      const rows = budget.events.map((e) => ({
        charged: short(e.createdAt),
        source: `${e.source.kind} ${e.source.id}`,
        principal: e.principalId ?? '',
      }));
      return rows.length ? `${head}\n${table(rows, ['charged', 'source', 'principal'])}` : head;
    });
  });

  addClientOptions(
    policyOptions(
      datasets
        .command('policy')
        .description('show the policy, or replace it with --policy/--policy-file (owner only; omitted fields take their defaults)')
        .argument('<id>', 'dataset id'),
      '{"trainers":["<principal id>"],"allowEvaluation":true}',
    ),
  ).action(async (id: string, options: ClientCommandOptions & PolicyOptions) => {
    const client = clientFor(options);
    const policy = await policyText(options);
    if (policy === undefined) {
      const dataset = unwrap(await client.GET('/v1/datasets/{id}', { params: { path: { id } } }));
      print(options, dataset.policy, () => describe(dataset.policy));
      return;
    }
    const dataset = unwrap(
      await client.PUT('/v1/datasets/{id}/policy', { params: { path: { id } }, body: JSON.parse(policy) as Schemas['DatasetPolicyInput'] }),
    );
    print(options, dataset.policy, () => `replaced the policy of dataset ${id}:\n${describe(dataset.policy)}`);
  });
}

export function addModelCommands(program: Command): void {
  const models = program.command('models').description('TorchScript models: upload, inspect, download, policies and release approvals');

  addClientOptions(
    policyOptions(
      models
        .command('upload')
        .description('upload a TorchScript model, streamed from disk; it is checked and sealed')
        .argument('<file>', 'the TorchScript file (torch.jit.save)')
        .requiredOption('--name <name>', 'display name')
        .option('--description <text>', 'description'),
      '{"readers":["<principal id>"]}',
    ),
  ).action(async (file: string, options: ClientCommandOptions & PolicyOptions & { name: string; description?: string }) => {
    const client = clientFor(options);
    const policy = await policyText(options);
    const progress = byteProgress(`uploading ${path.basename(file)}`);
    let model: Schemas['Model'];
    try {
      model = await uploadModel(client, file, { name: options.name, description: options.description, policy }, progress.onBytes);
    } finally {
      progress.done();
    }
    print(options, model, () => `uploaded model ${model.name} (${model.id}): ${model.check.parameterCount} parameters`);
  });

  addClientOptions(models.command('list').description('list the models you may see')).action(async (options: ClientCommandOptions) => {
    const list = unwrap(await clientFor(options).GET('/v1/models'));
    print(options, list, () =>
      table(
        list.items.map((m) => ({
          id: m.id,
          name: m.name,
          parameters: String(m.check.parameterCount),
          release: m.release,
          trained: m.lineage ? `by ${m.lineage.trainingId}` : '',
          created: short(m.createdAt),
        })),
        ['id', 'name', 'parameters', 'release', 'trained', 'created'],
      ),
    );
  });

  addClientOptions(
    models.command('show').description('show one model: its check, lineage and release').argument('<id>', 'model id'),
  ).action(async (id: string, options: ClientCommandOptions) => {
    const model = unwrap(await clientFor(options).GET('/v1/models/{id}', { params: { path: { id } } }));
    print(options, model, () => describe(model));
  });

  addClientOptions(
    models
      .command('download')
      .description('download the TorchScript file (owner; a trained model once released), streamed to a file')
      .argument('<id>', 'model id')
      .option('-o, --output <file>', 'where to write it (default <id>.pt)')
      .option('--force', 'overwrite the file if it exists'),
  ).action(async (id: string, options: ClientCommandOptions & { output?: string; force?: boolean }) => {
    const client = clientFor(options);
    const target = downloadTarget(options.output, `${id}.pt`, options.force);
    const sizeBytes = await download(`downloading ${id}`, (to, onBytes) => downloadModel(client, id, to, onBytes), target);
    print(options, { id, file: target, sizeBytes }, () => `saved model ${id} to ${displayPath(target)} (${formatBytes(sizeBytes)})`);
  });

  addClientOptions(
    models
      .command('certificate')
      .description("the trained model's signed training certificate (JSON), for bastion attest verify-model")
      .argument('<id>', 'model id')
      .option('-o, --output <file>', 'write it to this file instead of standard output')
      .option('--force', 'overwrite the file if it exists'),
  ).action(async (id: string, options: ClientCommandOptions & { output?: string; force?: boolean }) => {
    const certificate = unwrap(await clientFor(options).GET('/v1/models/{id}/certificate', { params: { path: { id } } }));
    const text = `${JSON.stringify(certificate, null, 2)}\n`;
    if (options.output === undefined) {
      process.stdout.write(text);
      return;
    }
    const target = downloadTarget(options.output, options.output, options.force);
    fs.writeFileSync(target, text);
    const { statement } = certificate;
    print(
      options,
      { id, file: target, enclave: statement.enclave },
      () =>
        `saved the training certificate ` +
        `of model ${id} to ${displayPath(target)} (${statement.enclave ? 'signed in an enclave' : 'signed by the development key, not attested'})`,
    );
  });

  addClientOptions(
    models.command('delete').description('delete a model and its sealed file (owner only)').argument('<id>', 'model id'),
  ).action(async (id: string, options: ClientCommandOptions) => {
    unwrap(await clientFor(options).DELETE('/v1/models/{id}', { params: { path: { id } } }));
    print(options, { id, deleted: true }, () => `deleted model ${id}`);
  });

  addClientOptions(
    policyOptions(
      models
        .command('policy')
        .description('show the policy, or replace it with --policy/--policy-file (owner only)')
        .argument('<id>', 'model id'),
      '{"readers":["<principal id>"]}',
    ),
  ).action(async (id: string, options: ClientCommandOptions & PolicyOptions) => {
    const client = clientFor(options);
    const policy = await policyText(options);
    if (policy === undefined) {
      const model = unwrap(await client.GET('/v1/models/{id}', { params: { path: { id } } }));
      if (model.policy === undefined) throw new BastionError('FORBIDDEN', `Only the owner of model ${id} sees its policy`);
      print(options, model.policy, () => describe(model.policy));
      return;
    }
    const model = unwrap(
      await client.PUT('/v1/models/{id}/policy', { params: { path: { id } }, body: JSON.parse(policy) as Schemas['ModelPolicyInput'] }),
    );
    print(options, model.policy ?? null, () => `replaced the policy of model ${id}:\n${describe(model.policy)}`);
  });

  const approvalsText = (a: Schemas['ModelApprovals']) => {
    const rows = a.approvals.map((x) => ({
      approver: x.approverId,
      datasets: x.datasetIds.join(','),
      decision: x.decision ?? 'pending',
      reason: x.reason ?? '',
      decided: x.decidedAt ? short(x.decidedAt) : '',
    }));
    const head = `model ${a.modelId}: ${a.release}`;
    return rows.length
      ? `${head}\n${table(rows, ['approver', 'datasets', 'decision', 'reason', 'decided'])}`
      : `${head} (no approval needed)`;
  };

  addClientOptions(
    models.command('approvals').description('the release approvals a trained model needs: given and pending').argument('<id>', 'model id'),
  ).action(async (id: string, options: ClientCommandOptions) => {
    const approvals = unwrap(await clientFor(options).GET('/v1/models/{id}/approvals', { params: { path: { id } } }));
    print(options, approvals, () => approvalsText(approvals));
  });

  for (const decision of ['approve', 'reject'] as const) {
    addClientOptions(
      models
        .command(decision)
        .description(`${decision} the release of a trained model, as the owner of its datasets (final)`)
        .argument('<id>', 'model id')
        .option('--reason <text>', 'why (kept with the decision)'),
    ).action(async (id: string, options: ClientCommandOptions & { reason?: string }) => {
      const body = { decision, ...(options.reason !== undefined ? { reason: options.reason } : {}) };
      const approvals = unwrap(await clientFor(options).POST('/v1/models/{id}/approvals', { params: { path: { id } }, body }));
      print(options, approvals, () => approvalsText(approvals));
    });
  }
}
