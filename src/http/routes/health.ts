// Liveness and readiness probes. Public (no token), outside /v1.
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';

export interface ReadinessChecks {
  /** The addon loaded in the pool workers. */
  addon: boolean;
  store: boolean;
  pool: boolean;
}

const ReadinessSchema = Type.Object(
  {
    status: Type.Union([Type.Literal('ready'), Type.Literal('not-ready')]),
    checks: Type.Object({ addon: Type.Boolean(), store: Type.Boolean(), pool: Type.Boolean() }),
  },
  { additionalProperties: false },
);

export default async function healthRoutes(app: FastifyInstance, options: { readiness: () => ReadinessChecks }) {
  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'getHealth',
        tags: ['health'],
        summary: 'Liveness probe',
        description:
          'Answers 200 with `{"status":"ok"}` as long as the process handles requests; it checks nothing else. Public, for process ' +
          'supervisors and orchestrators.',
        security: [],
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'getReadiness',
        tags: ['health'],
        summary: 'Readiness probe',
        description:
          'Whether the server can do work: the native addon loaded in the pool workers, the store open and the worker pool alive. 200 ' +
          'when all three hold, else 503 with the same body showing which check failed. Public.',
        security: [],
        response: { 200: ReadinessSchema, 503: ReadinessSchema },
      },
    },
    async (_request, reply) => {
      const checks = options.readiness();
      const ready = checks.addon && checks.store && checks.pool;
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', checks });
    },
  );
}
