import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { createRdpAccountant, type PrivacyEvent } from '../../src/privacy/accountant.js';
import {
  DEFAULT_RDP_ORDERS,
  gaussianRdp,
  OPACUS_RDP_ORDERS,
  rdpToDelta,
  rdpToEpsilon,
  sampledGaussianRdp,
} from '../../src/privacy/analysis/rdp.js';
import { testdataPath } from '../helpers/testdata.js';

// ---------------------------------------------------------------------------------------------------
// reference data (see test/data/accounting/README.md for every field and tolerance)

interface GridVector {
  q: number;
  sigma: number;
  steps: number;
  delta: number;
  eps_rdp_dpacc: number;
  eps_rdp_opacus: number;
  eps_rdp_opacus_dpacc_orders: number;
  rdp_order_dpacc: number;
  rdp_dpacc_excluded_orders: number[];
}
interface RdpValues {
  q: number;
  sigma: number;
  orders_rdp: (number | null)[];
  orders_rdp_opacus: number[];
}
interface GaussianVector {
  sigma: number;
  steps: number;
  delta: number;
  eps_rdp_dpacc: number;
  eps_rdp_opacus: number;
  rdp_order_dpacc: number;
}
interface HeterogeneousVector {
  parts: { q: number; sigma: number; steps: number }[];
  delta: number;
  eps_rdp_dpacc: number;
  eps_rdp_opacus: number;
  rdp_order_dpacc: number;
}
const vectors = JSON.parse(readFileSync(testdataPath('accounting', 'vectors.json'), 'utf8')) as {
  references: { settings: { rdp_dpacc_default_orders: number[]; rdp_opacus_default_alphas: number[] } };
  vectors: GridVector[];
  rdp_orders: number[];
  rdp_values: RdpValues[];
  gaussian: GaussianVector[];
  heterogeneous: HeterogeneousVector[];
};

const step = (q: number, sigma: number, count: number): PrivacyEvent =>
  q === 1
    ? { kind: 'gaussian', noiseMultiplier: sigma, count }
    : { kind: 'poisson-gaussian', sampleRate: q, noiseMultiplier: sigma, count };
const relative = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

// Tolerances from the README ("Tolerances a good implementation should meet").
const RDP_RELATIVE = 1e-3;
const PER_ORDER_RELATIVE = 1e-9;

const rdp = createRdpAccountant();

// ---------------------------------------------------------------------------------------------------
// order grids and per-order values

test('the default orders are exactly dp_accounting’s 156 and the Opacus list its 151', () => {
  assert.deepEqual([...DEFAULT_RDP_ORDERS], vectors.references.settings.rdp_dpacc_default_orders);
  assert.deepEqual([...OPACUS_RDP_ORDERS], vectors.references.settings.rdp_opacus_default_alphas);
  assert.deepEqual([...rdp.orders], [...DEFAULT_RDP_ORDERS]);
});

test('per-step RDP at integer orders matches both libraries to 1e-9 relative (56 pairs)', () => {
  let worst = 0;
  for (const entry of vectors.rdp_values) {
    const mine = sampledGaussianRdp({ sampleRate: entry.q, noiseMultiplier: entry.sigma, orders: vectors.rdp_orders });
    vectors.rdp_orders.forEach((order, k) => {
      if (!Number.isInteger(order)) return;
      for (const reference of [entry.orders_rdp[k]!, entry.orders_rdp_opacus[k]!]) {
        const deviation = relative(mine[k]!, reference);
        worst = Math.max(worst, deviation);
        assert.ok(deviation <= PER_ORDER_RELATIVE, `q=${entry.q} σ=${entry.sigma} α=${order}: ${mine[k]} vs ${reference}`);
      }
    });
  }
  assert.ok(worst <= PER_ORDER_RELATIVE, `worst integer-order deviation ${worst}`);
});

test('per-step RDP at fractional orders is the exact signed series: Opacus’s value to 1e-9, never above dp_accounting’s absolute-value bound', () => {
  for (const entry of vectors.rdp_values) {
    const mine = sampledGaussianRdp({ sampleRate: entry.q, noiseMultiplier: entry.sigma, orders: vectors.rdp_orders });
    vectors.rdp_orders.forEach((order, k) => {
      if (Number.isInteger(order)) return;
      const exact = entry.orders_rdp_opacus[k]!;
      assert.ok(relative(mine[k]!, exact) <= PER_ORDER_RELATIVE, `q=${entry.q} σ=${entry.sigma} α=${order}: ${mine[k]} vs exact ${exact}`);
      const loose = entry.orders_rdp[k];
      if (loose !== null && loose !== undefined)
        assert.ok(mine[k]! <= loose * (1 + 1e-12), `α=${order}: ${mine[k]} above dp_accounting's bound ${loose}`);
    });
  }
});

