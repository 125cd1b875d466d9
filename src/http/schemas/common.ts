// Schemas shared by every route: the problem document (RFC 9457) and helpers that attach problem
// responses to a route, so every operation in openapi.yaml lists the problems it can answer.
import { type TSchema, Type } from 'typebox';
import { ref } from '../../schemas/common.js';

export const PROBLEM_MEDIA_TYPE = 'application/problem+json';

export const FieldErrorSchema = Type.Object(
  {
    pointer: Type.Optional(Type.String({ description: 'JSON pointer (RFC 6901) into the request body' })),
    parameter: Type.Optional(Type.String({ description: 'Name of the path or query parameter' })),
    header: Type.Optional(Type.String({ description: 'Name of the header' })),
    detail: Type.String(),
  },
  { additionalProperties: false },
);

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'URI identifying the problem type, urn:bastion:problem:<slug>' }),
    title: Type.String(),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    requestId: Type.Optional(Type.String({ description: 'Id under which the server logged the failure' })),
    errors: Type.Optional(Type.Array(FieldErrorSchema, { description: 'Every problem found in the request (validation)' })),
  },
  { $id: 'Problem', title: 'Problem', additionalProperties: true, description: 'RFC 9457 problem details' },
);

const problemDescriptions: Record<number, string> = {
  400: 'The request is malformed or fails validation',
  401: 'Missing, malformed, revoked or unknown bearer token',
  403: 'The principal is not allowed to do this',
  404: 'No such resource (or one the caller may not see)',
  409: 'The request conflicts with the current state',
  413: 'The request body is too large',
  415: 'Unsupported content type',
  422: 'Well-formed but unusable content',
  429: 'The principal has as many jobs queued and running as it may; retry when one has ended',
  500: 'Internal server error (logged under requestId)',
  503: 'Not ready or overloaded; retry after Retry-After seconds',
};

/** Response entries for the given problem statuses, each `application/problem+json` of Problem. */
export function problemResponses(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const status of statuses) {
    out[status] = {
      description: problemDescriptions[status] ?? 'Problem',
      content: { [PROBLEM_MEDIA_TYPE]: { schema: ref(ProblemSchema) } },
    } as unknown as TSchema;
  }
  return out;
}

/** Problems every authenticated /v1 operation can answer. */
export const authedProblems = [400, 401, 500] as const;

export const IdParams = Type.Object({ id: Type.String({ format: 'uuid', description: 'Resource id (UUID)' }) });

/** An SGX enclave's identity as its report or quote states it (src/enclave/keys.ts EnclaveIdentity). */
export const EnclaveIdentitySchema = Type.Object(
  {
    mrenclave: Type.String({ description: "hex: the measurement of the enclave's code and data" }),
    mrsigner: Type.String({ description: 'hex: the hash of the key that signed the enclave' }),
    isvProdId: Type.Integer(),
    isvSvn: Type.Integer(),
    debug: Type.Boolean({ description: "a debug enclave's memory is readable by the host" }),
  },
  { additionalProperties: false },
);
