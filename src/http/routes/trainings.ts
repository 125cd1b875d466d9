// /v1/trainings: plan (dry run) and, with issue 7, the jobs themselves.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Store } from '../../store/db.js';
import { planTraining, planView } from '../../training/plan.js';
import { principalOf } from '../plugins/auth.js';
import { authedProblems, problemResponses } from '../schemas/common.js';
import { TrainingRequestSchema } from '../schemas/trainings.js';

export default async function trainingRoutes(root: FastifyInstance, options: { store: Store }) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const deps = { store: options.store };

  app.post(
    '/v1/trainings/plan',
    {
      schema: {
        operationId: 'planTraining',
        tags: ['trainings'],
        summary: 'Dry run of a training: σ calibrated to the target ε, q, steps, and what each dataset budget would show; charges nothing',
        body: TrainingRequestSchema,
        response: { 200: Type.Ref('TrainingPlan'), ...problemResponses(...authedProblems, 403, 404, 415, 422) },
      },
    },
    async (request) => planView(planTraining(deps, principalOf(request), request.body)),
  );
}
