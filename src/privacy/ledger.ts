// The privacy ledger: every DP release charged to each dataset, and the rule that no charge may take
// a dataset past its privacy limit. A dataset's spent ε is the composition of all its events (never a
// sum of per-release ε's) under the tightest sound accountant: the smaller of the PLD and RDP bounds,
// both upper bounds on the true ε. Charging is all or none: one IMMEDIATE transaction reads every
// dataset's events, checks each against its limit with the new events composed in, and only then
// writes any row, so concurrent charges serialise and none can overdraw a budget.
//
// The accountants take up to seconds (PLD), so the ε figures are computed outside the transaction and,
// in the server, in the worker pool (deps.math): a charge computes from a snapshot of the ledgers and
// writes only if the transaction finds the snapshot still current, recomputing otherwise.
import type { Static } from 'typebox';
import { v7 as uuidv7 } from 'uuid';
import { BastionError } from '../errors.js';
import type { AuditLog } from '../governance/audit.js';
import type { DatasetPrivacySchema } from '../schemas/trainings.js';
import { findDatasetRow } from '../store/artifacts.js';
import type { Store } from '../store/db.js';
import { type ChargeSourceKind, insertCharge, lastChargeId, listCharges } from '../store/ledger.js';
import { findTrainingRow } from '../store/trainings.js';
import type { AccountantName } from '../vocabulary.js';
import {
  type Accountant,
  checkEvents,
  createPldAccountant,
  createRdpAccountant,
  PldGridLimitError,
  type PrivacyEvent,
  SERVER_PLD_MAX_GRID_POINTS,
} from './accountant.js';
import type { TrainingNoise, TrainingNoiseOptions } from './calibration.js';

export interface ComposedEpsilon {
  epsilon: number;
  accountant: AccountantName;
}

/**
 * Where the accountants run. Absent: on the calling thread. The server passes one backed by the
 * worker pool, so PLD work (up to seconds) never blocks the event loop.
 */
export interface PrivacyMath {
  composedEpsilon(events: readonly PrivacyEvent[], delta: number): Promise<ComposedEpsilon>;
  calibrateTrainingNoise(options: TrainingNoiseOptions): Promise<TrainingNoise>;
}

export interface LedgerDeps {
  store: Store;
  math?: PrivacyMath;
  /** Every charge is recorded there, in the transaction that writes it. */
  audit: AuditLog;
}

/** What caused a charge: a training job, an evaluation, a released metric. */
export interface ChargeSource {
  kind: ChargeSourceKind;
  id: string;
}

/** A charge's cause and the principal whose request it was. */
export interface ChargeCause extends ChargeSource {
  principalId: string;
}

/** Samples of one dataset a private training dropped, by reason (counts only). */
export interface DroppedSampleCounts {
  exception: number;
  nonFiniteLoss: number;
  nonFiniteGradient: number;
}

export interface LedgerEntry {
  id: string;
  event: PrivacyEvent;
  source: ChargeSource;
  /** Whose request caused the charge (null for charges made before this was recorded); the dataset's owner's view only. */
  principalId?: string | null;
  createdAt: string;
  /**
   * A training's events, for the dataset's owner only: how many of this dataset's samples it dropped.
   * Data-derived, so the model's author (or anyone else) never gets it.
   */
  dropped?: DroppedSampleCounts;
}

/** The wire shape (schemas/trainings.ts), with each event as the ledger types it. */
export type DatasetPrivacy = Omit<Static<typeof DatasetPrivacySchema>, 'events'> & { events: LedgerEntry[] };

const accountants: readonly Accountant[] = [createPldAccountant({ maxGridPoints: SERVER_PLD_MAX_GRID_POINTS }), createRdpAccountant()];

/**
 * ε of `events` at δ under the tightest sound accountant, and which one it was. No events: 0.
 * Both accountants over-state ε (PLD by at most its discretization, pessimistically), so the smaller
 * figure is still an upper bound. PLD is skipped where it would exceed its work bound
 * (SERVER_PLD_MAX_GRID_POINTS: ε in the tens or more), and RDP's figure stands alone: still an upper bound.
 */
export function composedEpsilon(events: readonly PrivacyEvent[], delta: number): ComposedEpsilon {
  if (events.length === 0) return { epsilon: 0, accountant: 'pld' };
  events = coalesce(events);
  let best: ComposedEpsilon = { epsilon: Number.POSITIVE_INFINITY, accountant: 'rdp' };
  for (const accountant of accountants) {
    let epsilon: number;
    try {
      epsilon = accountant.epsilon(events, { delta });
    } catch (err) {
      if (err instanceof PldGridLimitError) continue;
      throw err;
    }
    if (epsilon < best.epsilon) best = { epsilon, accountant: accountant.name };
  }
  return best;
}

