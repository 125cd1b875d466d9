// Liveness and readiness probes. Public (no token), outside /v1.
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { KeySource } from '../../enclave/keys.js';
import { EnclaveIdentitySchema } from '../schemas/common.js';

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
    keys: Type.Union(
      [
        Type.Object({ provider: Type.Literal('development') }, { additionalProperties: false }),
        Type.Object(
          {
            provider: Type.Literal('enclave'),
            sealingKey: Type.Enum(['mrenclave', 'mrsigner'], { type: 'string' }),
            identity: EnclaveIdentitySchema,
          },
          { additionalProperties: false },
        ),
      ],
      {
        description:
          "What data at rest is sealed with: the SGX enclave's sealing key (and the enclave's identity), or the development key file",
      },
    ),
  },
  { additionalProperties: false },
);

export default async function healthRoutes(app: FastifyInstance, options: { readiness: () => ReadinessChecks; keySource: KeySource }) {
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
          'when all three hold, else 503 with the same body showing which check failed. It also says what data at rest is sealed with ' +
          "(an SGX enclave's sealing key and the enclave's identity, or the development key). Public.",
        security: [],
        response: { 200: ReadinessSchema, 503: ReadinessSchema },
      },
    },
    async (_request, reply) => {
      const checks = options.readiness();
      const ready = checks.addon && checks.store && checks.pool;
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', checks, keys: options.keySource });
    },
  );
}
