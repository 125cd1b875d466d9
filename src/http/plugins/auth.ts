// Bearer-token authentication for every /v1 route except those marked `config: { public: true }`
// (attestation), and for routes outside /v1 marked `config: { bearer: true }` (GET /metrics). What a
// principal may do is src/governance/authorize.ts. The token itself is never logged.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { BastionError } from '../../errors.js';
import type { GovernanceDeps } from '../../governance/authorize.js';
import { authenticate, type Principal } from '../../governance/principals.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated principal; null only on public routes. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** Route needs no token. */
    public?: boolean;
    /** Route outside /v1 that needs a token all the same. */
    bearer?: boolean;
  }
}

const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

export default fp(
  async function authPlugin(app: FastifyInstance, options: Pick<GovernanceDeps, 'store'>) {
    app.decorateRequest('principal', null);
    app.addHook('onRequest', async (request) => {
      const url = request.routeOptions.url;
      const { config } = request.routeOptions;
      if (url === undefined || (url.startsWith('/v1/') ? config.public === true : config.bearer !== true)) return;
      const header = request.headers.authorization;
      if (header === undefined) throw new BastionError('UNAUTHORIZED', 'This operation needs an Authorization: Bearer <token> header');
      const match = BEARER.exec(header);
      const principal = match ? authenticate(options.store, match[1]!) : null;
      if (!principal) throw new BastionError('UNAUTHORIZED', 'The bearer token is malformed, unknown or revoked');
      request.principal = principal;
    });
  },
  { name: 'bastion-auth' },
);

/** The authenticated principal of a /v1 or `bearer` request (the auth hook guarantees one). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new BastionError('UNAUTHORIZED', 'This operation needs a bearer token');
  return request.principal;
}
