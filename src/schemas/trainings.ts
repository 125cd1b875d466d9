// Wire shapes of trainings: the request (the same body for POST /v1/trainings and POST
// /v1/trainings/plan) and the plan the server derives from it.
import { Type } from 'typebox';
import { DEFAULT_ACCOUNTANT, LOSSES, OPTIMIZERS } from '../vocabulary.js';
import { ref } from './common.js';

export const LossNameSchema = Type.Enum(LOSSES, { type: 'string' });

export const OptimizerSchema = Type.Object(
  {
    type: Type.Enum(OPTIMIZERS, { type: 'string' }),
    learningRate: Type.Number({ exclusiveMinimum: 0, maximum: 1000 }),
    momentum: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'sgd' })),
    dampening: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'sgd' })),
    nesterov: Type.Optional(Type.Boolean({ description: 'sgd; needs momentum > 0 and dampening 0' })),
    weightDecay: Type.Optional(Type.Number({ minimum: 0, maximum: 10 })),
    // A pair as an array of exactly two: Type.Tuple's `items: [...]` is draft-07 only (not valid OpenAPI 3.1), and the
    // app's Ajv (draft-07) does not know 3.1's prefixItems. Both members share their bounds, so this is the same set.
    betas: Type.Optional(
      Type.Unsafe<[number, number]>(
        Type.Array(Type.Number({ minimum: 0, exclusiveMaximum: 1 }), { minItems: 2, maxItems: 2, description: 'adam, adamw: [β1, β2]' }),
      ),
    ),
    eps: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'adam, adamw' })),
  },
  { additionalProperties: false },
);

export const PrivacySchema = Type.Object(
  {
    targetEpsilon: Type.Number({ exclusiveMinimum: 0, maximum: 1000, description: 'ε this training may spend on each dataset' }),
    maxGradNorm: Type.Number({ exclusiveMinimum: 0, maximum: 1e6, description: 'C: per-sample clipping bound' }),
    clipping: Type.Optional(
      Type.Enum(['flat', 'per-layer'], { type: 'string', description: 'default flat; per-layer gives each layer C/√layers' }),
    ),
    accountant: Type.Optional(
      Type.Enum(['rdp', 'pld'], {
        type: 'string',
        description:
          `calibrates σ; default ${DEFAULT_ACCOUNTANT} (the tighter: the same ε buys less noise). Where PLD would need ` +
          `more than its bounded work (very large ε), RDP calibrates and the plan says so`,
      }),
    ),
  },
  { additionalProperties: false },
);

export const TrainingRequestSchema = Type.Object(
  {
    modelId: Type.String({ format: 'uuid', description: "One of the caller's models" }),
    datasetIds: Type.Array(Type.String({ format: 'uuid' }), {
      minItems: 1,
      maxItems: 32,
      uniqueItems: true,
      description: 'Trained on their union; each ledger is charged',
    }),
    epochs: Type.Number({ exclusiveMinimum: 0, maximum: 10000 }),
    expectedBatchSize: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      description: 'q · N: Poisson sampling rate times the pooled sample count',
    }),
    maxPhysicalBatchSize: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'largest batch one forward sees (memory); default expectedBatchSize' }),
    ),
    loss: LossNameSchema,
    labelSmoothing: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, description: 'cross_entropy only' })),
    optimizer: OptimizerSchema,
    privacy: Type.Optional(PrivacySchema),
    private: Type.Optional(Type.Boolean({ description: 'false: no clipping or noise, only where every dataset allows non-private use' })),
    metricsEpsilon: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 100,
        description:
          'private trainings: the ε that releasing the noisy mean training loss at the end of every epoch adds to the training (the ' +
          'ledger is charged both as one mechanism of ε ≤ targetEpsilon + metricsEpsilon; the model’s own noise is unchanged); 0 ' +
          '(default) releases none. Non-private trainings release the exact mean loss.',
      }),
    ),
    metricsLossBound: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1e6,
        description: 'L: per-sample losses are clamped to [0, L] before the noisy sum (noise ∝ L); default 5; only with metricsEpsilon > 0',
      }),
    ),
  },
  { additionalProperties: false },
);

const DatasetChargeSchema = Type.Object(
  {
    datasetId: Type.String({ format: 'uuid' }),
    privacyLimit: Type.Number(),
    delta: Type.Number(),
    epsilonSpent: Type.Number({ description: 'before this training' }),
    epsilonAfter: Type.Number({ description: 'spent once this training and its metrics are composed in' }),
    epsilonRemainingAfter: Type.Number(),
    allowed: Type.Boolean(),
  },
  { additionalProperties: false },
);

