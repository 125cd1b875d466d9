// The OpenAPI 3.1 document, built from the route schemas by @fastify/swagger, served at /openapi.json
// (and browsable at /docs). scripts/openapi.ts writes the same document to openapi.yaml; a test fails
// when the committed file and the code disagree.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Type } from 'typebox';
import { problemResponses } from '../schemas/common.js';

export const API_VERSION = '0.1.0';

export default fp(
  async function openapiPlugin(app: FastifyInstance) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Bastion',
          version: API_VERSION,
          description:
            'Confidential AI training server: data owners upload datasets and set privacy budgets, data scientists upload TorchScript models and train them with DP-SGD; only DP-protected results leave. Every /v1 operation except attestation needs `Authorization: Bearer <token>`. Errors are application/problem+json (RFC 9457).',
          license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
        },
        servers: [{ url: 'https://127.0.0.1:8443', description: 'Local development server' }],
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', description: 'Token from POST /v1/principals or the admin-token file' },
          },
        },
        security: [{ bearerAuth: [] }],
        tags: [
          { name: 'health', description: 'Probes' },
          { name: 'principals', description: 'Principals and tokens' },
          { name: 'models', description: 'TorchScript models: upload, check, download' },
          { name: 'datasets', description: 'Datasets and their privacy limits: upload, check, download' },
          { name: 'trainings', description: 'DP-SGD trainings: plans, jobs, progress, results' },
          { name: 'audit', description: 'The tamper-evident audit log of every state change and refused access' },
          { name: 'metrics', description: 'Prometheus metrics for the operator (admin only)' },
          { name: 'meta', description: 'The API description itself' },
        ],
      },
      // Multipart routes read their body with receiveUpload(), not a Fastify body schema; document it.
      transform: ({ schema, url, route }) => {
        const body = route.config?.multipartBody;
        if (!body) return { schema, url };
        return { schema: { ...schema, consumes: ['multipart/form-data'], body } as typeof schema, url };
      },
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });

    app.get(
      '/openapi.json',
      {
        schema: {
          operationId: 'getOpenapi',
          tags: ['meta'],
          summary: 'This API description (OpenAPI 3.1)',
          security: [],
          response: { 200: Type.Object({}, { additionalProperties: true }), ...problemResponses(500) },
        },
      },
      async () => app.swagger(),
    );
  },
  { name: 'bastion-openapi' },
);
