// Multipart uploads: @fastify/multipart with the server's size limit, and receiveUpload(), which reads
// one upload form — exactly one file part under any name, plus text fields — streaming the file into
// a staged blob while it arrives. Fields are checked with ajv against the route's schema once the
// whole form is read. Whatever fails (a second file, a missing file, a bad field, a size limit, a
// client that goes away) discards the staged blob: a failed upload leaves nothing behind.
import multipart from '@fastify/multipart';
import { Ajv, type ErrorObject } from 'ajv';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Static, TSchema } from 'typebox';
import type { StagedUpload } from '../../artifacts/blob-store.js';
import { BastionError, type FieldError } from '../../errors.js';

export interface MultipartOptions {
  /** Largest accepted file part in bytes; above it, 413. */
  maxFileBytes: number;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Documents a multipart request body in OpenAPI (the route reads it with receiveUpload). */
    multipartBody?: TSchema;
  }
}

export default fp(
  async function multipartPlugin(app: FastifyInstance, options: MultipartOptions) {
    await app.register(multipart, {
      throwFileSizeLimit: true,
      limits: { fileSize: options.maxFileBytes, fields: 20, fieldSize: 64 * 1024, parts: 32, headerPairs: 100 },
    });
  },
  { name: 'bastion-multipart' },
);

// Form fields are text: numbers and booleans are coerced, like query strings.
const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: false });

function fieldErrors(errors: ErrorObject[]): FieldError[] {
  return errors.map((e) => {
    const params = e.params as Record<string, unknown>;
    let pointer = e.instancePath;
    if (typeof params.missingProperty === 'string') pointer = `${pointer}/${params.missingProperty}`;
    if (typeof params.additionalProperty === 'string') return { pointer: `${pointer}/${params.additionalProperty}`, detail: 'is not a field of this form' };
    return { pointer, detail: e.message ?? 'is invalid' };
  });
}

function invalid(errors: FieldError[]): BastionError {
  const detail = errors.map((e) => `${e.pointer ?? ''} ${e.detail}`.trim()).join('; ');
  return new BastionError('VALIDATION_FAILED', `The upload form is not valid: ${detail}`, { errors });
}

/**
 * Reads a multipart upload form. `stage` receives the file part's stream, which it must consume, and
 * the fields that came before it (unvalidated hints); all fields are validated against `schema`
 * once the form has been read.
 */
export async function receiveUpload<S extends TSchema, T extends StagedUpload>(
  request: FastifyRequest,
  schema: S,
  stage: (source: AsyncIterable<Uint8Array>, fieldsBefore: Readonly<Record<string, string>>) => Promise<T>,
): Promise<{ fields: Static<S>; staged: T }> {
  if (!request.isMultipart()) {
    throw new BastionError('UNSUPPORTED_MEDIA_TYPE', 'Uploads are multipart/form-data with one file part (curl -F file=@path -F name=...)');
  }
  const validate = ajv.compile(schema);
  const fields: Record<string, string> = {};
  let staged: T | undefined;
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (staged) throw invalid([{ pointer: `/${part.fieldname}`, detail: 'is a second file part; an upload carries exactly one file' }]);
        staged = await stage(part.file, { ...fields });
      } else {
        if (part.fieldnameTruncated || part.valueTruncated) throw invalid([{ pointer: `/${part.fieldname}`, detail: 'is too long' }]);
        if (Object.hasOwn(fields, part.fieldname)) throw invalid([{ pointer: `/${part.fieldname}`, detail: 'is given twice' }]);
        fields[part.fieldname] = String(part.value);
      }
    }
    if (!staged) throw invalid([{ pointer: '/file', detail: 'is missing: an upload carries exactly one file part' }]);
    const value: Record<string, unknown> = { ...fields };
    if (!validate(value)) throw invalid(fieldErrors(validate.errors ?? []));
    return { fields: value as Static<S>, staged };
  } catch (err) {
    await staged?.discard();
    throw err;
  }
}
