// buildApp(deps): the Fastify instance with every plugin and route, not listening. main.ts listens;
// tests call app.inject() or listen on port 0. Routes are registered explicitly, one file per resource.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import authPlugin from './http/plugins/auth.js';
import openapiPlugin from './http/plugins/openapi.js';
import problemPlugin from './http/plugins/problem.js';
import healthRoutes, { type ReadinessChecks } from './http/routes/health.js';
import principalRoutes from './http/routes/principals.js';
import { PrincipalSchema } from './http/schemas/principals.js';
import { ProblemSchema } from './http/schemas/common.js';
import type { Store } from './store/db.js';
import type { WorkerPool } from './training/pool.js';

export interface AppDeps {
  store: Store;
  pool: WorkerPool;
  /** True once the addon has loaded in the pool workers (checked at start). */
  isAddonLoaded: () => boolean;
  logger?: Logger | false;
  /** TLS key and certificate; absent for plain HTTP (tests, --insecure-http). */
  https?: { cert: string; key: string };
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const options: FastifyServerOptions & { https?: { cert: string; key: string } } = {
    genReqId: () => randomUUID(),
    ajv: { customOptions: { allErrors: true, removeAdditional: false, coerceTypes: false } },
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
  };
  if (deps.https) options.https = deps.https;
  const app = Fastify(options) as unknown as FastifyInstance;

  // JSON is the only body format of the JSON routes; anything else is a 415, not a string to validate.
  app.removeContentTypeParser('text/plain');
  app.addSchema(ProblemSchema);
  app.addSchema(PrincipalSchema);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  await app.register(problemPlugin);
  await app.register(openapiPlugin);
  await app.register(authPlugin, { store: deps.store });

  const readiness = (): ReadinessChecks => ({ addon: deps.isAddonLoaded(), store: deps.store.isOpen(), pool: deps.pool.isAlive() });
  await app.register(healthRoutes, { readiness });
  await app.register(principalRoutes, { store: deps.store });
  return app;
}
