// /v1/audit: pages of the tamper-evident audit log, oldest first. Admins read every entry; members read
// the entries they made or are subjects of (about what they own). Whether the log is intact is checked
// offline by `bastion audit verify`, which needs the audit key, not by this route.
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import { listAuditEntries } from '../../governance/audit.js';
import type { Store } from '../../store/db.js';
import { principalOf } from '../plugins/auth.js';
import { AuditPageSchema, AuditQuerySchema } from '../schemas/audit.js';
import { authedProblems, problemResponses } from '../schemas/common.js';

// The app's validator does not coerce (a JSON body's "5" is not 5), but a query string is all text:
// its integers are coerced here, as multipart form fields are in plugins/multipart.ts.
const queryAjv = new Ajv({ allErrors: true, coerceTypes: true, strict: false });
const queryCompiler: FastifySchemaCompiler<unknown> = ({ schema }) => queryAjv.compile(schema as object);

export default async function auditRoutes(root: FastifyInstance, options: { store: Store }) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { store } = options;

  app.get(
    '/v1/audit',
    {
      schema: {
        operationId: 'listAudit',
        tags: ['audit'],
        summary: 'Read the audit log',
        description:
          'A page of audit log entries after a seq, oldest first: an admin reads every entry, a member those it made or that concern ' +
          'what it owns. Follow `next` for the next page; whether the log is intact is checked offline by `bastion audit verify`.',
        querystring: AuditQuerySchema,
        response: { 200: AuditPageSchema, ...problemResponses(...authedProblems) },
      },
      validatorCompiler: queryCompiler,
    },
    async (request) => listAuditEntries(store, principalOf(request), request.query),
  );
}