export const ParameterRuleSchema = Type.Object(
  {
    parameter: Type.String({ description: 'the trainable parameter, as named_parameters() names it' }),
    rule: Type.String({
      description:
        'how its per-sample gradients are computed: a rule of its layer ("linear", "conv2d", "embedding", "layer_norm", "lstm", …; ' +
        '"a+b" when tied), or "fallback": the exact path, one sample at a time, which costs about one forward and backward per sample',
    }),
    reason: Type.String({
      description: 'for "fallback", why no rule applies; for a tied parameter, that its contributions are summed; else ""',
    }),
  },
  { $id: 'ParameterRule', title: 'ParameterRule', additionalProperties: false },
);

export const TrainingPlanSchema = Type.Object(
  {
    modelId: Type.String({ format: 'uuid' }),
    datasetIds: Type.Array(Type.String({ format: 'uuid' })),
    private: Type.Boolean(),
    sampleCount: Type.Integer({ description: 'N, pooled over the datasets' }),
    epochs: Type.Number(),
    expectedBatchSize: Type.Integer(),
    maxPhysicalBatchSize: Type.Integer(),
    sampleRate: Type.Number({ description: 'q = expectedBatchSize / N (Poisson); 0 when not private' }),
    steps: Type.Integer(),
    noiseMultiplier: Type.Number({ description: 'σ calibrated to targetEpsilon; 0 when not private' }),
    maxGradNorm: Type.Union([Type.Number(), Type.Null()]),
    clipping: Type.Union([Type.Enum(['flat', 'per-layer'], { type: 'string' }), Type.Null()]),
    accountant: Type.Union([Type.Enum(['rdp', 'pld'], { type: 'string' }), Type.Null()], {
      description: 'the accountant that calibrated σ',
    }),
    delta: Type.Union([Type.Number(), Type.Null()], { description: 'the smallest δ of the datasets: the guarantee holds at each' }),
    epsilon: Type.Union([Type.Number(), Type.Null()], {
      description:
        "the trained model's ε at delta (the training without its metrics), composed as the ledger does: the tighter of PLD and " +
        "RDP, at most the calibrating accountant's figure",
    }),
    epsilonTotal: Type.Union([Type.Number(), Type.Null()], {
      description:
        'ε at delta of what is charged (the training and its metrics as one mechanism), exactly as the ledger records it for a ' +
        'dataset with no history',
    }),
    metrics: Type.Union(
      [
        Type.Object(
          {
            epsilon: Type.Union([Type.Number(), Type.Null()], {
              description: 'what the metrics add: epsilonTotal − epsilon, at most metricsEpsilon; null when exact (non-private)',
            }),
            noiseMultiplier: Type.Number({
              description: 'σ_m: the noise on each step’s clamped loss sum is σ_m · lossBound; 0 when exact',
            }),
            lossBound: Type.Union([Type.Number(), Type.Null()], { description: 'L; null when exact' }),
            releases: Type.Integer({ description: 'one per epoch (the last may be partial)' }),
          },
          { additionalProperties: false },
        ),
        Type.Null(),
      ],
      { description: 'the mean training loss per epoch; null: none is released' },
    ),
    datasets: Type.Array(DatasetChargeSchema),
    allowed: Type.Boolean({ description: 'every dataset budget allows it' }),
    gradients: Type.Optional(
      Type.Union([Type.Array(ref(ParameterRuleSchema)), Type.Null()], {
        description:
          "for a private training, how the DP engine computes each trainable parameter's per-sample gradients, as the pre-flight " +
          "found it on zeros of the datasets' shapes; null when not private; absent from plans made before it was reported",
      }),
    ),
  },
  { $id: 'TrainingPlan', title: 'TrainingPlan', additionalProperties: false },
);

