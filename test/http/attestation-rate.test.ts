// GET /v1/attestation needs no token and each quote costs the enclave real time: one client address gets
// ATTESTATION_RATE_LIMIT.max answers a minute, then 429 problem+json with Retry-After; another address is
// not held back, and no other route is limited by it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ATTESTATION_RATE_LIMIT } from '../../src/http/routes/attestation.js';
import { bareApp } from '../helpers/app.js';

test('one address gets the limit of attestations a minute, then 429 with Retry-After; other addresses and routes go on', async () => {
  const { app, close } = await bareApp();
  try {
    const ask = (remoteAddress: string) => app.inject({ url: `/v1/attestation?nonce=${'ab'.repeat(16)}`, remoteAddress });
    for (let i = 0; i < ATTESTATION_RATE_LIMIT.max; i++)
      assert.equal((await ask('10.0.0.1')).statusCode, 503, `request ${i + 1}: not in an enclave`);
    const limited = await ask('10.0.0.1');
    assert.equal(limited.statusCode, 429);
    assert.match(String(limited.headers['content-type']), /^application\/problem\+json/);
    assert.equal(limited.json().type, 'urn:bastion:problem:too-many-requests');
    assert.match(limited.json().detail, new RegExp(`At most ${ATTESTATION_RATE_LIMIT.max} attestations a minute`));
    assert.ok(Number(limited.headers['retry-after']) >= 1 && Number(limited.headers['retry-after']) <= 60);
    assert.equal((await ask('10.0.0.2')).statusCode, 503, 'another address is not held back');
    for (let i = 0; i < ATTESTATION_RATE_LIMIT.max + 5; i++)
      assert.equal((await app.inject({ url: '/healthz', remoteAddress: '10.0.0.1' })).statusCode, 200);
  } finally {
    await close();
  }
});
