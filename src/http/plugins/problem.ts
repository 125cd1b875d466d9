// The one error handler: turns every error — BastionError from services, Fastify validation and
// content-type errors, multipart limits, unknown routes, anything unexpected — into an RFC 9457
// problem+json response. Unexpected errors are logged in full under the request id and answered with
// a 500 that carries only that id: no stack, message or internals leave the server. What Node's HTTP
// parser refuses before there is a request (headers over the size limit, a malformed request line, a
// request that takes too long) is answered by answerClientError, as problem+json too.
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { BastionError, type ErrorCode, errorSpecs, type FieldError, PROBLEM_TYPE_BASE } from '../../errors.js';
import { PRINTABLE_TEXT_DETAIL, PRINTABLE_TEXT_PATTERN } from '../../schemas/common.js';
import { PROBLEM_MEDIA_TYPE } from '../schemas/common.js';

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail?: string;
  requestId?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export function problemFor(code: ErrorCode, detail?: string, extra: Record<string, unknown> = {}): ProblemDocument {
  const spec = errorSpecs[code];
  return {
    type: PROBLEM_TYPE_BASE + spec.slug,
    title: spec.title,
    status: spec.status,
    ...(detail !== undefined ? { detail } : {}),
    ...extra,
  };
}

export function sendProblem(reply: FastifyReply, problem: ProblemDocument): FastifyReply {
  if (problem.status === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Bearer realm="bastion"');
  return reply.code(problem.status).type(PROBLEM_MEDIA_TYPE).send(problem);
}

type ValidationContext = 'body' | 'params' | 'querystring' | 'headers';

/** Fastify/Ajv validation errors → field errors naming the pointer, parameter or header. */
function fieldErrors(error: FastifyError): FieldError[] {
  const context = (error.validationContext ?? 'body') as ValidationContext;
  return (error.validation ?? []).map((v) => {
    const params = v.params as Record<string, unknown>;
    let location = v.instancePath;
    if (typeof params.missingProperty === 'string') location = `${location}/${params.missingProperty}`;
    if (typeof params.additionalProperty === 'string') location = `${location}/${params.additionalProperty}`;
    // ajv's "must match pattern" quotes a regex of \u escapes; the printable-text rule says it in words.
    const isPrintableRule = v.keyword === 'pattern' && params.pattern === PRINTABLE_TEXT_PATTERN;
    const detail = isPrintableRule ? PRINTABLE_TEXT_DETAIL : (v.message ?? 'is invalid');
    if (context === 'body') return { pointer: location === '' ? '' : location, detail };
    const name = location.replace(/^\//, '').split('/')[0] ?? '';
    return context === 'headers' ? { header: name, detail } : { parameter: name, detail };
  });
}

/** Fastify's own error codes (content-type parsing, body size, multipart limits) → our codes. */
function codeForFastifyError(error: FastifyError): ErrorCode | null {
  const status = error.statusCode ?? 500;
  if (status === 413) return 'PAYLOAD_TOO_LARGE';
  if (status === 415) return 'UNSUPPORTED_MEDIA_TYPE';
  if (status === 405) return 'METHOD_NOT_ALLOWED';
  if (status === 404) return 'NOT_FOUND';
  if (status >= 400 && status < 500) return 'BAD_REQUEST';
  return null;
}

export default fp(
  async function problemPlugin(app: FastifyInstance) {
    app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      if (error instanceof BastionError) {
        const { errors, retryAfterSeconds, extensions } = error.details;
        if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds));
        const status = errorSpecs[error.code].status;
        if (status >= 500) request.log.error({ err: error, code: error.code }, 'request failed');
        return sendProblem(
          reply,
          problemFor(error.code, error.message, {
            ...extensions,
            ...(errors ? { errors } : {}),
            ...(status >= 500 ? { requestId: request.id } : {}),
          }),
        );
      }
      if (error.validation) {
        const errors = fieldErrors(error);
        const where = error.validationContext ?? 'body';
        return sendProblem(
          reply,
          problemFor(
            'VALIDATION_FAILED',
            `The request ${where} is ` +
              `not valid: ${errors.map((e) => `${e.pointer ?? e.parameter ?? e.header ?? ''} ${e.detail}`.trim()).join('; ')}`,
            { errors },
          ),
        );
      }
      const code = typeof error.code === 'string' && error.code.startsWith('FST_') ? codeForFastifyError(error) : null;
      if (code) return sendProblem(reply, problemFor(code, error.message));
      request.log.error({ err: error }, 'unexpected error');
      return sendProblem(
        reply,
        problemFor('INTERNAL', 'An unexpected error occurred; quote the requestId when reporting it', { requestId: request.id }),
      );
    });

    app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) =>
      sendProblem(reply, problemFor('NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`)),
    );
  },
  { name: 'bastion-problem' },
);

/**
 * How long a connection whose request was refused by the parser is still read (and discarded) after
 * the answer. Closing at once, with the client's unread bytes in the socket, makes the kernel send a
 * reset; a client still writing its oversized headers then fails with EPIPE or ECONNRESET and never
 * reads the 431 (what Fastify's default handler, which destroys the socket at once, did to curl).
 */
export const CLIENT_ERROR_LINGER_MS = 3000;

/** The answer to each parser error code Node reports through 'clientError'. */
const clientErrorAnswers = new Map<string | undefined, [ErrorCode, string]>([
  ['HPE_HEADER_OVERFLOW', ['HEADERS_TOO_LARGE', `The request headers exceed the server's limit of ${maxHeaderSize} bytes`]],
  ['ERR_HTTP_REQUEST_TIMEOUT', ['REQUEST_TIMEOUT', 'The request did not arrive in time']],
]);
const unparseable: [ErrorCode, string] = ['BAD_REQUEST', 'The request could not be parsed as HTTP/1.1'];

/** Connections already answered: the parser reports its error again for every further chunk. */
const answeredSockets = new WeakSet<Duplex>();

/**
 * Fastify's `clientErrorHandler`: Node's parser gave up on a connection before any request existed.
 * Answers 431 (headers over Node's maxHeaderSize, 16 KiB unless --max-http-header-size), 408 (request timeout) or 400 as
 * problem+json with Connection: close, then keeps reading for CLIENT_ERROR_LINGER_MS at most so the
 * client can finish sending and read the answer, and closes.
 */
export function answerClientError(this: FastifyInstance, error: Error & { code?: string }, socket: Duplex): void {
  if (answeredSockets.has(socket)) return;
  answeredSockets.add(socket);
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [code, detail] = clientErrorAnswers.get(error.code) ?? unparseable;
  const problem = problemFor(code, detail);
  this.log.debug({ code: error.code, status: problem.status }, 'refused a connection whose request could not be read');
  socket.on('error', () => undefined); // a reset by the client changes nothing now
  if (socket.writable) {
    const body = JSON.stringify(problem);
    const head = [
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}`,
      `Content-Type: ${PROBLEM_MEDIA_TYPE}`,
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Connection: close',
    ];
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  }
  // What the client still sends goes to the parser, which discards it (the repeats end above).
  const linger = setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS);
  socket.once('close', () => clearTimeout(linger));
}
