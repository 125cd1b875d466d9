// The closed set of error codes services may raise, and BastionError, which carries one of them.
// Services throw BastionError and know nothing of HTTP; src/http/plugins/problem.ts maps each code to
// a problem+json response through the exhaustive table below (a code without a row does not compile).

export const ErrorCode = {
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  BAD_REQUEST: 'BAD_REQUEST',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  LAST_ADMIN: 'LAST_ADMIN',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  HEADERS_TOO_LARGE: 'HEADERS_TOO_LARGE',
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  UNPROCESSABLE_MODEL: 'UNPROCESSABLE_MODEL',
  UNPROCESSABLE_DATASET: 'UNPROCESSABLE_DATASET',
  UNPROCESSABLE_POLICY: 'UNPROCESSABLE_POLICY',
  APPROVAL_CONFLICT: 'APPROVAL_CONFLICT',
  TOO_MANY_JOBS: 'TOO_MANY_JOBS',
  TOO_MANY_REQUESTS: 'TOO_MANY_REQUESTS',
  ARTIFACT_IN_USE: 'ARTIFACT_IN_USE',
  BUDGET_EXHAUSTED: 'BUDGET_EXHAUSTED',
  UNPROCESSABLE_TRAINING: 'UNPROCESSABLE_TRAINING',
  TRAINING_FINISHED: 'TRAINING_FINISHED',
  EVALUATION_CANCELLED: 'EVALUATION_CANCELLED',
  SEALED_BLOB_CORRUPT: 'SEALED_BLOB_CORRUPT',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ErrorSpec {
  /** HTTP status the code maps to. */
  readonly status: number;
  /** Problem type slug, kebab-case; the problem `type` is `PROBLEM_TYPE_BASE + slug`. */
  readonly slug: string;
  /** Short, stable, human-readable summary (RFC 9457 `title`). */
  readonly title: string;
}

export const errorSpecs: Readonly<Record<ErrorCode, ErrorSpec>> = {
  VALIDATION_FAILED: { status: 400, slug: 'validation-failed', title: 'The request is not valid' },
  BAD_REQUEST: { status: 400, slug: 'bad-request', title: 'The request could not be read' },
  UNAUTHORIZED: { status: 401, slug: 'unauthorized', title: 'A valid bearer token is required' },
  FORBIDDEN: { status: 403, slug: 'forbidden', title: 'The principal may not do this' },
  NOT_FOUND: { status: 404, slug: 'not-found', title: 'No such resource' },
  METHOD_NOT_ALLOWED: { status: 405, slug: 'method-not-allowed', title: 'Method not allowed on this resource' },
  LAST_ADMIN: { status: 409, slug: 'last-admin', title: 'The last admin principal cannot be removed' },
  PAYLOAD_TOO_LARGE: { status: 413, slug: 'payload-too-large', title: 'The request body is too large' },
  // Both answered before a request exists (plugins/problem.ts answerClientError): no route lists them.
  HEADERS_TOO_LARGE: { status: 431, slug: 'headers-too-large', title: 'The request header fields are too large' },
  REQUEST_TIMEOUT: { status: 408, slug: 'request-timeout', title: 'The request did not arrive in time' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, slug: 'unsupported-media-type', title: 'Unsupported content type' },
  UNPROCESSABLE_MODEL: { status: 422, slug: 'unprocessable-model', title: 'The model cannot be used' },
  UNPROCESSABLE_DATASET: { status: 422, slug: 'unprocessable-dataset', title: 'The dataset cannot be used' },
  UNPROCESSABLE_POLICY: { status: 422, slug: 'unprocessable-policy', title: 'The policy names principals that do not exist' },
  APPROVAL_CONFLICT: { status: 409, slug: 'approval-conflict', title: 'This release decision is not open' },
  TOO_MANY_JOBS: { status: 429, slug: 'too-many-jobs', title: 'The principal has as many jobs queued and running as it may' },
  TOO_MANY_REQUESTS: { status: 429, slug: 'too-many-requests', title: 'Too many requests from this client; retry later' },
  ARTIFACT_IN_USE: { status: 409, slug: 'artifact-in-use', title: 'The artifact is used by a training' },
  BUDGET_EXHAUSTED: { status: 409, slug: 'budget-exhausted', title: "A dataset's privacy budget does not allow this" },
  UNPROCESSABLE_TRAINING: {
    status: 422,
    slug: 'unprocessable-training',
    title: 'The model and datasets cannot be trained together as asked',
  },
  EVALUATION_CANCELLED: { status: 409, slug: 'evaluation-cancelled', title: 'The evaluation was cancelled' },
  TRAINING_FINISHED: { status: 409, slug: 'training-finished', title: 'The training has already finished' },
  // A sealed blob that fails authentication was tampered with or damaged at rest: the server's fault,
  // never the client's, and never answered with the bytes.
  SEALED_BLOB_CORRUPT: { status: 500, slug: 'sealed-blob-corrupt', title: 'Stored data failed its integrity check' },
  SERVICE_UNAVAILABLE: { status: 503, slug: 'service-unavailable', title: 'The service is not ready' },
  INTERNAL: { status: 500, slug: 'internal', title: 'Internal server error' },
};

/** Problem types are absolute URIs (RFC 9457 §3.1.1) in Bastion's own URN namespace. */
export const PROBLEM_TYPE_BASE = 'urn:bastion:problem:';

/** One field-level problem, as in the `errors` list of a validation problem. */
export interface FieldError {
  /** JSON pointer into the body (RFC 6901), e.g. "/role". */
  pointer?: string;
  /** Name of a path or query parameter. */
  parameter?: string;
  /** Name of a header. */
  header?: string;
  detail: string;
}

export interface BastionErrorDetails {
  errors?: FieldError[];
  /** Seconds a client should wait before retrying (503). */
  retryAfterSeconds?: number;
  /** Extension members added to the problem document, e.g. `{ operators: [...] }`. */
  extensions?: Record<string, unknown>;
}

export class BastionError extends Error {
  override readonly name = 'BastionError';
  readonly code: ErrorCode;
  readonly details: BastionErrorDetails;

  constructor(code: ErrorCode, message: string, details: BastionErrorDetails = {}, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

export function isBastionError(value: unknown): value is BastionError {
  return value instanceof BastionError;
}
