// Wire shapes of principals.
import { Type } from 'typebox';
import { PRINTABLE_TEXT_PATTERN, ref } from './common.js';

export const RoleSchema = Type.Enum(['admin', 'member'], {
  type: 'string',
  description: 'admin: manages principals; member: uploads, trains and downloads as policies allow',
});

export const PrincipalSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    name: Type.String(),
    role: RoleSchema,
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'Principal', title: 'Principal', additionalProperties: false },
);

export const CreatePrincipalBody = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 200,
      pattern: PRINTABLE_TEXT_PATTERN,
      description:
        'Display name, e.g. "hospital-a" or "ci-pipeline"; printable characters only (no control or bidirectional formatting characters)',
    }),
    role: Type.Optional(RoleSchema),
  },
  { additionalProperties: false },
);

export const CreatedPrincipalSchema = Type.Object(
  {
    ...PrincipalSchema.properties,
    token: Type.String({ description: 'Bearer token. Shown only in this response; store it now.' }),
  },
  { additionalProperties: false },
);

export const PrincipalListSchema = Type.Object({ items: Type.Array(ref(PrincipalSchema)) }, { additionalProperties: false });
