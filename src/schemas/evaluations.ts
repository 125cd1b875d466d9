// Wire shapes of evaluations.
import { Type } from 'typebox';
import { ref } from './common.js';
import { LossNameSchema } from './trainings.js';

export const EvaluationRequestSchema = Type.Object(
  {
    modelId: Type.String({ format: 'uuid', description: "One of the caller's models" }),
    datasetId: Type.String({ format: 'uuid' }),
    loss: LossNameSchema,
    epsilon: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 100,
        description:
          "ε to spend (charged to the dataset) on a DP release of the accuracy; absent: exact, only where the dataset's owner " +
          'allows non-private use',
      }),
    ),
  },
  { additionalProperties: false },
);

export const EvaluationSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    modelId: Type.String({ format: 'uuid' }),
    datasetId: Type.String({ format: 'uuid' }),
    samples: Type.Integer(),
    private: Type.Boolean(),
    accuracy: Type.Union([Type.Number(), Type.Null()], { description: 'noisy when private; null for regression losses' }),
    accuracyNoiseStd: Type.Number({
      description: 'standard deviation of the noise on accuracy: √Var[N_Z(0, σ²)] / units (≤ σ / units); 0 when exact',
    }),
    loss: Type.Union([Type.Number(), Type.Null()], { description: 'mean loss, exact evaluations only' }),
    epsilon: Type.Union([Type.Number(), Type.Null()], {
      description: 'ε charged; the release is (ε, δ)-DP by its exact δ(ε) (CKS20 Theorem 7)',
    }),
    delta: Type.Union([Type.Number(), Type.Null()], { description: "the dataset's δ" }),
    noiseMultiplier: Type.Union([Type.Number(), Type.Null()], {
      description:
        'σ/Δ of the discrete Gaussian N_Z(0, σ²) added to the correct count of sensitivity Δ (the ledger event holds σ² exactly); ' +
        'null when exact',
    }),
  },
  { $id: 'Evaluation', title: 'Evaluation', additionalProperties: false },
);

export const EvaluationRunSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    ownerId: Type.String({ format: 'uuid', description: 'who asked for it' }),
    modelId: Type.String({ format: 'uuid' }),
    datasetId: Type.String({ format: 'uuid' }),
    private: Type.Boolean(),
    epsilon: Type.Union([Type.Number(), Type.Null()]),
    status: Type.Enum(['running', 'cancelled'], { type: 'string' }),
    startedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'EvaluationRun', title: 'EvaluationRun', additionalProperties: false, description: 'An evaluation in flight' },
);

export const EvaluationRunListSchema = Type.Object({ items: Type.Array(ref(EvaluationRunSchema)) }, { additionalProperties: false });
