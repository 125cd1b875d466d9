import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BastionError } from '../../src/errors.js';
import {
  checkEvents,
  createAccountant,
  createPldAccountant,
  createRdpAccountant,
  type PrivacyEvent,
} from '../../src/privacy/accountant.js';

const dpSgd: PrivacyEvent = { kind: 'poisson-gaussian', sampleRate: 256 / 60_000, noiseMultiplier: 1.1, count: 2343 };
const metric: PrivacyEvent = { kind: 'gaussian', noiseMultiplier: 10, count: 10 };

test('createAccountant returns the named accountant; both implement epsilon and delta', () => {
  const rdp = createAccountant('rdp');
  const pld = createAccountant('pld');
  assert.equal(rdp.name, 'rdp');
  assert.equal(pld.name, 'pld');
  for (const accountant of [rdp, pld]) {
    const epsilon = accountant.epsilon([dpSgd, metric], { delta: 1e-5 });
    assert.ok(epsilon > 0 && Number.isFinite(epsilon));
    const delta = accountant.delta!([dpSgd, metric], { epsilon });
    assert.ok(delta > 0 && delta <= 1e-5 * (1 + 1e-9), `${accountant.name}: δ(ε(1e-5)) = ${delta}`);
  }
  // PLD is the tighter of the two on the same events.
  assert.ok(pld.epsilon([dpSgd, metric], { delta: 1e-5 }) < rdp.epsilon([dpSgd, metric], { delta: 1e-5 }));
});

test('no events, or only events with count 0, spend nothing', () => {
  for (const accountant of [createRdpAccountant(), createPldAccountant()]) {
    assert.equal(accountant.epsilon([], { delta: 1e-5 }), 0);
    assert.equal(accountant.epsilon([{ ...dpSgd, count: 0 }], { delta: 1e-5 }), 0);
    assert.equal(accountant.delta([], { epsilon: 1 }), 0);
  }
});

test('a poisson-gaussian event with sampleRate 1 is the plain Gaussian', () => {
  const rdp = createRdpAccountant();
  const pld = createPldAccountant();
  const sampled: PrivacyEvent = { kind: 'poisson-gaussian', sampleRate: 1, noiseMultiplier: 3, count: 5 };
  const plain: PrivacyEvent = { kind: 'gaussian', noiseMultiplier: 3, count: 5 };
  assert.equal(rdp.epsilon([sampled], { delta: 1e-5 }), rdp.epsilon([plain], { delta: 1e-5 }));
  assert.equal(pld.epsilon([sampled], { delta: 1e-5 }), pld.epsilon([plain], { delta: 1e-5 }));
});

test('the RDP accountant reports the optimal order and the composed curve', () => {
  const rdp = createRdpAccountant();
  const { epsilon, order } = rdp.epsilonWithOrder([dpSgd], { delta: 1e-5 });
  assert.equal(epsilon, rdp.epsilon([dpSgd], { delta: 1e-5 }));
  assert.ok(rdp.orders.includes(order));
  assert.equal(rdp.rdp([dpSgd]).length, rdp.orders.length);
});

test('refuses malformed events, naming every bad field by JSON pointer', () => {
  const events = [
    { kind: 'poisson-gaussian', sampleRate: 1.5, noiseMultiplier: 0, count: 3 },
    { kind: 'gaussian', noiseMultiplier: Number.NaN, count: -1 },
    { kind: 'laplace', noiseMultiplier: 1, count: 1 },
  ] as unknown as PrivacyEvent[];
  assert.deepEqual(
    checkEvents(events).map((e) => e.pointer),
    ['/events/0/sampleRate', '/events/0/noiseMultiplier', '/events/1/noiseMultiplier', '/events/1/count', '/events/2/kind'],
  );
  for (const accountant of [createRdpAccountant(), createPldAccountant()]) {
    assert.throws(
      () => accountant.epsilon(events, { delta: 1e-5 }),
      (error: unknown) => {
        assert.ok(error instanceof BastionError);
        assert.equal(error.code, 'VALIDATION_FAILED');
        assert.equal(error.details.errors?.length, 5);
        assert.match(error.message, /Expected number in \(0, 1\] for sampleRate but received 1.5 of type number/);
        return true;
      },
    );
  }
});

test('refuses δ outside (0, 1) and negative ε', () => {
  const rdp = createRdpAccountant();
  for (const delta of [0, 1, -1e-5, Number.NaN]) {
    assert.throws(
      () => rdp.epsilon([dpSgd], { delta }),
      (error: unknown) => error instanceof BastionError && error.details.errors?.[0]?.parameter === 'delta',
    );
  }
  assert.throws(
    () => rdp.delta([dpSgd], { epsilon: -1 }),
    (error: unknown) => error instanceof BastionError && error.details.errors?.[0]?.parameter === 'epsilon',
  );
  assert.throws(() => createPldAccountant({ valueDiscretizationInterval: 0 }), /valueDiscretizationInterval/);
});