/**
 * The same events with repeats of one mechanism merged into one event of the summed count. Composition
 * is commutative, so this changes no figure; it keeps the accountants' work proportional to the
 * number of distinct mechanisms, not to the number of charges.
 */
export function coalesce(events: readonly PrivacyEvent[]): PrivacyEvent[] {
  const merged = new Map<string, PrivacyEvent>();
  for (const event of events) {
    const key =
      event.kind === 'gaussian'
        ? `g:${event.noiseMultiplier}`
        : event.kind === 'discrete-gaussian'
          ? `d:${event.sigmaSquared}:${event.sensitivity}`
          : `p:${event.sampleRate}:${event.noiseMultiplier}`;
    const seen = merged.get(key);
    merged.set(key, seen ? { ...seen, count: seen.count + event.count } : { ...event });
  }
  return [...merged.values()];
}

// Composition is a pure function of the coalesced events and δ: remember recent answers (and answers
// under way), so a preview and the charge that follows it compute each figure once.
const MEMO_SIZE = 256;
const memo = new Map<string, Promise<ComposedEpsilon>>();

/**
 * ε at δ of `events` as the ledger composes them (composedEpsilon, memoised, in deps.math when given):
 * what a charge of exactly these events records on a dataset with no history. Plans show it, so that
 * a plan's ε is the ledger's figure whichever accountant calibrated σ.
 */
export function ledgerEpsilon(deps: Pick<LedgerDeps, 'math'>, events: readonly PrivacyEvent[], delta: number): Promise<ComposedEpsilon> {
  return compose(deps, events, delta);
}

function compose(deps: Pick<LedgerDeps, 'math'>, events: readonly PrivacyEvent[], delta: number): Promise<ComposedEpsilon> {
  if (events.length === 0) return Promise.resolve({ epsilon: 0, accountant: 'pld' });
  const merged = coalesce(events);
  const key = `${delta}|${JSON.stringify(merged)}`;
  let answer = memo.get(key);
  if (answer) {
    memo.delete(key);
  } else {
    answer = deps.math ? deps.math.composedEpsilon(merged, delta) : Promise.resolve().then(() => composedEpsilon(merged, delta));
    answer.catch(() => memo.delete(key));
  }
  memo.set(key, answer);
  if (memo.size > MEMO_SIZE) memo.delete(memo.keys().next().value!);
  return answer;
}

function requireDataset(store: Store, datasetId: string) {
  const row = findDatasetRow(store, datasetId);
  if (!row) throw new BastionError('NOT_FOUND', `No dataset with id ${datasetId}`);
  return row;
}

function entries(store: Store, datasetId: string): (LedgerEntry & { principalId: string | null })[] {
  return listCharges(store, datasetId).map((row) => ({
    id: row.id,
    event: JSON.parse(row.event) as PrivacyEvent,
    source: { kind: row.sourceKind, id: row.sourceId },
    principalId: row.principalId,
    createdAt: row.createdAt,
  }));
}

async function privacyOf(
  deps: Pick<LedgerDeps, 'store' | 'math'>,
  datasetId: string,
  extra: readonly PrivacyEvent[] = [],
): Promise<DatasetPrivacy> {
  const dataset = requireDataset(deps.store, datasetId);
  const events = entries(deps.store, datasetId);
  const { epsilon, accountant } = await compose(deps, [...events.map((e) => e.event), ...extra], dataset.delta);
  return {
    datasetId,
    privacyLimit: dataset.privacyLimit,
    delta: dataset.delta,
    epsilonSpent: epsilon,
    epsilonRemaining: Math.max(0, dataset.privacyLimit - epsilon),
    accountant,
    events,
  };
}

/**
 * A dataset's budget: its limit, δ, what its events have spent, and the events. With `details` (for the
 * dataset's owner), each event names the principal whose request caused it, and each training's events
 * carry the samples of this dataset the training dropped (once it recorded them); without, neither.
 */
export async function datasetPrivacy(
  deps: Pick<LedgerDeps, 'store' | 'math'>,
  datasetId: string,
  details = false,
): Promise<DatasetPrivacy> {
  const privacy = await privacyOf(deps, datasetId);
  if (!details) return { ...privacy, events: privacy.events.map(({ principalId: _, ...entry }) => entry) };
  const events = privacy.events.map((entry) => {
    if (entry.source.kind !== 'training') return entry;
    const dropped = findTrainingRow(deps.store, entry.source.id)?.dropped;
    const mine = dropped ? (JSON.parse(dropped) as Record<string, DroppedSampleCounts>)[datasetId] : undefined;
    if (!mine) return entry;
    return {
      ...entry,
      dropped: { exception: mine.exception, nonFiniteLoss: mine.nonFiniteLoss, nonFiniteGradient: mine.nonFiniteGradient },
    };
  });
  return { ...privacy, events };
}