test('per-step RDP of the plain Gaussian is α/(2σ²), for q = 1 and for the gaussian event alike', () => {
  const orders = [1.5, 2, 10, 1024];
  const sampled = sampledGaussianRdp({ sampleRate: 1, noiseMultiplier: 2, orders });
  const plain = gaussianRdp({ noiseMultiplier: 2, orders });
  assert.deepEqual([...sampled], [...plain]);
  assert.deepEqual(
    [...plain],
    orders.map((a) => a / 8),
  );
  assert.deepEqual([...sampledGaussianRdp({ sampleRate: 0, noiseMultiplier: 2, orders })], [0, 0, 0, 0]);
});

test('refuses an order ≤ 1', () => {
  assert.throws(() => sampledGaussianRdp({ sampleRate: 0.1, noiseMultiplier: 1, orders: [1] }), /order must be a finite number > 1/);
  assert.throws(() => createRdpAccountant({ orders: [0.5, 2] }), /orders must be finite numbers > 1/);
});

// ---------------------------------------------------------------------------------------------------
// (ε, δ) against the grid, the Gaussian and the heterogeneous cases

test('RDP ε of all 292 grid vectors lies within [exact-series value·(1-1e-3), dp_accounting·(1+1e-3)]', () => {
  let worstAbove = -Infinity;
  let worstBelow = -Infinity;
  for (const v of vectors.vectors) {
    const epsilon = rdp.epsilon([step(v.q, v.sigma, v.steps)], { delta: v.delta });
    const above = epsilon / v.eps_rdp_dpacc - 1;
    const below = 1 - epsilon / v.eps_rdp_opacus_dpacc_orders;
    worstAbove = Math.max(worstAbove, above);
    worstBelow = Math.max(worstBelow, below);
    const at = `q=${v.q} σ=${v.sigma} T=${v.steps} δ=${v.delta}: ε=${epsilon}`;
    assert.ok(epsilon <= v.eps_rdp_dpacc * (1 + RDP_RELATIVE), `${at} above dp_accounting ${v.eps_rdp_dpacc}`);
    assert.ok(
      epsilon >= v.eps_rdp_opacus_dpacc_orders * (1 - RDP_RELATIVE),
      `${at} below the exact-series value ${v.eps_rdp_opacus_dpacc_orders}`,
    );
  }
  // Exact fractional orders land on the exact-series value (the README's expectation).
  assert.ok(
    worstBelow < 1e-9 && worstAbove < 1e-9,
    `worst relative deviations: above dp_accounting ${worstAbove}, below exact ${worstBelow}`,
  );
});

test('the optimal order is dp_accounting’s wherever both libraries’ ε agree', () => {
  let compared = 0;
  for (const v of vectors.vectors) {
    if (relative(v.eps_rdp_dpacc, v.eps_rdp_opacus_dpacc_orders) > 1e-9) continue;
    const { order } = rdp.epsilonWithOrder([step(v.q, v.sigma, v.steps)], { delta: v.delta });
    assert.equal(order, v.rdp_order_dpacc, `q=${v.q} σ=${v.sigma} T=${v.steps}`);
    compared++;
  }
  assert.ok(compared > 100, `compared ${compared} vectors`);
});

test('on Opacus’s alphas the ε is Opacus’s (the order grid alone explains their difference)', () => {
  const opacus = createRdpAccountant({ orders: OPACUS_RDP_ORDERS });
  for (const v of vectors.vectors) {
    const epsilon = opacus.epsilon([step(v.q, v.sigma, v.steps)], { delta: v.delta });
    assert.ok(relative(epsilon, v.eps_rdp_opacus) <= 1e-9, `q=${v.q} σ=${v.sigma} T=${v.steps}: ${epsilon} vs Opacus ${v.eps_rdp_opacus}`);
  }
});

test('plain Gaussian releases (48 cases): ε and optimal order equal dp_accounting’s', () => {
  for (const g of vectors.gaussian) {
    const { epsilon, order } = rdp.epsilonWithOrder([{ kind: 'gaussian', noiseMultiplier: g.sigma, count: g.steps }], { delta: g.delta });
    assert.ok(relative(epsilon, g.eps_rdp_dpacc) <= 1e-9, `σ=${g.sigma} T=${g.steps} δ=${g.delta}: ${epsilon} vs ${g.eps_rdp_dpacc}`);
    assert.equal(order, g.rdp_order_dpacc);
  }
});

