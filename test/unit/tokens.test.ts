import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { hashSecret, mintToken, parseToken, secretMatches } from '../../src/governance/tokens.js';

test('a minted token carries 32 random bytes and parses back to its id and secret', () => {
  const minted = mintToken();
  const parsed = parseToken(minted.token);
  assert.ok(parsed);
  assert.equal(parsed.id, minted.id);
  assert.equal(parsed.secret.length, 32);
  assert.ok(secretMatches(parsed.secret, minted.secretHash));
  assert.notEqual(mintToken().token, minted.token);
});

test('only the hash is kept: the stored value is SHA-256 of the secret, not the secret', () => {
  const minted = mintToken();
  const parsed = parseToken(minted.token)!;
  assert.deepEqual(minted.secretHash, hashSecret(parsed.secret));
  assert.equal(minted.token.includes(minted.secretHash.toString('base64url')), false);
});

test('a token whose secret differs in any byte does not match', () => {
  const minted = mintToken();
  const parsed = parseToken(minted.token)!;
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 1, max: 255 }), (index, flip) => {
      const tampered = Buffer.from(parsed.secret);
      tampered[index] = tampered[index]! ^ flip;
      return !secretMatches(tampered, minted.secretHash);
    }),
  );
});

test('malformed tokens do not parse', () => {
  const good = mintToken().token;
  for (const bad of ['', 'bst_', good.slice(0, -1), `${good}A`, good.replace('bst_', 'xyz_'), good.toUpperCase(), `Bearer ${good}`]) {
    assert.equal(parseToken(bad), null, bad);
  }
  fc.assert(fc.property(fc.string(), (s) => parseToken(s) === null || s.startsWith('bst_')));
});
