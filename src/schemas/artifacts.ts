// Wire shapes of models and datasets, their lineage and release approvals, and the multipart form
// fields of their uploads (the policies: policies.ts).
import { type Static, Type } from 'typebox';
import { DTYPES, LOSSES } from '../vocabulary.js';
import { nullable, PRINTABLE_TEXT_PATTERN, ref } from './common.js';
import { DatasetPolicySchema, ModelPolicySchema } from './policies.js';

const TensorInfoSchema = Type.Object(
  {
    name: Type.String(),
    shape: Type.Array(Type.Integer({ minimum: 0 })),
    dtype: Type.String({
      description: `safetensors dtype name (${DTYPES.join(', ')}); libtorch's name for other types, e.g. ComplexFloat`,
    }),
    requiresGrad: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const ModelLineageSchema = Type.Object(
  {
    trainingId: Type.String({ format: 'uuid' }),
    sourceModelId: Type.String({ format: 'uuid' }),
    datasetIds: Type.Array(Type.String({ format: 'uuid' })),
    private: Type.Boolean(),
    noiseMultiplier: Type.Number({ description: 'σ; 0 when not private' }),
    sampleRate: Type.Number({ description: 'q; 0 when not private' }),
    steps: Type.Integer(),
    epochs: Type.Number(),
    expectedBatchSize: Type.Integer(),
    epsilon: nullable(Type.Number({ description: 'ε of the training at delta; null when not private' })),
    delta: nullable(Type.Number()),
    accountant: nullable(Type.Enum(['rdp', 'pld'], { type: 'string' })),
    maxGradNorm: nullable(Type.Number()),
    clipping: nullable(Type.Enum(['flat', 'per-layer'], { type: 'string' })),
    loss: Type.Enum(LOSSES, { type: 'string' }),
    optimizer: Type.Object({}, { additionalProperties: true, description: 'type, learningRate and the parameters given' }),
    codeVersion: Type.String({ description: 'version of the server code that trained it' }),
  },
  { additionalProperties: false, description: 'Where a trained model came from (present on models produced by a training)' },
);

const releaseStateSchema = Type.Enum(['released', 'pending', 'rejected'], {
  type: 'string',
  description:
    'Whether the model may leave: released (every approval its datasets asked for was given, or none was asked), pending, or ' +
    'rejected (final). ' +
    'An unreleased model cannot be downloaded or trained further, and is evaluated only with DP',
});

export const ModelApprovalsSchema = Type.Object(
  {
    modelId: Type.String({ format: 'uuid' }),
    release: releaseStateSchema,
    approvals: Type.Array(
      Type.Object(
        {
          approverId: Type.String({ format: 'uuid', description: 'Owner of datasets whose policy asks for approval' }),
          datasetIds: Type.Array(Type.String({ format: 'uuid' })),
          decision: Type.Union([Type.Enum(['approve', 'reject'], { type: 'string' }), Type.Null()], { description: 'null while pending' }),
          reason: Type.Union([Type.String(), Type.Null()]),
          decidedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
        },
        { additionalProperties: false },
      ),
      { description: 'Every approval the release needs; empty when none of its datasets asks for one' },
    ),
  },
  { $id: 'ModelApprovals', title: 'ModelApprovals', additionalProperties: false },
);

export const ReleaseDecisionBody = Type.Object(
  {
    decision: Type.Enum(['approve', 'reject'], { type: 'string', description: 'A decision is final' }),
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);

export const ModelSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    ownerId: Type.String({ format: 'uuid' }),
    name: Type.String(),
    description: Type.String(),
    format: Type.Literal('torchscript'),
    sha256: Type.String({ description: 'SHA-256 of the uploaded file, hex' }),
    sizeBytes: Type.Integer({ minimum: 0 }),
    createdAt: Type.String({ format: 'date-time' }),
    check: Type.Object(
      {
        methods: Type.Array(Type.String()),
        parameters: Type.Array(TensorInfoSchema),
        buffers: Type.Array(TensorInfoSchema),
        parameterCount: Type.Integer({ minimum: 0 }),
        operators: Type.Array(Type.String(), { description: 'Operator kinds of the inlined forward graph' }),
        inputRanks: Type.Array(Type.String(), {
          description:
            'Input ranks (the sample dimension included; comma-separated when forward takes several inputs) at which forward was shown ' +
            'to keep samples apart; trainings and evaluations need datasets whose inputs have one of them. Empty: checked before ' +
            'that analysis existed; upload the model again',
        }),
      },
      { additionalProperties: false, description: 'What the model check found' },
    ),
    lineage: Type.Optional(ModelLineageSchema),
    coOwnerIds: Type.Array(Type.String({ format: 'uuid' }), {
      description:
        'Owners of the datasets a trained model was trained on: they see its metadata, lineage and approvals. Empty for an uploaded model',
    }),
    release: releaseStateSchema,
    policy: Type.Optional(ref(ModelPolicySchema, { description: "Who else may use the model; in its owner's view only" })),
  },
  { $id: 'Model', title: 'Model', additionalProperties: false },
);

const CanonicalTensorSchema = Type.Object(
  {
    name: Type.String({ description: 'inputs.<i> or labels' }),
    dtype: Type.Enum(DTYPES, { type: 'string', description: 'safetensors dtype' }),
    shape: Type.Array(Type.Integer({ minimum: 0 }), { description: 'shape[0] is the sample count' }),
  },
  { additionalProperties: false },
);

export const datasetFormatSchema = Type.Enum(['torchscript', 'safetensors', 'csv'], { type: 'string' });

export const DatasetSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    ownerId: Type.String({ format: 'uuid' }),
    name: Type.String(),
    description: Type.String(),
    format: datasetFormatSchema,
    sha256: Type.Optional(
      Type.String({
        description:
          "SHA-256 of the uploaded file, hex; only in the owner's view (a hash lets whoever knows all records but one test guesses " +
          'of the last)',
      }),
    ),
    sizeBytes: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: "Size of the uploaded file; only in the owner's view (a text file's size moves with its values)",
      }),
    ),
    commitmentSalt: Type.Optional(
      Type.String({
        pattern: '^[0-9a-f]{64}$',
        description:
          "Only in the owner's view: the salt of this dataset's commitment in training certificates, SHA-256(salt ‖ SHA-256(file))",
      }),
    ),
    privacyLimit: Type.Number({ description: 'Total ε the owner allows all trainings to spend' }),
    delta: Type.Number({ description: 'δ of every guarantee given on this dataset' }),
    allowNonPrivate: Type.Boolean({ description: "Whether trainings without DP may use it (the policy's allowNonPrivate)" }),
    policy: ref(DatasetPolicySchema),
    sampleCount: Type.Integer({ minimum: 1 }),
    inputs: Type.Array(CanonicalTensorSchema),
    labels: CanonicalTensorSchema,
    labelClasses: Type.Optional(
      Type.Union([Type.Array(Type.Number()), Type.Null()], {
        description: "Distinct integer labels, null for float labels; only in the owner's view",
      }),
    ),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'Dataset', title: 'Dataset', additionalProperties: false },
);