test('heterogeneous compositions (6 cases) meet the grid’s RDP bounds', () => {
  for (const h of vectors.heterogeneous) {
    const events = h.parts.map((p) => step(p.q, p.sigma, p.steps));
    const epsilon = rdp.epsilon(events, { delta: h.delta });
    // No fractional-order gap here: dp_accounting and exact RDP agree, so both bounds are one.
    assert.ok(epsilon <= h.eps_rdp_dpacc * (1 + RDP_RELATIVE), `${JSON.stringify(h.parts)}: ${epsilon} vs ${h.eps_rdp_dpacc}`);
    assert.ok(epsilon >= h.eps_rdp_dpacc * (1 - RDP_RELATIVE), `${JSON.stringify(h.parts)}: ${epsilon} vs ${h.eps_rdp_dpacc}`);
  }
});

// ---------------------------------------------------------------------------------------------------
// conversions

test('rdpToEpsilon applies dp_accounting’s extras: ε = 0 under the KL bound, orders ≤ 1.01 ignored, +∞ orders skipped', () => {
  assert.deepEqual(rdpToEpsilon({ orders: [2, 3], rdp: [1e-12, 2e-12], delta: 1e-5 }), { value: 0, order: 2 });
  assert.deepEqual(rdpToEpsilon({ orders: [1.005], rdp: [0.5], delta: 1e-5 }), { value: Infinity, order: NaN });
  const { order } = rdpToEpsilon({ orders: [2, 3], rdp: [Infinity, 0.1], delta: 1e-5 });
  assert.equal(order, 3);
});

test('rdpToDelta inverts rdpToEpsilon: δ(ε(δ)) ≤ δ', () => {
  fc.assert(
    fc.property(
      fc.double({ min: 1e-3, max: 0.3, noNaN: true }),
      fc.double({ min: 0.6, max: 5, noNaN: true }),
      fc.integer({ min: 1, max: 50_000 }),
      fc.constantFrom(1e-7, 1e-5, 1e-3),
      (q, sigma, steps, delta) => {
        const curve = sampledGaussianRdp({ sampleRate: q, noiseMultiplier: sigma, orders: DEFAULT_RDP_ORDERS }).map((r) => r * steps);
        const epsilon = rdpToEpsilon({ orders: DEFAULT_RDP_ORDERS, rdp: curve, delta }).value;
        const back = rdpToDelta({ orders: DEFAULT_RDP_ORDERS, rdp: curve, epsilon }).value;
        return epsilon === 0 || back <= delta * (1 + 1e-9);
      },
    ),
    { numRuns: 30 },
  );
});

// ---------------------------------------------------------------------------------------------------
// properties

const qArb = fc.double({ min: 1e-4, max: 0.5, noNaN: true });
const sigmaArb = fc.double({ min: 0.5, max: 8, noNaN: true });
const deltaArb = fc.constantFrom(1e-6, 1e-5, 1e-3);

test('ε grows with steps and with the sampling rate, and falls with the noise multiplier', () => {
  fc.assert(
    fc.property(
      qArb,
      sigmaArb,
      fc.integer({ min: 1, max: 100_000 }),
      deltaArb,
      fc.double({ min: 1.01, max: 3, noNaN: true }),
      (q, sigma, steps, delta, factor) => {
        const eps = (qq: number, s: number, t: number) => rdp.epsilon([step(qq, s, t)], { delta });
        const base = eps(q, sigma, steps);
        assert.ok(eps(q, sigma, Math.ceil(steps * factor)) >= base, 'more steps');
        assert.ok(eps(Math.min(1, q * factor), sigma, steps) >= base, 'larger q');
        assert.ok(eps(q, sigma * factor, steps) <= base, 'larger σ');
      },
    ),
    { numRuns: 25 },
  );
});

test('composing events one by one equals composing them at once, in any order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.option(qArb, { nil: 1 }), sigmaArb, fc.integer({ min: 1, max: 5000 })), { minLength: 1, maxLength: 4 }),
      (parts) => {
        const events = parts.map(([q, s, t]) => step(q, s, t));
        const curve = rdp.rdp(events);
        const split = rdp.rdp(parts.flatMap(([q, s, t]) => [step(q, s, Math.floor(t / 2)), step(q, s, t - Math.floor(t / 2))]));
        const reversed = rdp.rdp([...events].reverse());
        curve.forEach((r, k) => {
          assert.ok(Math.abs(split[k]! - r) <= 1e-12 * r, `split at order ${DEFAULT_RDP_ORDERS[k]}`);
          assert.ok(Math.abs(reversed[k]! - r) <= 1e-12 * r, `reversed at order ${DEFAULT_RDP_ORDERS[k]}`);
        });
        const delta = 1e-5;
        const once = rdp.epsilon(events, { delta });
        assert.ok(Math.abs(rdp.epsilon([...events].reverse(), { delta }) - once) <= 1e-12 * once);
      },
    ),
    { numRuns: 20 },
  );
});
