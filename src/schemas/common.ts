// What the wire shapes share: typed references to the shapes registered by $id, nullable values, and
// the printable-text rule of names. Neutral ground: src/http and the services both import src/schemas,
// which imports only the base layer, so a service's type is derived from the shape the API declares.
import { type Static, type TSchema, type TUnsafe, Type } from 'typebox';

/**
 * A reference to a schema registered by its $id (app.ts addSchema), typed as the schema itself: the
 * document keeps `$ref` to one component, and the type provider checks what a route answers against
 * the shape (a bare Type.Ref is `unknown` to it, so any value would compile).
 */
export function ref<T extends TSchema>(schema: T, options: { description?: string } = {}): TUnsafe<Static<T>> {
  const id = (schema as { $id?: unknown }).$id;
  if (typeof id !== 'string') throw new Error('ref() takes a schema with an $id');
  return Type.Unsafe<Static<T>>(Type.Ref(id, options));
}

export const nullable = <T extends TSchema>(schema: T, options: { description?: string } = {}) =>
  Type.Union([schema, Type.Null()], options);

/**
 * Text a person reads back in listings, logs and audit entries (names): no control characters (C0,
 * DEL, C1), no line or paragraph separators and no bidirectional formatting characters (ALM, LRM,
 * RLM, the embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069), nor a BOM. Each of
 * these can make a name display as another (U+202E reverses what follows) or forge log lines.
 */
export const PRINTABLE_TEXT_PATTERN = '^[^\\u0000-\\u001F\\u007F-\\u009F\\u061C\\u200E\\u200F\\u2028-\\u202E\\u2066-\\u2069\\uFEFF]*$';
/** The validation detail of a value that does not match PRINTABLE_TEXT_PATTERN. */
export const PRINTABLE_TEXT_DETAIL = 'must not contain control characters, line separators or bidirectional formatting characters';
