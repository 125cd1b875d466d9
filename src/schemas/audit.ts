// Wire shapes of the audit log: one entry (the AuditEntry of src/governance/audit.ts), a page of
// entries with its cursor, and the page's query parameters.
import { Type } from 'typebox';
import { nullable, ref } from './common.js';

export const AuditTargetSchema = Type.Object(
  { kind: Type.Enum(['principal', 'dataset', 'model', 'training', 'evaluation'], { type: 'string' }), id: Type.String() },
  { additionalProperties: false },
);

export const AuditEntrySchema = Type.Object(
  {
    seq: Type.Integer({ minimum: 1, description: 'Position in the log: 1, 2, 3, … without gaps' }),
    time: Type.String({ format: 'date-time' }),
    principalId: nullable(Type.String({ description: 'Who acted; null for the server itself' })),
    action: Type.String({ description: '<noun>.<verb>, e.g. dataset.create, training.cancel, ledger.charge' }),
    target: nullable(AuditTargetSchema),
    outcome: Type.Enum(['ok', 'refused'], { type: 'string', description: 'refused: an access the server denied' }),
    details: Type.Object({}, { additionalProperties: true, description: 'Facts of the change (never data values, tokens or keys)' }),
  },
  { $id: 'AuditEntry', title: 'AuditEntry', additionalProperties: false },
);

export const AuditPageSchema = Type.Object(
  {
    items: Type.Array(ref(AuditEntrySchema)),
    next: nullable(Type.Integer({ minimum: 1, description: 'Pass as `after` for the next page; null on the last page' })),
  },
  { additionalProperties: false },
);

export const AuditQuerySchema = Type.Object(
  {
    after: Type.Optional(Type.Integer({ minimum: 0, description: 'Return entries after this seq (default 0: from the first)' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Most entries to return (default 100)' })),
  },
  { additionalProperties: false },
);
