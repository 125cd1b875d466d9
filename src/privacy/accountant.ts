// Privacy accountants: what (ε, δ) a list of DP releases (privacy events) has spent, under RDP or under
// privacy loss distributions. This module owns the event vocabulary and its validation; the math lives
// in ./analysis. Invariant: an accountant only ever over-states the privacy loss (every figure is an
// upper bound on the true ε or δ, up to the numerical error each analysis module states), and it
// refuses malformed events (reporting every problem at once) rather than guessing.
import { BastionError, type FieldError } from '../errors.js';
import type { AccountantName } from '../vocabulary.js';
import {
  composePlds,
  DEFAULT_TAIL_MASS_TRUNCATION,
  DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
  discreteGaussianPld,
  gaussianPld,
  type PldDirections,
  pldDelta,
  pldEpsilon,
  sampledGaussianPld,
} from './analysis/pld.js';

export { PldGridLimitError } from './analysis/pld.js';

import { DEFAULT_RDP_ORDERS, discreteGaussianRdp, gaussianRdp, rdpToDelta, rdpToEpsilon, sampledGaussianRdp } from './analysis/rdp.js';

/**
 * One kind of DP release, repeated `count` times (adaptively composed). σ is relative to L2
 * sensitivity 1; the neighbouring relation is add-or-remove-one record.
 * - `poisson-gaussian`: one DP-SGD step: each record is in the batch with probability `sampleRate`
 *   (q, in (0, 1]), then Gaussian noise of standard deviation `noiseMultiplier` (σ) is added to the
 *   clipped sum.
 * - `gaussian`: a plain Gaussian release of a sensitivity-1 statistic (a noisy metric), no sampling.
 * - `discrete-gaussian`: an integer statistic of integer sensitivity `sensitivity` (Δ ≥ 1) released
 *   with N_Z(0, σ²) added (Canonne, Kamath & Steinke 2020); `sigmaSquared` is σ² in the statistic's own
 *   units (not relative to Δ), and the exact rational value of that double is what the sampler used.
 */
export type PrivacyEvent =
  | { kind: 'poisson-gaussian'; sampleRate: number; noiseMultiplier: number; count: number }
  | { kind: 'gaussian'; noiseMultiplier: number; count: number }
  | { kind: 'discrete-gaussian'; sigmaSquared: number; sensitivity: number; count: number };

/** Every event kind, for validation. */
const EVENT_KINDS: readonly string[] = ['poisson-gaussian', 'gaussian', 'discrete-gaussian'];

/**
 * The most grid points the server lets one PLD computation use (one mechanism's grid, or the FFT of a
 * composition): 2^21. One ε at that size takes 1–3 s on one core (AMD EPYC); 3 epochs reach it between
 * ε ≈ 30 and 100 at q = 256/60000 and between ε ≈ 100 and 130 at q = 0.256 (a composition spans about
 * ε/h points). Beyond it the server calibrates and composes with RDP alone (milliseconds, looser there):
 * a plan at ε = 1000 would otherwise hold a pool worker for one to three minutes, ahead of uploads,
 * evaluations and trainings (scripts/bench/plan-accounting.ts). Either accountant's ε is an upper
 * bound, so the choice changes how much noise a target buys, never whether the guarantee holds.
 */
export const SERVER_PLD_MAX_GRID_POINTS = 2 ** 21;

export interface Accountant {
  readonly name: AccountantName;
  /** The ε (natural log, ≥ 0, possibly +∞) that `events` spend at δ in (0, 1). */
  epsilon(events: readonly PrivacyEvent[], options: { delta: number }): number;
  /** The δ in [0, 1] that `events` spend at ε ≥ 0. */
  delta?(events: readonly PrivacyEvent[], options: { epsilon: number }): number;
}

/** An RDP accountant, which also reports the curve and the optimal order. */
export interface RdpAccountant extends Accountant {
  readonly name: 'rdp';
  /** The Rényi orders it minimises over. */
  readonly orders: readonly number[];
  delta(events: readonly PrivacyEvent[], options: { epsilon: number }): number;
  /** ε at δ and the order α where it was attained (NaN when no order is usable). */
  epsilonWithOrder(events: readonly PrivacyEvent[], options: { delta: number }): { epsilon: number; order: number };
  /** The composed RDP curve ε(α) at `orders`. */
  rdp(events: readonly PrivacyEvent[]): Float64Array;
}

/** A PLD accountant (pessimistic connect-the-dots discretization, FFT composition). */
export interface PldAccountant extends Accountant {
  readonly name: 'pld';
  readonly valueDiscretizationInterval: number;
  /** The most grid points one computation may use; beyond it, epsilon and delta throw PldGridLimitError. */
  readonly maxGridPoints: number;
  delta(events: readonly PrivacyEvent[], options: { epsilon: number }): number;
}

