// `bastion trainings …`, `bastion evaluate` and `bastion evaluations …`: plan, start, watch and stop
// DP-SGD trainings, and evaluate models. A training request comes from a JSON file (or stdin) and/or
// flags for its common fields; a flag wins over the file. Watching a training exits 0 when it
// succeeded and 1 when it failed or was cancelled.
import { type Command, Option } from 'commander';
import { type BastionClient, type Schemas, unwrap } from '../client/client.js';
import { BastionError } from '../errors.js';
import type { paths } from '../generated/openapi.js';
import { LOSSES, OPTIMIZERS } from '../vocabulary.js';
import { addClientOptions, type ClientCommandOptions, clientFor, describe, number, parseJson, print, readInput, table } from './common.js';
import { epsilonText, formatDuration, progressMode, watchTraining } from './progress.js';

export type TrainingRequest = paths['/v1/trainings']['post']['requestBody']['content']['application/json'];
type Loss = TrainingRequest['loss'];
type Training = Schemas['Training'];

export interface TrainingRequestFlags {
  request?: string;
  model?: string;
  dataset?: string[];
  epochs?: number;
  batchSize?: number;
  physicalBatchSize?: number;
  epsilon?: number;
  maxGradNorm?: number;
  lr?: number;
  optimizer?: TrainingRequest['optimizer']['type'];
  loss?: Loss;
  nonPrivate?: boolean;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function addTrainingRequestOptions(command: Command): Command {
  return command
    .option('--request <file>', 'the request as a JSON file ("-" for stdin); the flags below override its fields')
    .option('--model <id>', 'model to train (modelId)')
    .option('--dataset <id>', 'dataset to train on (datasetIds); repeat for several', collect)
    .addOption(new Option('--epochs <n>', 'epochs (may be fractional)').argParser(number('--epochs')))
    .addOption(
      new Option('--batch-size <n>', 'expected batch size q·N (expectedBatchSize)').argParser(number('--batch-size', { integer: true })),
    )
    .addOption(
      new Option('--physical-batch-size <n>', 'largest batch one forward sees (maxPhysicalBatchSize)').argParser(
        number('--physical-batch-size', { integer: true }),
      ),
    )
    .addOption(
      new Option('--epsilon <epsilon>', 'ε the training may spend on each dataset (privacy.targetEpsilon)').argParser(number('--epsilon')),
    )
    .addOption(new Option('--max-grad-norm <c>', 'per-sample clipping bound C (privacy.maxGradNorm)').argParser(number('--max-grad-norm')))
    .addOption(new Option('--lr <rate>', 'learning rate (optimizer.learningRate)').argParser(number('--lr')))
    .addOption(new Option('--optimizer <type>', 'optimizer.type (default sgd)').choices(OPTIMIZERS))
    .addOption(new Option('--loss <loss>', 'loss function').choices(LOSSES))
    .option('--non-private', 'train without DP (private: false; only where every dataset allows it)');
}

/**
 * The request body from --request and the flags. Fields neither gives are left out, so the server's
 * 400 names each missing one (with its JSON pointer) rather than a guess of this client's.
 */
export async function trainingRequest(flags: TrainingRequestFlags): Promise<TrainingRequest> {
  let base: Record<string, unknown> = {};
  if (flags.request !== undefined) {
    const from = flags.request === '-' ? '--request - (stdin)' : `--request ${flags.request}`;
    const value = parseJson(await readInput(flags.request), from);
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new BastionError('VALIDATION_FAILED', `Expected a JSON object for ${from}`);
    base = value as Record<string, unknown>;
  }
  const request: Record<string, unknown> = { ...base };
  const set = (key: string, value: unknown) => {
    if (value !== undefined) request[key] = value;
  };
  set('modelId', flags.model);
  if (flags.dataset && flags.dataset.length > 0) request.datasetIds = flags.dataset;
  set('epochs', flags.epochs);
  set('expectedBatchSize', flags.batchSize);
  set('maxPhysicalBatchSize', flags.physicalBatchSize);
  set('loss', flags.loss);
  const baseOptimizer = (typeof base.optimizer === 'object' && base.optimizer !== null ? base.optimizer : undefined) as
    | Record<string, unknown>
    | undefined;
  if (baseOptimizer || flags.lr !== undefined || flags.optimizer !== undefined) {
    request.optimizer = {
      ...baseOptimizer,
      type: flags.optimizer ?? baseOptimizer?.type ?? 'sgd',
      ...(flags.lr !== undefined ? { learningRate: flags.lr } : {}),
    };
  }
  if (flags.nonPrivate) {
    request.private = false;
    delete request.privacy;
  } else if (flags.epsilon !== undefined || flags.maxGradNorm !== undefined) {
    const basePrivacy = (typeof base.privacy === 'object' && base.privacy !== null ? base.privacy : {}) as Record<string, unknown>;
    request.privacy = {
      ...basePrivacy,
      ...(flags.epsilon !== undefined ? { targetEpsilon: flags.epsilon } : {}),
      ...(flags.maxGradNorm !== undefined ? { maxGradNorm: flags.maxGradNorm } : {}),
    };
  }
  return request as unknown as TrainingRequest;
}

function planText(plan: Schemas['TrainingPlan']): string {
  const privacy = plan.private
    ? `σ ${plan.noiseMultiplier} (C ${plan.maxGradNorm}, ${plan.clipping}, ${plan.accountant}): ε ${plan.epsilonTotal ?? plan.epsilon} at δ ${plan.delta}`
    : 'non-private: no clipping, no noise';
  const rows = plan.datasets.map((d) => ({
    dataset: d.datasetId,
    spent: String(d.epsilonSpent),
    after: String(d.epsilonAfter),
    limit: String(d.privacyLimit),
    remaining: String(d.epsilonRemainingAfter),
    allowed: d.allowed ? 'yes' : 'NO',
  }));
  const exact = (plan.gradients ?? []).filter((g) => g.rule === 'fallback');
  const gradients = plan.gradients
    ? [
        `per-sample gradients: ${plan.gradients.length - exact.length} of ${plan.gradients.length} parameters by rule` +
          (exact.length ? `; one sample at a time (slow): ${exact.map((g) => `${g.parameter} (${g.reason})`).join(', ')}` : ''),
      ]
    : [];
  return [
    `${plan.allowed ? 'allowed' : 'NOT ALLOWED'}: ${plan.steps} steps over ${plan.sampleCount} ` +
      `samples (q ${plan.sampleRate}, batch ${plan.expectedBatchSize}, ${plan.epochs} epochs)`,
    privacy,
    ...gradients,
    table(rows, ['dataset', 'spent', 'after', 'limit', 'remaining', 'allowed']),
  ].join('\n');
}

function trainingLine(t: Training): string {
  return `training ${t.id} ${t.status}: step ${t.step}/${t.totalSteps}, ${epsilonText(t)}${t.error ? `; ${t.error}` : ''}`;
}

/** Watches to the end; prints the final training under --json; exit code 1 unless it succeeded. */
async function watchToEnd(client: BastionClient, id: string, options: ClientCommandOptions): Promise<void> {
  const output = progressMode(options.json);
  const final = await watchTraining(client, id, output);
  // Without --json the last line (plain, or logged above the bar) already said how it ended.
  if (options.json) print(options, final, () => '');
  if (final.status !== 'succeeded') {
    process.stderr.write(`bastion: training ${id} ${final.status}${final.error ? `: ${final.error}` : ''}\n`);
    process.exitCode = 1;
  }
}

export function addTrainingCommands(program: Command): void {
  const trainings = program.command('trainings').description('DP-SGD trainings: plan, start, watch, cancel');

  addClientOptions(
    addTrainingRequestOptions(
      trainings.command('plan').description('dry run: σ, steps and what each dataset budget would show; charges nothing'),
    ),
  ).action(async (options: ClientCommandOptions & TrainingRequestFlags) => {
    const body = await trainingRequest(options);
    const plan = unwrap(await clientFor(options).POST('/v1/trainings/plan', { body }));
    print(options, plan, () => planText(plan));
  });

  addClientOptions(
    addTrainingRequestOptions(
      trainings
        .command('start')
        .description('start a training (the datasets are charged the whole plan at once); --watch follows it to the end')
        .option('--watch', 'follow its progress until it ends; exit 1 unless it succeeds'),
    ),
  ).action(async (options: ClientCommandOptions & TrainingRequestFlags & { watch?: boolean }) => {
    const body = await trainingRequest(options);
    const client = clientFor(options);
    const created = unwrap(await client.POST('/v1/trainings', { body }));
    if (!options.watch) {
      print(options, created, () => `started ${trainingLine(created)}\nwatch it: bastion trainings watch ${created.id}`);
      return;
    }
    if (!options.json)
      process.stdout.write(`started training ${created.id}: ${created.totalSteps} steps, σ ${created.plan.noiseMultiplier}\n`);
    await watchToEnd(client, created.id, options);
  });

  addClientOptions(trainings.command('list').description('list the trainings you may see')).action(
    async (options: ClientCommandOptions) => {
      const list = unwrap(await clientFor(options).GET('/v1/trainings'));
      print(options, list, () =>
        table(
          list.items.map((t) => ({
            id: t.id,
            status: t.status,
            step: `${t.step}/${t.totalSteps}`,
            epsilon: t.epsilonPlanned === null ? 'non-private' : `${t.epsilonSpent ?? 0}/${t.epsilonPlanned}`,
            model: t.modelId,
            result: t.resultModelId ?? '',
            created: t.createdAt.replace(/\.\d+Z$/, 'Z'),
          })),
          ['id', 'status', 'step', 'epsilon', 'model', 'result', 'created'],
        ),
      );
    },
  );

  addClientOptions(
    trainings.command('show').description('show one training: status, plan, progress, metrics, result').argument('<id>', 'training id'),
  ).action(async (id: string, options: ClientCommandOptions) => {
    const training = unwrap(await clientFor(options).GET('/v1/trainings/{id}', { params: { path: { id } } }));
    print(options, training, () => describe(training));
  });

  addClientOptions(
    trainings.command('cancel').description('cancel a queued or running training (its charge stands)').argument('<id>', 'training id'),
  ).action(async (id: string, options: ClientCommandOptions) => {
    const training = unwrap(await clientFor(options).POST('/v1/trainings/{id}/cancel', { params: { path: { id } } }));
    print(options, training, () => trainingLine(training));
  });

  addClientOptions(
    trainings
      .command('watch')
      .description(
        'follow a training until it ends: a bar on a terminal, else a line per state change and at most one per second of progress; ' +
          'exit 1 unless it succeeds',
      )
      .argument('<id>', 'training id'),
  ).action(async (id: string, options: ClientCommandOptions) => {
    await watchToEnd(clientFor(options), id, options);
  });
}

function evaluationText(e: Schemas['Evaluation']): string {
  const accuracy = e.accuracy === null ? 'accuracy withheld' : `accuracy ${e.accuracy}`;
  const how = e.private ? `DP: noise std ${e.accuracyNoiseStd}, ε ${e.epsilon}, δ ${e.delta}` : 'exact (non-private)';
  const loss = e.loss === null ? '' : `, loss ${e.loss}`;
  return `evaluation ${e.id}: ${accuracy}${loss} on ${e.samples} samples (${how})`;
}

export function addEvaluationCommands(program: Command): void {
  addClientOptions(
    program
      .command('evaluate')
      .description(
        'evaluate a model on a dataset: accuracy with DP noise for --epsilon (charged to the dataset), or exact where its owner allows',
      )
      .requiredOption('--model <id>', 'model id')
      .requiredOption('--dataset <id>', 'dataset id')
      .addOption(new Option('--loss <loss>', 'loss function').choices(LOSSES).makeOptionMandatory())
      .addOption(
        new Option('--epsilon <epsilon>', 'ε to spend on a DP release of the accuracy; absent: exact').argParser(number('--epsilon')),
      ),
  ).action(async (options: ClientCommandOptions & { model: string; dataset: string; loss: Loss; epsilon?: number }) => {
    const body = {
      modelId: options.model,
      datasetId: options.dataset,
      loss: options.loss,
      ...(options.epsilon !== undefined ? { epsilon: options.epsilon } : {}),
    };
    const evaluation = unwrap(await clientFor(options).POST('/v1/evaluations', { body }));
    print(options, evaluation, () => evaluationText(evaluation));
  });

  const evaluations = program.command('evaluations').description('evaluations in flight');
  addClientOptions(evaluations.command('list').description('list the evaluations in flight you may see')).action(
    async (options: ClientCommandOptions) => {
      const list = unwrap(await clientFor(options).GET('/v1/evaluations'));
      print(options, list, () =>
        table(
          list.items.map((e) => ({
            id: e.id,
            status: e.status,
            model: e.modelId,
            dataset: e.datasetId,
            epsilon: e.epsilon === null ? 'exact' : String(e.epsilon),
            owner: e.ownerId,
            running: formatDuration((Date.now() - Date.parse(e.startedAt)) / 1000),
          })),
          ['id', 'status', 'model', 'dataset', 'epsilon', 'owner', 'running'],
        ),
      );
    },
  );
  addClientOptions(
    evaluations
      .command('cancel')
      .description('cancel an evaluation in flight (its charge stands, nothing is released)')
      .argument('<id>', 'evaluation id'),
  ).action(async (id: string, options: ClientCommandOptions) => {
    const run = unwrap(await clientFor(options).POST('/v1/evaluations/{id}/cancel', { params: { path: { id } } }));
    print(options, run, () => `evaluation ${run.id} ${run.status}`);
  });
}
