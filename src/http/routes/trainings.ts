// /v1/trainings: plan (dry run), create (plan, charge, queue), list, get, cancel, and the job's
// Server-Sent Events. Routes parse, authorize and call one service function; the job service
// (training/jobs.ts) owns the queue and every state change.

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { TSchema } from 'typebox';
import { ref } from '../../schemas/common.js';
import { TrainingListSchema, TrainingPlanSchema, TrainingRequestSchema, TrainingSchema } from '../../schemas/trainings.js';
import type { TrainingEvent } from '../../training/events.js';
import type { TrainingJobs } from '../../training/jobs.js';
import { planView } from '../../training/plan.js';
import { principalOf } from '../plugins/auth.js';
import { streamEvents } from '../plugins/sse.js';
import { authedProblems, IdParams, problemResponses } from '../schemas/common.js';

const TERMINAL: ReadonlySet<TrainingEvent['type']> = new Set(['completed', 'failed', 'cancelled']);

const eventStream = {
  description:
    'Server-Sent Events. `state` first (the job as now), again on every status change; `progress` (at least once a second while ' +
    'running), ' +
    "`checkpoint`, `metric` (an epoch's mean training loss was released: the last of `metrics`); the stream ends after `completed`, " +
    "`failed` or `cancelled`. Each event's data is the Training as JSON. Comment lines keep the stream alive.",
  content: { 'text/event-stream': { schema: { type: 'string', description: 'event: <type>\\ndata: <Training JSON>\\n\\n …' } } },
} as unknown as TSchema;

export default async function trainingRoutes(root: FastifyInstance, options: { jobs: TrainingJobs }) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const jobs = options.jobs;

  app.post(
    '/v1/trainings/plan',
    {
      schema: {
        operationId: 'planTraining',
        tags: ['trainings'],
        summary: 'Plan a training (dry run)',
        description:
          'Computes what a training with this body would do, charging nothing: σ calibrated to the target ε, the sample rate q, the ' +
          "steps, the ε of the model and of its metrics, and what each dataset's budget would show after it. It pre-flights the model as " +
          "createTraining does (one step on zeros of the datasets' public shapes; 422 with the model's message when it fails), and says " +
          "how each parameter's per-sample gradients will be computed (`gradients`). It takes the same body as createTraining; " +
          '`allowed` says whether every budget allows it.',
        body: TrainingRequestSchema,
        response: { 200: ref(TrainingPlanSchema), ...problemResponses(...authedProblems, 403, 404, 415, 422) },
      },
    },
    async (request) => planView(await jobs.plan(principalOf(request), request.body)),
  );

  app.post(
    '/v1/trainings',
    {
      schema: {
        operationId: 'createTraining',
        tags: ['trainings'],
        summary: 'Start a training',
        description:
          "Plans the training as planTraining does, pre-flights it (one step on zeros of the datasets' public shapes; 422 with the " +
          "model's message when it fails), charges every dataset's ledger the whole plan at once, then queues it (202). 409 when a " +
          'budget does not allow it; 429 when the caller already has as many trainings queued and running as it may.',
        body: TrainingRequestSchema,
        response: { 202: ref(TrainingSchema), ...problemResponses(...authedProblems, 403, 404, 409, 415, 422, 429, 503) },
      },
    },
    async (request, reply) => {
      const training = await jobs.create(principalOf(request), request.body);
      return reply.code(202).header('location', `/v1/trainings/${training.id}`).send(training);
    },
  );

  app.get(
    '/v1/trainings',
    {
      schema: {
        operationId: 'listTrainings',
        tags: ['trainings'],
        summary: 'List trainings',
        description: 'The trainings the caller created, oldest first, each with its status, progress, plan and result.',
        response: { 200: TrainingListSchema, ...problemResponses(...authedProblems) },
      },
    },
    async (request) => ({ items: jobs.list(principalOf(request)) }),
  );

  app.get(
    '/v1/trainings/:id',
    {
      schema: {
        operationId: 'getTraining',
        tags: ['trainings'],
        summary: 'Get a training',
        description:
          "One of the caller's trainings: status, step of total, ε planned and spent so far, throughput, ETA, released metrics, error " +
          'and result model. Poll it, or follow getTrainingEvents for live updates.',
        params: IdParams,
        response: { 200: ref(TrainingSchema), ...problemResponses(...authedProblems, 404) },
      },
    },
    async (request) => jobs.get(principalOf(request), request.params.id),
  );

  app.post(
    '/v1/trainings/:id/cancel',
    {
      schema: {
        operationId: 'cancelTraining',
        tags: ['trainings'],
        summary: 'Cancel a training',
        description:
          'Cancels a queued or running training and answers once it has stopped (within one step). The ledger keeps the whole planned ' +
          'charge; a training that has already ended is 409.',
        params: IdParams,
        response: { 200: ref(TrainingSchema), ...problemResponses(...authedProblems, 404, 409) },
      },
    },
    async (request) => jobs.cancel(principalOf(request), request.params.id),
  );

  app.get(
    '/v1/trainings/:id/events',
    {
      schema: {
        operationId: 'getTrainingEvents',
        tags: ['trainings'],
        summary: "Follow a training's events (SSE)",
        description:
          "Live events of one of the caller's trainings as Server-Sent Events: `state` first, then `progress`, `checkpoint` and `metric` " +
          'events, until `completed`, `failed` or `cancelled` ends the stream. `curl -N` shows them as they come.',
        params: IdParams,
        response: { 200: eventStream, ...problemResponses(...authedProblems, 404) },
      },
      sse: 'only',
    },
    async (request, reply) => {
      const principal = principalOf(request);
      jobs.get(principal, request.params.id); // 404 as problem+json before the stream starts
      await streamEvents<TrainingEvent['training']>(reply, ({ event, end }) =>
        jobs.subscribe(principal, request.params.id, { event: (e: TrainingEvent) => event(e.type, e.training, TERMINAL.has(e.type)), end }),
      );
    },
  );
}