export const DatasetPrivacySchema = Type.Object(
  {
    datasetId: Type.String({ format: 'uuid' }),
    privacyLimit: Type.Number(),
    delta: Type.Number(),
    epsilonSpent: Type.Number({ description: 'composition of every event under the tighter of PLD and RDP' }),
    epsilonRemaining: Type.Number(),
    accountant: Type.Enum(['rdp', 'pld'], { type: 'string' }),
    events: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          event: Type.Object(
            {},
            {
              additionalProperties: true,
              description:
                'poisson-gaussian {sampleRate, noiseMultiplier, count}, gaussian {noiseMultiplier, count} or discrete-gaussian ' +
                '{sigmaSquared, sensitivity, count}',
            },
          ),
          source: Type.Object({ kind: Type.String(), id: Type.String() }, { additionalProperties: false }),
          principalId: Type.Optional(
            Type.Union([Type.String({ format: 'uuid' }), Type.Null()], {
              description: "whose request caused the charge, for the dataset's owner only (null for charges recorded before this was kept)",
            }),
          ),
          createdAt: Type.String({ format: 'date-time' }),
          dropped: Type.Optional(
            Type.Object(
              {
                exception: Type.Integer({
                  minimum: 0,
                  description: "the model's forward, the loss or the backward threw (e.g. a label out of range)",
                }),
                nonFiniteLoss: Type.Integer({ minimum: 0, description: 'the per-sample loss was NaN or infinite' }),
                nonFiniteGradient: Type.Integer({ minimum: 0, description: 'the per-sample gradient (its norm) was NaN or infinite' }),
              },
              {
                additionalProperties: false,
                description:
                  "a training's events, for the dataset's owner only, once the training has ended or stopped: how many of this dataset's " +
                  'samples the private training dropped, and why (each drop changes the clipped sum by at most C, so the guarantee ' +
                  'holds). ' +
                  "Computed from the data, so never shown to the model's author",
              },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { $id: 'DatasetPrivacy', title: 'DatasetPrivacy', additionalProperties: false },
);

export const TrainingMetricSchema = Type.Object(
  {
    epoch: Type.Integer({ minimum: 1 }),
    step: Type.Integer({ minimum: 1, description: 'the epoch’s last step, when it was released' }),
    steps: Type.Integer({ minimum: 1, description: 'steps whose losses it covers' }),
    meanLoss: Type.Number({
      description: 'mean per-sample training loss over the epoch; private: of losses clamped to [0, L], with Gaussian noise',
    }),
    noiseStd: Type.Number({ minimum: 0, description: 'standard deviation of the noise in meanLoss; 0 when exact' }),
  },
  { $id: 'TrainingMetric', title: 'TrainingMetric', additionalProperties: false },
);

export const TrainingStatusSchema = Type.Enum(['queued', 'running', 'succeeded', 'failed', 'cancelled'], { type: 'string' });

const nullableNumber = (description: string) => Type.Union([Type.Number(), Type.Null()], { description });

export const TrainingSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    ownerId: Type.String({ format: 'uuid' }),
    status: TrainingStatusSchema,
    modelId: Type.String({ format: 'uuid', description: 'the source model' }),
    datasetIds: Type.Array(Type.String({ format: 'uuid' })),
    request: TrainingRequestSchema,
    plan: ref(TrainingPlanSchema),
    step: Type.Integer({ minimum: 0, description: 'steps run' }),
    totalSteps: Type.Integer({ minimum: 0 }),
    epoch: Type.Number({
      minimum: 0,
      description: 'epochs run so far (fractional): step · sampleRate for a private training, step · epochs / totalSteps otherwise',
    }),
    epsilonPlanned: nullableNumber(
      "the plan's total ε, metrics included (charged to every dataset when the training was accepted); null when not private",
    ),
    epsilonSpent: nullableNumber('ε of the steps run so far, at the plan’s δ; the ledger holds the whole planned charge'),
    delta: nullableNumber('δ of both ε figures'),
    samplesPerSec: nullableNumber(
      'expected throughput: recent steps per second times the mean batch size the plan fixes (sampleRate · sampleCount for a ' +
        'private training), ' +
        'never a count of the records actually sampled (under Poisson sampling that count is private); the last measured once the ' +
        'job stopped',
    ),
    etaSeconds: nullableNumber('estimated seconds to the end while running: steps left divided by the recent steps per second'),
    checkpointStep: Type.Union([Type.Integer(), Type.Null()], { description: 'step of the latest sealed checkpoint' }),
    metrics: Type.Array(ref(TrainingMetricSchema), { description: 'the per-epoch metrics released so far, oldest first' }),
    error: Type.Union([Type.String(), Type.Null()], { description: 'why the training failed' }),
    resultModelId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], {
      description: 'the trained model (a model artifact of the owner, with lineage), once succeeded',
    }),
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { $id: 'Training', title: 'Training', additionalProperties: false },
);

export const TrainingListSchema = Type.Object({ items: Type.Array(ref(TrainingSchema)) }, { additionalProperties: false });