export interface ChargeItem {
  datasetId: string;
  events: PrivacyEvent[];
}

export interface ChargePreview {
  datasetId: string;
  privacyLimit: number;
  delta: number;
  epsilonBefore: number;
  /** ε spent once these events are composed with the dataset's history. */
  epsilonAfter: number;
  allowed: boolean;
}

function checkItems(items: readonly ChargeItem[]): void {
  const errors = items.flatMap((item, i) => checkEvents(item.events).map((e) => ({ ...e, pointer: `/charges/${i}${e.pointer ?? ''}` })));
  if (errors.length > 0) throw new BastionError('VALIDATION_FAILED', errors.map((e) => `${e.pointer} ${e.detail}`).join('; '), { errors });
}

/** What charging `items` would do to each dataset's budget, without charging anything. */
export function previewCharges(deps: Pick<LedgerDeps, 'store' | 'math'>, items: readonly ChargeItem[]): Promise<ChargePreview[]> {
  checkItems(items);
  return Promise.all(
    items.map(async (item) => {
      const [before, after] = await Promise.all([privacyOf(deps, item.datasetId), privacyOf(deps, item.datasetId, item.events)]);
      return {
        datasetId: item.datasetId,
        privacyLimit: before.privacyLimit,
        delta: before.delta,
        epsilonBefore: before.epsilonSpent,
        epsilonAfter: after.epsilonSpent,
        allowed: after.epsilonSpent <= before.privacyLimit,
      };
    }),
  );
}

/** How often a charge is recomputed when other charges keep landing on its datasets meanwhile. */
const MAX_CHARGE_ATTEMPTS = 20;

class StaleSnapshot extends Error {}

/**
 * Charges every item's events to its dataset for `source`, or none of them: throws BUDGET_EXHAUSTED
 * naming each dataset whose limit the new events would pass (NOT_FOUND for an unknown dataset). Each
 * dataset's charge is audited, and `alsoInTransaction` (the row of the job that caused it) runs, in the
 * transaction that writes the charge: the job exists if and only if its charge does.
 */
export async function chargeLedger(
  deps: LedgerDeps,
  source: ChargeCause,
  items: readonly ChargeItem[],
  alsoInTransaction: () => void = () => undefined,
): Promise<ChargePreview[]> {
  checkItems(items);
  for (let attempt = 0; attempt < MAX_CHARGE_ATTEMPTS; attempt += 1) {
    const versions = items.map((item) => lastChargeId(deps.store, item.datasetId));
    // The events are read right after the versions; a charge landing in between (from another
    // connection) fails the transaction's version check and costs a retry, never a wrong figure.
    const previews = await previewCharges(deps, items);
    const refused = previews.filter((p) => !p.allowed);
    try {
      return deps.store.transaction(() => {
        items.forEach((item, i) => {
          if (lastChargeId(deps.store, item.datasetId) !== versions[i]) throw new StaleSnapshot();
        });
        if (refused.length > 0) {
          throw new BastionError(
            'BUDGET_EXHAUSTED',
            refused
              .map((p) => `dataset ${p.datasetId} would spend ε = ${p.epsilonAfter.toPrecision(4)} of its limit ${p.privacyLimit}`)
              .join('; '),
            { extensions: { datasets: refused } },
          );
        }
        const createdAt = new Date().toISOString();
        alsoInTransaction();
        items.forEach((item, i) => {
          for (const event of item.events) {
            insertCharge(deps.store, {
              id: uuidv7(),
              datasetId: item.datasetId,
              sourceKind: source.kind,
              sourceId: source.id,
              principalId: source.principalId,
              event: JSON.stringify(event),
              createdAt,
            });
          }
          const preview = previews[i]!;
          deps.audit.record({
            principalId: source.principalId,
            action: 'ledger.charge',
            target: { kind: 'dataset', id: item.datasetId },
            outcome: 'ok',
            details: {
              source: { kind: source.kind, id: source.id },
              events: item.events,
              epsilonBefore: preview.epsilonBefore,
              epsilonAfter: preview.epsilonAfter,
            },
            subjects: [requireDataset(deps.store, item.datasetId).ownerId],
          });
        });
        return previews;
      });
    } catch (err) {
      if (!(err instanceof StaleSnapshot)) throw err;
    }
  }
  throw new BastionError('SERVICE_UNAVAILABLE', 'The privacy ledger is busy with other charges to the same datasets; retry', {
    retryAfterSeconds: 1,
  });
}
