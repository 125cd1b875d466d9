// /v1/evaluations: a model's accuracy on a dataset, DP-released (charged) or exact where allowed; the
// evaluations in flight, and cancelling one (its asker, the dataset's owner, an admin).

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { ref } from '../../schemas/common.js';
import { EvaluationRequestSchema, EvaluationRunListSchema, EvaluationRunSchema, EvaluationSchema } from '../../schemas/evaluations.js';
import type { Evaluations } from '../../training/evaluate.js';
import { principalOf } from '../plugins/auth.js';
import { authedProblems, IdParams, problemResponses } from '../schemas/common.js';

export default async function evaluationRoutes(root: FastifyInstance, options: { evaluations: Evaluations }) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { evaluations } = options;
  app.post(
    '/v1/evaluations',
    {
      schema: {
        operationId: 'createEvaluation',
        tags: ['trainings'],
        summary: 'Evaluate a model on a dataset',
        description:
          'Runs a model the caller may use on a dataset whose policy allows evaluation and answers with its accuracy: with DP noise ' +
          'under the ε given (charged to the dataset), or exact where the owner allows non-private use. It is pre-flighted first on ' +
          "zeros of the dataset's public shapes (422 with the model's message when that fails, nothing charged); 409 when it was " +
          'cancelled meanwhile.',
        body: EvaluationRequestSchema,
        response: { 200: ref(EvaluationSchema), ...problemResponses(...authedProblems, 403, 404, 409, 415, 422) },
      },
    },
    async (request) => evaluations.run(principalOf(request), request.body),
  );

  app.get(
    '/v1/evaluations',
    {
      schema: {
        operationId: 'listEvaluations',
        tags: ['trainings'],
        summary: 'List evaluations in flight',
        description:
          'The evaluations running now that the caller may see: its own, those on its datasets, and every one for an admin. A finished ' +
          'evaluation is not listed: its result was the answer to its createEvaluation.',
        response: { 200: EvaluationRunListSchema, ...problemResponses(...authedProblems) },
      },
    },
    async (request) => ({ items: evaluations.list(principalOf(request)) }),
  );

  app.post(
    '/v1/evaluations/:id/cancel',
    {
      schema: {
        operationId: 'cancelEvaluation',
        tags: ['trainings'],
        summary: 'Cancel an evaluation',
        description:
          "Cancels an evaluation in flight, by whoever asked for it, the dataset's owner or an admin. Its charge stands and nothing is " +
          'released.',
        params: IdParams,
        response: { 200: ref(EvaluationRunSchema), ...problemResponses(...authedProblems, 404) },
      },
    },
    async (request) => evaluations.cancel(principalOf(request), request.params.id),
  );
}
