// Policies: what a dataset's owner allows others to do with it, and whom a model's owner lets use a
// model. Their wire shapes are src/schemas/policies.ts (one place: the routes, the multipart form and the
// stored JSON are all checked against them); omitted fields take the defaults, which are the private
// ones — nobody but the owner, no non-private use, releases go to the trainer.
import { Ajv, type ErrorObject } from 'ajv';
import type { Static } from 'typebox';
import { BastionError, type FieldError } from '../errors.js';
import { DatasetPolicyInputSchema, type DatasetPolicySchema, ModelPolicyInputSchema, type ModelPolicySchema } from '../schemas/policies.js';
import type { Store } from '../store/db.js';
import { findActivePrincipal } from '../store/principals.js';
import type { AuditLog } from './audit.js';

export type DatasetPolicyInput = Static<typeof DatasetPolicyInputSchema>;

/** A dataset's policy in force; `trainers` is always known here (the wire omits it outside the owner's view). */
export type DatasetPolicy = Static<typeof DatasetPolicySchema> & Required<Pick<Static<typeof DatasetPolicySchema>, 'trainers'>>;

export type ModelPolicyInput = Static<typeof ModelPolicyInputSchema>;

export type ModelPolicy = Static<typeof ModelPolicySchema>;

export const defaultDatasetPolicy: DatasetPolicy = { trainers: [], allowEvaluation: true, allowNonPrivate: false, release: 'trainer' };
export const defaultModelPolicy: ModelPolicy = { readers: [] };

export function datasetPolicyFrom(input: DatasetPolicyInput): DatasetPolicy {
  return {
    trainers: input.trainers ?? defaultDatasetPolicy.trainers,
    ...(input.maxEpsilonPerTraining !== undefined ? { maxEpsilonPerTraining: input.maxEpsilonPerTraining } : {}),
    allowEvaluation: input.allowEvaluation ?? defaultDatasetPolicy.allowEvaluation,
    allowNonPrivate: input.allowNonPrivate ?? defaultDatasetPolicy.allowNonPrivate,
    release: input.release ?? defaultDatasetPolicy.release,
  };
}

export function modelPolicyFrom(input: ModelPolicyInput): ModelPolicy {
  return { readers: input.readers ?? defaultModelPolicy.readers };
}

/** A stored policy column (JSON), read back. */
export function parseDatasetPolicy(json: string): DatasetPolicy {
  return datasetPolicyFrom(JSON.parse(json) as DatasetPolicyInput);
}

export function parseModelPolicy(json: string): ModelPolicy {
  return modelPolicyFrom(JSON.parse(json) as ModelPolicyInput);
}

const ajv = new Ajv({
  allErrors: true,
  strict: false,
  formats: { uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i },
});
const checkDatasetInput = ajv.compile<DatasetPolicyInput>(DatasetPolicyInputSchema);
const checkModelInput = ajv.compile<ModelPolicyInput>(ModelPolicyInputSchema);

function fieldErrors(base: string, errors: ErrorObject[]): FieldError[] {
  return errors.map((e) => {
    const params = e.params as Record<string, unknown>;
    if (typeof params.additionalProperty === 'string')
      return { pointer: `${base}${e.instancePath}/${params.additionalProperty}`, detail: 'is not a policy field' };
    return { pointer: `${base}${e.instancePath}`, detail: e.message ?? 'is invalid' };
  });
}

/**
 * A policy that arrived as JSON text (the multipart form's `policy` field), checked against its
 * schema: VALIDATION_FAILED (400) naming each bad field under `pointer` (e.g. /policy/trainers).
 */
