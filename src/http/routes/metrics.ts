// GET /metrics: the server's metrics in the Prometheus text format (http/metrics.ts says what they
// carry). Outside /v1, as scrapers expect, but it takes a bearer token like /v1 does, and only an admin
// may read it (governance/authorize.ts, metrics.read); a refusal is in the audit log. Without a token,
// metrics are served only on the separate listener BASTION_METRICS_PORT opens.
import type { FastifyInstance } from 'fastify';
import type { TSchema } from 'typebox';
import { enforce, type GovernanceDeps } from '../../governance/authorize.js';
import type { Metrics } from '../metrics.js';
import { principalOf } from '../plugins/auth.js';
import { problemResponses } from '../schemas/common.js';

const prometheusText = {
  description: 'The metrics in the Prometheus text exposition format 0.0.4',
  content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: { type: 'string' } } },
} as unknown as TSchema;

export default async function metricsRoutes(app: FastifyInstance, options: { metrics: Metrics; governance: GovernanceDeps }) {
  const { registry } = options.metrics;

  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'getMetrics',
        tags: ['metrics'],
        summary: 'Server metrics in the Prometheus text format (admin only)',
        description:
          'Training queue and running trainings, training steps and step rate, worker pool threads, queue and utilisation, ' +
          'upload bytes by kind, HTTP request durations by method, route pattern and status code, and Node process metrics. ' +
          'Counts, sizes and timing only: no ids, names or figures computed from data.',
        response: { 200: prometheusText, ...problemResponses(401, 403, 500) },
      },
      config: { bearer: true },
    },
    async (request, reply) => {
      enforce(options.governance, principalOf(request), 'metrics.read', { kind: 'metrics' });
      const text = await registry.metrics();
      return reply.type(registry.contentType).send(text);
    },
  );
}
