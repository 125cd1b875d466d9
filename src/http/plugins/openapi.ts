// The OpenAPI 3.1 document, built from the route schemas by @fastify/swagger, served at /openapi.json
// (and browsable at /docs). scripts/openapi.ts writes the same document to openapi.yaml; a test fails
// when the committed file and the code disagree. The served copies name the server they came from.

import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import { problemResponses } from '../schemas/common.js';

export const API_VERSION = '0.1.0';

/** The committed document's server: the address `npm start` listens on by default. */
const DEFAULT_SERVER = { url: 'https://127.0.0.1:8443', description: 'The default local address (npm start)' };

// host[:port] as a client may put it in a Host header: a DNS name or IPv4 address, or an IPv6 address in brackets.
const HOST_HEADER = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/**
 * The origin `request` reached: the connection's scheme and the Host header the client sent, which is
 * the address it can reach the server by (behind a port mapping too); else the socket's local address.
 * Null for neither (an injected request). The Host header is only echoed back to the client that sent
 * it, and only when it is a plain host[:port], so nothing else can be smuggled into the document.
 */
function requestOrigin(request: FastifyRequest): string | null {
  const scheme = request.protocol ?? 'http';
  if (HOST_HEADER.test(request.host)) return `${scheme}://${request.host.toLowerCase()}`;
  const { localAddress, localPort } = request.raw.socket ?? {};
  if (!localAddress || !localPort) return null;
  const address = localAddress.startsWith('::ffff:') ? localAddress.slice('::ffff:'.length) : localAddress;
  return `${scheme}://${address.includes(':') ? `[${address}]` : address}:${localPort}`;
}

// /docs is Bastion's, not Fastify's: a tower on a shield (the logo adds the name, white on Swagger UI's dark top bar).
const SHIELD =
  '<path d="M20 2 35 7.5V19c0 9.3-6.2 15.9-15 19C11.2 34.9 5 28.3 5 19V7.5Z" fill="#3d7cc9"/>' +
  '<path d="M12 10h3v3h3.5v-3h3v3h3.5v-3h3v17H12ZM18 27v-5a2 2 0 0 1 4 0v5Z" fill="#fff" fill-rule="evenodd"/>';
const LOGO_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40" viewBox="0 0 200 40" role="img" aria-label="Bastion API">' +
  SHIELD +
  '<text x="46" y="28" font-family="system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif" font-size="22" font-weight="600" ' +
  'fill="#fff">' +
  'Bastion API</text></svg>';
const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40">${SHIELD}</svg>`;

/** The document as served to `request`: its one server is the origin the request reached (no copy of the rest). */
function servedDocument<T extends object>(document: T, request: FastifyRequest): T {
  const origin = requestOrigin(request);
  if (origin === null) return document;
  return { ...document, servers: [{ url: origin, description: 'This server, at the address this document was fetched from' }] };
}

export default fp(
  async function openapiPlugin(app: FastifyInstance) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Bastion',
          version: API_VERSION,
          description:
            'Confidential AI training server: data owners upload datasets and set privacy budgets, data scientists upload TorchScript ' +
            'models and train them with DP-SGD; only DP-protected results leave. Every /v1 operation except attestation needs ' +
            '`Authorization: Bearer <token>`. Errors are application/problem+json (RFC 9457).',
          contact: { name: 'Bastion maintainers' },
          license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
        },
        servers: [DEFAULT_SERVER],
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
          { name: 'trainings', description: 'DP-SGD trainings (plans, jobs, progress, results) and DP evaluations of models on datasets' },
          { name: 'audit', description: 'The tamper-evident audit log of every state change and refused access' },
          { name: 'metrics', description: 'Prometheus metrics for the operator (admin only)' },
          { name: 'attestation', description: 'Proof, from the SGX hardware, of the code that runs and of the TLS key it holds' },
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
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      logo: { type: 'image/svg+xml', content: Buffer.from(LOGO_SVG), href: '/docs', target: '_self' },
      theme: {
        title: 'Bastion API',
        favicon: [{ filename: 'favicon.svg', rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: Buffer.from(FAVICON_SVG) }],
      },
      // /docs/json (what the page loads) and /docs/yaml name this server, so that "Try it out" calls it.
      transformSpecification: (document, request) => servedDocument(document, request),
      transformSpecificationClone: false,
    });

    app.get(
      '/openapi.json',
      {
        schema: {
          operationId: 'getOpenapi',
          tags: ['meta'],
          summary: 'This API description (OpenAPI 3.1)',
          description:
            'The OpenAPI 3.1 document generated from the route schemas: the committed openapi.yaml, except that `servers` names the ' +
            'address this request reached, so that clients and the /docs page call the right host and port. Public: no token.',
          security: [],
          response: { 200: Type.Object({}, { additionalProperties: true }), ...problemResponses(500) },
        },
      },
      async (request) => servedDocument(app.swagger(), request),
    );
  },
  { name: 'bastion-openapi' },
);
