// Wire shapes of trainings: the request (the same body for POST /v1/trainings and POST
// /v1/trainings/plan) and the plan the server derives from it.
import { Type, type Static } from 'typebox';

export const LossNameSchema = Type.Enum(['cross_entropy', 'nll', 'mse', 'l1', 'bce_with_logits'], { type: 'string' });

export const OptimizerSchema = Type.Object(
  {
    type: Type.Enum(['sgd', 'adam', 'adamw'], { type: 'string' }),
    learningRate: Type.Number({ exclusiveMinimum: 0, maximum: 1000 }),
    momentum: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'sgd' })),
    dampening: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'sgd' })),
    nesterov: Type.Optional(Type.Boolean({ description: 'sgd; needs momentum > 0 and dampening 0' })),
    weightDecay: Type.Optional(Type.Number({ minimum: 0, maximum: 10 })),
    betas: Type.Optional(Type.Tuple([Type.Number({ minimum: 0, exclusiveMaximum: 1 }), Type.Number({ minimum: 0, exclusiveMaximum: 1 })], { description: 'adam, adamw' })),
    eps: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'adam, adamw' })),
  },
  { additionalProperties: false },
);

export const PrivacySchema = Type.Object(
  {
    targetEpsilon: Type.Number({ exclusiveMinimum: 0, maximum: 1000, description: 'ε this training may spend on each dataset' }),
    maxGradNorm: Type.Number({ exclusiveMinimum: 0, maximum: 1e6, description: 'C: per-sample clipping bound' }),
    clipping: Type.Optional(Type.Enum(['flat', 'per-layer'], { type: 'string', description: 'default flat; per-layer gives each layer C/√layers' })),
    accountant: Type.Optional(Type.Enum(['rdp', 'pld'], { type: 'string', description: 'calibrates σ; default rdp' })),
  },
  { additionalProperties: false },
);

export const TrainingRequestSchema = Type.Object(
  {
    modelId: Type.String({ format: 'uuid', description: "One of the caller's models" }),
    datasetIds: Type.Array(Type.String({ format: 'uuid' }), { minItems: 1, maxItems: 32, uniqueItems: true, description: 'Trained on their union; each ledger is charged' }),
    epochs: Type.Number({ exclusiveMinimum: 0, maximum: 10000 }),
    expectedBatchSize: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'q · N: Poisson sampling rate times the pooled sample count' }),
    maxPhysicalBatchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'largest batch one forward sees (memory); default expectedBatchSize' })),
    loss: LossNameSchema,
    labelSmoothing: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, description: 'cross_entropy only' })),
    optimizer: OptimizerSchema,
    privacy: Type.Optional(PrivacySchema),
    private: Type.Optional(Type.Boolean({ description: 'false: no clipping or noise, only where every dataset allows non-private use' })),
    metricsEpsilon: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'ε for the noisy mean training loss per epoch; 0 (default) releases none' })),
  },
  { additionalProperties: false },
);
export type TrainingRequest = Static<typeof TrainingRequestSchema>;

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
    accountant: Type.Union([Type.Enum(['rdp', 'pld'], { type: 'string' }), Type.Null()]),
    delta: Type.Union([Type.Number(), Type.Null()], { description: 'the smallest δ of the datasets: the guarantee holds at each' }),
    epsilon: Type.Union([Type.Number(), Type.Null()], { description: "this training's ε at delta under the accountant" }),
    metrics: Type.Union([
      Type.Object({ epsilon: Type.Number(), noiseMultiplier: Type.Number(), releases: Type.Integer() }, { additionalProperties: false }),
      Type.Null(),
    ]),
    datasets: Type.Array(DatasetChargeSchema),
    allowed: Type.Boolean({ description: 'every dataset budget allows it' }),
  },
  { $id: 'TrainingPlan', title: 'TrainingPlan', additionalProperties: false },
);
export type TrainingPlanWire = Static<typeof TrainingPlanSchema>;

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
          event: Type.Object({}, { additionalProperties: true, description: 'poisson-gaussian {sampleRate, noiseMultiplier, count} or gaussian {noiseMultiplier, count}' }),
          source: Type.Object({ kind: Type.String(), id: Type.String() }, { additionalProperties: false }),
          createdAt: Type.String({ format: 'date-time' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { $id: 'DatasetPrivacy', title: 'DatasetPrivacy', additionalProperties: false },
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
    plan: Type.Ref('TrainingPlan'),
    step: Type.Integer({ minimum: 0, description: 'steps run' }),
    totalSteps: Type.Integer({ minimum: 0 }),
    epoch: Type.Number({ minimum: 0, description: 'epochs run so far (fractional): step · epochs / totalSteps' }),
    epsilonPlanned: nullableNumber("the plan's ε (charged to every dataset when the training was accepted); null when not private"),
    epsilonSpent: nullableNumber('ε of the steps run so far, at the plan’s δ; the ledger holds the whole planned charge'),
    delta: nullableNumber('δ of both ε figures'),
    samplesPerSec: nullableNumber('recent throughput while running; the last measured afterwards'),
    etaSeconds: nullableNumber('estimated seconds to the end, while running'),
    checkpointStep: Type.Union([Type.Integer(), Type.Null()], { description: 'step of the latest sealed checkpoint' }),
    error: Type.Union([Type.String(), Type.Null()], { description: 'why the training failed' }),
    resultModelId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'the trained model (a model artifact of the owner, with lineage), once succeeded' }),
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { $id: 'Training', title: 'Training', additionalProperties: false },
);

export const TrainingListSchema = Type.Object({ items: Type.Array(Type.Ref('Training')) }, { additionalProperties: false });
