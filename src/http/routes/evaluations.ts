// /v1/evaluations: a model's accuracy on a dataset, DP-released (charged) or exact where allowed.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ArtifactDeps } from '../../artifacts/service.js';
import { evaluateModel } from '../../training/evaluate.js';
import { principalOf } from '../plugins/auth.js';
import { authedProblems, problemResponses } from '../schemas/common.js';
import { EvaluationRequestSchema } from '../schemas/evaluations.js';

export default async function evaluationRoutes(root: FastifyInstance, options: { artifacts: ArtifactDeps }) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.post(
    '/v1/evaluations',
    {
      schema: {
        operationId: 'createEvaluation',
        tags: ['trainings'],
        summary:
          "Evaluate one of the caller's models on a dataset: accuracy with DP noise under the ε given (charged to the dataset), or exact where its owner allows; " +
          "pre-flighted first on zeros of the dataset's public shapes (422 with the model's message when it fails, nothing charged)",
        body: EvaluationRequestSchema,
        response: { 200: Type.Ref('Evaluation'), ...problemResponses(...authedProblems, 403, 404, 409, 415, 422) },
      },
    },
    async (request) => evaluateModel(options.artifacts, principalOf(request), request.body),
  );
}
