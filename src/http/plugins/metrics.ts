// Times every request into the metrics' duration histogram (http/metrics.ts), labelled by method, the
// route's pattern and the status code. The pattern, never the URL: a raw URL carries ids and query
// strings, and would give a series per id.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Metrics } from '../metrics.js';

export default fp(
  async function metricsPlugin(app: FastifyInstance, options: { metrics: Metrics }) {
    app.addHook('onResponse', async (request, reply) => {
      options.metrics.observeRequest(
        { method: request.method, route: request.routeOptions.url ?? 'unmatched', statusCode: reply.statusCode },
        reply.elapsedTime / 1000,
      );
    });
  },
  { name: 'bastion-metrics' },
);
