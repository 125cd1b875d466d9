// /v1/principals and /v1/whoami: who may use the server. Admin-only except whoami.

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { GovernanceDeps } from '../../governance/authorize.js';
import { createPrincipal, getPrincipal, listPrincipals, type Principal, revokePrincipal } from '../../governance/principals.js';
import { ref } from '../../schemas/common.js';
import { CreatedPrincipalSchema, CreatePrincipalBody, PrincipalListSchema, PrincipalSchema } from '../../schemas/principals.js';
import { principalOf } from '../plugins/auth.js';
import { authedProblems, IdParams, problemResponses } from '../schemas/common.js';

export default async function principalRoutes(
  root: FastifyInstance,
  options: { governance: GovernanceDeps; stopAllOf: (principalId: string, actor: Principal) => Promise<void> },
) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { governance, stopAllOf } = options;

  app.post(
    '/v1/principals',
    {
      schema: {
        operationId: 'createPrincipal',
        tags: ['principals'],
        summary: 'Create a principal (admin)',
        description:
          'Creates a member (the default) or admin principal and returns it with a fresh bearer token. The token is shown only in this ' +
          'response; the server keeps only a hash of it. Admin only.',
        body: CreatePrincipalBody,
        response: { 201: CreatedPrincipalSchema, ...problemResponses(...authedProblems, 403, 415) },
      },
    },
    async (request, reply) => {
      const created = createPrincipal(governance, principalOf(request), { name: request.body.name, role: request.body.role ?? 'member' });
      return reply.code(201).header('location', `/v1/principals/${created.id}`).send(created);
    },
  );

  app.get(
    '/v1/principals',
    {
      schema: {
        operationId: 'listPrincipals',
        tags: ['principals'],
        summary: 'List principals (admin)',
        description: 'Every active principal, oldest first; revoked principals are left out and tokens are never shown. Admin only.',
        response: { 200: PrincipalListSchema, ...problemResponses(...authedProblems, 403) },
      },
    },
    async (request) => {
      return { items: listPrincipals(governance, principalOf(request)) };
    },
  );

  app.get(
    '/v1/principals/:id',
    {
      schema: {
        operationId: 'getPrincipal',
        tags: ['principals'],
        summary: 'Get a principal (admin)',
        description: 'One active principal by id; a revoked or unknown id is 404. Admin only.',
        params: IdParams,
        response: { 200: ref(PrincipalSchema), ...problemResponses(...authedProblems, 403, 404) },
      },
    },
    async (request) => {
      return getPrincipal(governance, principalOf(request), request.params.id);
    },
  );

  app.delete(
    '/v1/principals/:id',
    {
      schema: {
        operationId: 'deletePrincipal',
        tags: ['principals'],
        summary: 'Revoke a principal (admin)',
        description:
          'Revokes a principal: its tokens stop working at once, and its queued and running trainings and its evaluations in flight are ' +
          'cancelled; the answer comes once they have stopped. Admin only; revoking the only active admin is 409.',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...problemResponses(...authedProblems, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const actor = principalOf(request);
      revokePrincipal(governance, actor, request.params.id);
      await stopAllOf(request.params.id, actor);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/whoami',
    {
      schema: {
        operationId: 'getWhoami',
        tags: ['principals'],
        summary: 'Who am I',
        description:
          'The principal the bearer token belongs to: id, name, role and creation time. Any valid token may call it, which makes it the ' +
          'simplest check that a token works.',
        response: { 200: ref(PrincipalSchema), ...problemResponses(...authedProblems) },
      },
    },
    async (request) => principalOf(request),
  );
}
