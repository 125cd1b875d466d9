// Wire shapes of policies: what a dataset's owner allows others to do with it and whom a model's owner
// lets use a model, as given (the inputs: routes, the multipart form and stored JSON are all checked
// against them) and as in force (omitted fields take their defaults: src/governance/policy.ts).
import { Type } from 'typebox';

const principalIds = Type.Array(Type.String({ format: 'uuid' }), { maxItems: 1000, uniqueItems: true });

export const DatasetPolicyInputSchema = Type.Object(
  {
    trainers: Type.Optional(
      Type.Union([principalIds, Type.Literal('everyone')], {
        description: 'Principals besides the owner who may see the dataset and train on it (or "everyone"); default: nobody',
      }),
    ),
    maxEpsilonPerTraining: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1000,
        description: 'Largest ε one training or evaluation may ask for (metrics included); default: no limit but the budget',
      }),
    ),
    allowEvaluation: Type.Optional(Type.Boolean({ description: 'Whether trainers may evaluate models on it (default true)' })),
    allowNonPrivate: Type.Optional(
      Type.Boolean({ description: 'Whether trainings and evaluations without DP may use it (default false)' }),
    ),
    release: Type.Optional(
      Type.Enum(['trainer', 'approval'], {
        type: 'string',
        description:
          'Who may download a model trained on it: whoever trained it (trainer), or only once the owner approved (approval); ' +
          'default trainer',
      }),
    ),
  },
  {
    $id: 'DatasetPolicyInput',
    title: 'DatasetPolicyInput',
    additionalProperties: false,
    description: "A dataset's policy as given; omitted fields take their defaults",
  },
);
export const ModelPolicyInputSchema = Type.Object(
  {
    readers: Type.Optional(
      Type.Array(Type.String({ format: 'uuid' }), {
        maxItems: 1000,
        uniqueItems: true,
        description: 'Principals besides the owner who may see the model and train or evaluate with it; default: nobody',
      }),
    ),
  },
  {
    $id: 'ModelPolicyInput',
    title: 'ModelPolicyInput',
    additionalProperties: false,
    description: "A model's policy as given; omitted fields take their defaults",
  },
);

// The policies in force, as shown: the inputs' bounds were checked when they were set.
const principalIdList = Type.Array(Type.String({ format: 'uuid' }));

export const DatasetPolicySchema = Type.Object(
  {
    trainers: Type.Optional(
      Type.Union([principalIdList, Type.Literal('everyone')], {
        description: 'Principals besides the owner who may see and train on the dataset, or "everyone"; in the owner\'s view only',
      }),
    ),
    maxEpsilonPerTraining: Type.Optional(
      Type.Number({ description: 'Largest ε one training (metrics included) or evaluation may spend; absent: no limit but the budget' }),
    ),
    allowEvaluation: Type.Boolean({ description: 'Whether trainers may evaluate models on it' }),
    allowNonPrivate: Type.Boolean({ description: 'Whether trainings and evaluations without DP may use it' }),
    release: Type.Enum(['trainer', 'approval'], {
      type: 'string',
      description: 'trainer: whoever trained a model may download it; approval: only once the owner approved',
    }),
  },
  { $id: 'DatasetPolicy', title: 'DatasetPolicy', additionalProperties: false, description: "A dataset's policy, as in force" },
);

export const ModelPolicySchema = Type.Object(
  { readers: principalIdList },
  {
    $id: 'ModelPolicy',
    title: 'ModelPolicy',
    additionalProperties: false,
    description: 'Who besides its owner may see the model and train or evaluate with it',
  },
);
