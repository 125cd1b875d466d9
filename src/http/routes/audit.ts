// /v1/audit: pages of the tamper-evident audit log, oldest first. Admins read every entry; members read
// the entries they made or are subjects of (about what they own). Whether the log is intact is checked
// offline by `bastion audit verify`, which needs the audit key, not by this route.

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import type { FastifyInstance, FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import { listAuditEntries } from '../../governance/audit.js';
import type { GovernanceDeps } from '../../governance/authorize.js';
import { AuditPageSchema, AuditQuerySchema } from '../../schemas/audit.js';
import { principalOf } from '../plugins/auth.js';
import { authedProblems, problemResponses } from '../schemas/common.js';

// The app's validator does not coerce (a JSON body's "5" is not 5), but a query string is all text:
// its integers are read here — decimal digits only, as multipart form numbers are (ajv's coerceTypes
// alone would read "0x10" as 16) — and then checked against the schema.
const queryAjv = new Ajv({ allErrors: true, coerceTypes: true, strict: false });
const DECIMAL_INTEGER = /^(?:0|[1-9][0-9]{0,15})$/;
const queryCompiler: FastifySchemaCompiler<unknown> = ({ schema }) => {
  const check = queryAjv.compile(schema as object);
  const validate = (data: unknown): boolean => {
    const bad = Object.entries(data as Record<string, unknown>).filter(([, v]) => typeof v === 'string' && !DECIMAL_INTEGER.test(v));
    if (bad.length > 0) {
      validate.errors = bad.map(
        ([name]): FastifySchemaValidationError => ({
          instancePath: `/${name}`,
          schemaPath: '#/pattern',
          keyword: 'pattern',
          params: {},
          message: 'must be a decimal integer',
        }),
      );
      return false;
    }
    const ok = check(data);
    validate.errors = (check.errors as FastifySchemaValidationError[] | null | undefined) ?? null;
    return ok;
  };
  validate.errors = null as FastifySchemaValidationError[] | null;
  return validate;
};

export default async function auditRoutes(root: FastifyInstance, options: Pick<GovernanceDeps, 'store'>) {
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