const describe = (value: unknown): string => `${typeof value === 'number' ? String(value) : JSON.stringify(value)} of type ${typeof value}`;

/** Every problem with an event list, as field errors under `/events/<i>/<field>`; [] when valid. */
export function checkEvents(events: readonly PrivacyEvent[]): FieldError[] {
  const errors: FieldError[] = [];
  if (!Array.isArray(events))
    return [{ pointer: '/events', detail: `Expected an array of privacy events but received ${describe(events)}` }];
  events.forEach((event, i) => {
    const at = `/events/${i}`;
    const e = event as Record<string, unknown>;
    if (e === null || typeof e !== 'object' || !EVENT_KINDS.includes(e.kind as string)) {
      errors.push({
        pointer: `${at}/kind`,
        detail: `Expected 'poisson-gaussian', 'gaussian' or 'discrete-gaussian' for kind but received ${describe(e?.kind)}`,
      });
      return;
    }
    if (e.kind === 'poisson-gaussian') {
      const q = e.sampleRate;
      if (typeof q !== 'number' || !(q > 0 && q <= 1)) {
        errors.push({ pointer: `${at}/sampleRate`, detail: `Expected number in (0, 1] for sampleRate but received ${describe(q)}` });
      }
    }
    if (e.kind === 'discrete-gaussian') {
      const sigmaSquared = e.sigmaSquared;
      if (typeof sigmaSquared !== 'number' || !(sigmaSquared > 0) || !Number.isFinite(sigmaSquared)) {
        errors.push({
          pointer: `${at}/sigmaSquared`,
          detail: `Expected finite number > 0 for sigmaSquared but received ${describe(sigmaSquared)}`,
        });
      }
      const sensitivity = e.sensitivity;
      if (typeof sensitivity !== 'number' || !Number.isSafeInteger(sensitivity) || sensitivity < 1) {
        errors.push({ pointer: `${at}/sensitivity`, detail: `Expected integer ≥ 1 for sensitivity but received ${describe(sensitivity)}` });
      }
    } else {
      const sigma = e.noiseMultiplier;
      if (typeof sigma !== 'number' || !(sigma > 0) || !Number.isFinite(sigma)) {
        errors.push({
          pointer: `${at}/noiseMultiplier`,
          detail: `Expected finite number > 0 for noiseMultiplier but received ${describe(sigma)}`,
        });
      }
    }
    const count = e.count;
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
      errors.push({ pointer: `${at}/count`, detail: `Expected integer ≥ 0 for count but received ${describe(count)}` });
    }
  });
  return errors;
}

function assertEvents(events: readonly PrivacyEvent[]): void {
  const errors = checkEvents(events);
  if (errors.length > 0) {
    throw new BastionError('VALIDATION_FAILED', `Invalid privacy events: ${errors.map((e) => e.detail).join('; ')}`, { errors });
  }
}

function assertProbability(name: 'delta', value: number): void {
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    const detail = `Expected number in (0, 1) for ${name} but received ${describe(value)}`;
    throw new BastionError('VALIDATION_FAILED', detail, { errors: [{ parameter: name, detail }] });
  }
}

function assertEpsilon(value: number): void {
  if (typeof value !== 'number' || !(value >= 0) || Number.isNaN(value)) {
    const detail = `Expected number ≥ 0 for epsilon but received ${describe(value)}`;
    throw new BastionError('VALIDATION_FAILED', detail, { errors: [{ parameter: 'epsilon', detail }] });
  }
}

/** Events with count 0 removed and the sampled-Gaussian ones with q = 1 turned into plain Gaussians. */
function normalise(events: readonly PrivacyEvent[]): PrivacyEvent[] {
  return events
    .filter((e) => e.count > 0)
    .map((e) =>
      e.kind === 'poisson-gaussian' && e.sampleRate === 1 ? { kind: 'gaussian', noiseMultiplier: e.noiseMultiplier, count: e.count } : e,
    );
}

/**
 * An RDP accountant over `orders` (default: dp_accounting's 156 default orders). RDP composes by
 * adding each event's per-step curve times its count (Mironov 2017, Proposition 1).
 */
