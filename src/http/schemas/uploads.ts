// How OpenAPI documents the file routes: the multipart body of an upload (its form fields plus one file
// part) and a downloaded file. Documentation only: receiveUpload() reads the body, not a body schema.
import { type TSchema, Type } from 'typebox';
import type { DatasetFieldsSchema, ModelFieldsSchema } from '../../schemas/artifacts.js';

// A file part: format binary (what OpenAPI 3.0 tools and Swagger UI's file picker read) and contentMediaType
// (its OpenAPI 3.1 / JSON Schema 2020-12 spelling); the typed client makes it a Blob (scripts/openapi.ts).
const fileField = Type.String({
  format: 'binary',
  contentMediaType: 'application/octet-stream',
  description: 'The file; any part name is accepted, exactly one file part',
});

/** The multipart body as OpenAPI documents it: the fields plus one file part. */
export function multipartBody(fields: typeof ModelFieldsSchema | typeof DatasetFieldsSchema): TSchema {
  return Type.Object({ file: fileField, ...fields.properties });
}

export const binaryContent = {
  description: 'The file as uploaded, decrypted as it streams',
  content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
} as unknown as TSchema;