export const ModelListSchema = Type.Object({ items: Type.Array(ref(ModelSchema)) }, { additionalProperties: false });
export const DatasetListSchema = Type.Object({ items: Type.Array(ref(DatasetSchema)) }, { additionalProperties: false });

const nameField = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: PRINTABLE_TEXT_PATTERN,
  description: 'printable text: no control or bidirectional formatting characters',
});
const descriptionField = Type.String({ maxLength: 4000 });

/** Form fields of POST /v1/models (the file part aside). */
export const ModelFieldsSchema = Type.Object(
  {
    name: nameField,
    description: Type.Optional(descriptionField),
    policy: Type.Optional(
      Type.String({
        maxLength: 64 * 1024,
        description: 'The model policy as JSON (ModelPolicyInput), e.g. {"readers":["<principal id>"]}; default: owner only',
      }),
    ),
  },
  { additionalProperties: false },
);
export type ModelFieldsInput = Static<typeof ModelFieldsSchema>;

/** Form fields of POST /v1/datasets (the file part aside). Numbers and booleans arrive as text. */
export const DatasetFieldsSchema = Type.Object(
  {
    name: nameField,
    description: Type.Optional(descriptionField),
    format: Type.Optional(datasetFormatSchema),
    privacyLimit: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, maximum: 1000, description: 'ε; required unless a TorchScript file carries privacy_limit' }),
    ),
    delta: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        exclusiveMaximum: 1,
        description: 'δ; default min(1e-5, 1/(10·samples)); must be below 1/samples',
      }),
    ),
    labelColumn: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'CSV: the label column (default label, labels, target or y, else the last)',
      }),
    ),
    allowNonPrivate: Type.Optional(
      Type.Boolean({ description: "Allow trainings without DP (default false); the same as the policy's allowNonPrivate" }),
    ),
    policy: Type.Optional(
      Type.String({
        maxLength: 64 * 1024,
        description:
          'The dataset policy as JSON (DatasetPolicyInput), e.g. {"trainers":["<principal id>"],"release":"approval"}; default: owner only',
      }),
    ),
  },
  { additionalProperties: false },
);
export type DatasetFieldsInput = Static<typeof DatasetFieldsSchema>;
