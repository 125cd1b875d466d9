// Multipart uploads: @fastify/multipart with the server's size limit, and receiveUpload(), which reads
// one upload form — exactly one file part under any name, plus text fields — streaming the file into
// a staged blob while it arrives. Fields are checked with ajv against the route's schema once the
// whole form is read. Whatever fails (a second file, a missing file, a bad field, a size limit, a
// malformed or truncated body, a client that goes away) discards the staged blob: a failed upload
// leaves nothing behind. What the multipart parser cannot read is the client's fault: 400, never 500.
import multipart, { type Multipart } from '@fastify/multipart';
import { Ajv, type ErrorObject } from 'ajv';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Static, TSchema } from 'typebox';
import type { StagedUpload } from '../../artifacts/blob-store.js';
import { BastionError, type FieldError } from '../../errors.js';
import { PRINTABLE_TEXT_DETAIL, PRINTABLE_TEXT_PATTERN } from '../../schemas/common.js';

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

// Form fields are text. Numbers and booleans are parsed strictly by parseFormFields (not by ajv's
// coerceTypes, which reads "0x10" as 16, "" as 0 and " 8 " as 8) before ajv checks the form.
const ajv = new Ajv({ allErrors: true, coerceTypes: false, useDefaults: true, strict: false });

/**
 * A number in a form field is written as a JSON number: optional minus, decimal digits without leading
 * zeros, an optional fraction and an optional decimal exponent ("8", "0.5", "1e-5", "2.5E3"). Hex,
 * octal and binary literals, "Infinity", "NaN", an empty value and surrounding whitespace are refused:
 * each is a plausible typo or a parser differential (another client library may read it otherwise),
 * and a privacy limit is no place to guess.
 */
const DECIMAL_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

const quote = (text: string): string => JSON.stringify(text.slice(0, 40));

interface ParsedForm {
  value: Record<string, unknown>;
  errors: FieldError[];
}

/**
 * The form's text fields with those the schema declares as number, integer or boolean parsed, and a
 * field error for each that does not parse (the field is then left out, so ajv reports the rest).
 */
function parseFormFields(schema: TSchema, fields: Readonly<Record<string, string>>): ParsedForm {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  const value: Record<string, unknown> = {};
  const errors: FieldError[] = [];
  for (const [name, text] of Object.entries(fields)) {
    const type = Object.hasOwn(properties, name) ? properties[name]!.type : undefined;
    if (type === 'number' || type === 'integer') {
      const parsed = DECIMAL_NUMBER.test(text) ? Number(text) : Number.NaN;
      if (Number.isFinite(parsed)) value[name] = parsed;
      else errors.push({ pointer: `/${name}`, detail: `must be a decimal number such as 8, 0.5 or 1e-5, not ${quote(text)}` });
    } else if (type === 'boolean') {
      if (text === 'true' || text === 'false') value[name] = text === 'true';
      else errors.push({ pointer: `/${name}`, detail: `must be true or false, not ${quote(text)}` });
    } else {
      value[name] = text;
    }
  }
  return { value, errors };
}

function fieldErrors(errors: ErrorObject[]): FieldError[] {
  return errors.map((e) => {
    const params = e.params as Record<string, unknown>;
    let pointer = e.instancePath;
    if (typeof params.missingProperty === 'string') pointer = `${pointer}/${params.missingProperty}`;
    if (typeof params.additionalProperty === 'string')
      return { pointer: `${pointer}/${params.additionalProperty}`, detail: 'is not a field of this form' };
    if (e.keyword === 'pattern' && params.pattern === PRINTABLE_TEXT_PATTERN) return { pointer, detail: PRINTABLE_TEXT_DETAIL };
    return { pointer, detail: e.message ?? 'is invalid' };
  });
}

function invalid(errors: FieldError[]): BastionError {
  const detail = errors.map((e) => `${e.pointer ?? ''} ${e.detail}`.trim()).join('; ');
  return new BastionError('VALIDATION_FAILED', `The upload form is not valid: ${detail}`, { errors });
}

/**
 * An error from the multipart parser or the request stream (busboy throws plain Errors: no boundary,
 * a malformed part header, a body that ends before the closing boundary) as the 400 it is. Our own
 * errors and @fastify/multipart's coded ones (limits: 413) pass through unchanged.
 */
function unreadable(err: unknown): unknown {
  if (err instanceof BastionError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('FST_')) return err;
  const reason = err instanceof Error ? err.message.split('\n')[0]!.slice(0, 200) : 'unreadable';
  const detail = `The multipart/form-data body cannot be read (${reason}); send it as curl -F or a FormData would`;
  return new BastionError('BAD_REQUEST', detail, {}, { cause: err });
}

/** The parser's stream of a file part, with its errors (a truncated body) turned into 400s. */
async function* clientBytes(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of source) yield chunk;
  } catch (err) {
    throw unreadable(err);
  }
}

const NAMELESS_PART = 'is a part without a name (Content-Disposition: form-data; name="...")';

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
    // Only what the parser throws is the client's fault; `stage` (disk, sealing) may fail on its own.
    let parts: AsyncIterator<Multipart>;
    try {
      parts = request.parts()[Symbol.asyncIterator]();
    } catch (err) {
      throw unreadable(err);
    }
    for (;;) {
      let next: IteratorResult<Multipart>;
      try {
        next = await parts.next();
      } catch (err) {
        throw unreadable(err);
      }
      if (next.done) break;
      const part = next.value;
      // busboy hands over a part whose Content-Disposition has no name with fieldname undefined.
      const name: unknown = part.fieldname;
      if (typeof name !== 'string' || name === '') {
        if (part.type === 'file') part.file.resume();
        throw invalid([{ pointer: '', detail: NAMELESS_PART }]);
      }
      if (part.type === 'file') {
        if (staged) throw invalid([{ pointer: `/${name}`, detail: 'is a second file part; an upload carries exactly one file' }]);
        staged = await stage(clientBytes(part.file), { ...fields });
      } else {
        if (part.fieldnameTruncated || part.valueTruncated) throw invalid([{ pointer: `/${name}`, detail: 'is too long' }]);
        if (Object.hasOwn(fields, name)) throw invalid([{ pointer: `/${name}`, detail: 'is given twice' }]);
        fields[name] = String(part.value);
      }
    }
    if (!staged) throw invalid([{ pointer: '/file', detail: 'is missing: an upload carries exactly one file part' }]);
    const { value, errors } = parseFormFields(schema, fields);
    // A field that did not parse is absent for ajv; its own error says more than "is required".
    const reported = new Set(errors.map((e) => e.pointer));
    if (!validate(value)) errors.push(...fieldErrors(validate.errors ?? []).filter((e) => !reported.has(e.pointer)));
    if (errors.length > 0) throw invalid(errors);
    return { fields: value as Static<S>, staged };
  } catch (err) {
    await staged?.discard();
    throw err;
  }
}