export function createRdpAccountant({ orders = DEFAULT_RDP_ORDERS }: { orders?: readonly number[] } = {}): RdpAccountant {
  const frozenOrders = Object.freeze([...orders]);
  for (const order of frozenOrders) {
    if (!(order > 1) || !Number.isFinite(order)) throw new RangeError(`RDP orders must be finite numbers > 1, got ${order}`);
  }
  const rdp = (events: readonly PrivacyEvent[]): Float64Array => {
    assertEvents(events);
    const total = new Float64Array(frozenOrders.length);
    for (const event of normalise(events)) {
      const step =
        event.kind === 'gaussian'
          ? gaussianRdp({ noiseMultiplier: event.noiseMultiplier, orders: frozenOrders })
          : event.kind === 'discrete-gaussian'
            ? discreteGaussianRdp({ sigmaSquared: event.sigmaSquared, sensitivity: event.sensitivity, orders: frozenOrders })
            : sampledGaussianRdp({ sampleRate: event.sampleRate, noiseMultiplier: event.noiseMultiplier, orders: frozenOrders });
      for (let k = 0; k < total.length; k++) total[k]! += step[k]! * event.count;
    }
    return total;
  };
  const epsilonWithOrder = (events: readonly PrivacyEvent[], { delta }: { delta: number }) => {
    assertProbability('delta', delta);
    const { value, order } = rdpToEpsilon({ orders: frozenOrders, rdp: rdp(events), delta });
    return { epsilon: value, order };
  };
  return {
    name: 'rdp',
    orders: frozenOrders,
    rdp,
    epsilonWithOrder,
    epsilon: (events, options) => epsilonWithOrder(events, options).epsilon,
    delta: (events, { epsilon }) => {
      assertEpsilon(epsilon);
      return rdpToDelta({ orders: frozenOrders, rdp: rdp(events), epsilon }).value;
    },
  };
}

export interface PldAccountantOptions {
  /** Grid step of the privacy loss, > 0 (default 1e-4, dp_accounting's PLDAccountant default). */
  valueDiscretizationInterval?: number;
  /** Mass that composition may cut from the tails (counted as infinite loss), default 1e-15. */
  tailMassTruncation?: number;
  /**
   * A bound on the work: the most grid points one mechanism's PLD or the composition's FFT may have
   * (default: none). Past it, epsilon and delta throw PldGridLimitError before doing that work.
   */
  maxGridPoints?: number;
}

/**
 * A PLD accountant: each event's privacy loss distribution discretized pessimistically
 * (connect-the-dots, Doroshenko et al. 2022) for both the remove and the add direction, all events
 * composed by FFT, ε the larger of the two directions'. See ./analysis/pld.ts for the error bounds.
 */
export function createPldAccountant({
  valueDiscretizationInterval = DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
  tailMassTruncation = DEFAULT_TAIL_MASS_TRUNCATION,
  maxGridPoints = Infinity,
}: PldAccountantOptions = {}): PldAccountant {
  if (!(valueDiscretizationInterval > 0) || !Number.isFinite(valueDiscretizationInterval)) {
    throw new RangeError(`valueDiscretizationInterval must be a finite number > 0, got ${valueDiscretizationInterval}`);
  }
  if (!(tailMassTruncation >= 0 && tailMassTruncation < 1e-3)) {
    throw new RangeError(`tailMassTruncation must be in [0, 1e-3), got ${tailMassTruncation}`);
  }
  if (!(maxGridPoints >= 2)) throw new RangeError(`maxGridPoints must be a number ≥ 2, got ${maxGridPoints}`);
  const compose = (events: readonly PrivacyEvent[]): PldDirections | null => {
    assertEvents(events);
    const grid = { valueDiscretizationInterval, maxGridPoints };
    const parts = normalise(events).map((event) => ({
      pld:
        event.kind === 'gaussian'
          ? gaussianPld({ noiseMultiplier: event.noiseMultiplier, ...grid })
          : event.kind === 'discrete-gaussian'
            ? discreteGaussianPld({ sigmaSquared: event.sigmaSquared, sensitivity: event.sensitivity, ...grid })
            : sampledGaussianPld({ sampleRate: event.sampleRate, noiseMultiplier: event.noiseMultiplier, ...grid }),
      count: event.count,
    }));
    if (parts.length === 0) return null;
    return composePlds(parts, { tailMassTruncation, maxGridPoints });
  };
  return {
    name: 'pld',
    valueDiscretizationInterval,
    maxGridPoints,
    epsilon: (events, { delta }) => {
      assertProbability('delta', delta);
      const composed = compose(events);
      return composed === null ? 0 : pldEpsilon(composed, { delta });
    },
    delta: (events, { epsilon }) => {
      assertEpsilon(epsilon);
      const composed = compose(events);
      return composed === null ? 0 : pldDelta(composed, { epsilon });
    },
  };
}

/** The accountant called `name`, with its default settings. */
export function createAccountant(name: AccountantName): RdpAccountant | PldAccountant {
  return name === 'rdp' ? createRdpAccountant() : createPldAccountant();
}