export function parsePolicyField(kind: 'dataset', text: string, pointer: string): DatasetPolicyInput;
export function parsePolicyField(kind: 'model', text: string, pointer: string): ModelPolicyInput;
export function parsePolicyField(kind: 'dataset' | 'model', text: string, pointer: string): DatasetPolicyInput | ModelPolicyInput {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BastionError('VALIDATION_FAILED', `${pointer} is not JSON`, { errors: [{ pointer, detail: 'is not JSON' }] });
  }
  const check = kind === 'dataset' ? checkDatasetInput : checkModelInput;
  if (!check(value)) {
    const errors = fieldErrors(pointer, check.errors ?? []);
    throw new BastionError('VALIDATION_FAILED', `The policy is not valid: ${errors.map((e) => `${e.pointer} ${e.detail}`).join('; ')}`, {
      errors,
    });
  }
  return value as DatasetPolicyInput | ModelPolicyInput;
}

/**
 * Every principal a policy names must be an active principal: UNPROCESSABLE_POLICY (422) naming the
 * others. The owner may be named; it changes nothing.
 */
export function requireKnownPrincipals(store: Store, ids: readonly string[] | 'everyone', pointer: string): void {
  if (ids === 'everyone') return;
  const unknown = ids.filter((id) => !findActivePrincipal(store, id));
  if (unknown.length > 0) {
    throw new BastionError(
      'UNPROCESSABLE_POLICY',
      `${pointer} names ${unknown.length === 1 ? 'an id that is not an active principal' : 'ids that are not active principals'}: ${unknown.join(', ')}`,
      {
        errors: unknown.map((id) => ({ pointer, detail: `${id} is not an active principal` })),
      },
    );
  }
}

/**
 * The dataset policy of an upload form: its `policy` field (JSON), with the older `allowNonPrivate`
 * field merged in; both given and different is VALIDATION_FAILED.
 */
export function datasetPolicyFromForm(fields: { policy?: string; allowNonPrivate?: boolean }): DatasetPolicyInput {
  const input = fields.policy !== undefined ? parsePolicyField('dataset', fields.policy, '/policy') : {};
  if (fields.allowNonPrivate === undefined) return input;
  if (input.allowNonPrivate !== undefined && input.allowNonPrivate !== fields.allowNonPrivate) {
    throw new BastionError('VALIDATION_FAILED', '/allowNonPrivate contradicts /policy/allowNonPrivate; give one of them', {
      errors: [{ pointer: '/allowNonPrivate', detail: 'contradicts /policy/allowNonPrivate' }],
    });
  }
  return { ...input, allowNonPrivate: fields.allowNonPrivate };
}

/** The model policy of an upload form's `policy` field (JSON); absent: the default. */
export function modelPolicyFromForm(fields: { policy?: string }): ModelPolicyInput {
  return fields.policy !== undefined ? parsePolicyField('model', fields.policy, '/policy') : {};
}

/**
 * Writes a new policy over an artifact's stored one and records the change (with the policy it
 * replaced) in the same transaction; NOT_FOUND if the artifact went away meanwhile. Returns the row as
 * it now is. The caller has checked that `principalId` may change it.
 */
export function replacePolicy<Row extends { policy: string }>(
  deps: { store: Store; audit: AuditLog },
  change: {
    principalId: string;
    target: { kind: 'dataset' | 'model'; id: string };
    policy: DatasetPolicy | ModelPolicy;
    find: () => Row | undefined;
    write: (json: string) => void;
    /** Who else the change concerns (the co-owners of a trained model). */
    subjects?: (row: Row) => string[];
  },
): Row {
  return deps.store.transaction(() => {
    const current = change.find();
    if (!current) throw new BastionError('NOT_FOUND', `No ${change.target.kind} with id ${change.target.id}`);
    change.write(JSON.stringify(change.policy));
    deps.audit.record({
      principalId: change.principalId,
      action: `${change.target.kind}.setPolicy`,
      target: change.target,
      outcome: 'ok',
      details: { before: JSON.parse(current.policy) as unknown, after: change.policy },
      subjects: change.subjects?.(current) ?? [],
    });
    return change.find()!;
  });
}
