// The keystream behind private training's noise and Poisson sampling: four AEGIS-128L streams (RFC 10032,
// "AEGIS as a Stream Cipher"), lane i under the nonce with i XORed into its last byte, interleaved 16
// bytes at a time, from VAES (AVX-512) or AES-NI (AVX2). Each lane of each variant must be exactly
// libsodium's AEGIS-128L encryption of zeros (its ciphertext without the tag) for the same key and nonce,
// over many updates: a wrong constant, round order, output formula or lane layout changes every byte
// after the first update. The noise's distribution is tested in trainer.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import sodium from 'libsodium-wrappers';
import { cpuFlags } from '../../scripts/bench/cpu.js';
import { NativeError, noiseKeystream } from '../../src/native.js';
import { withMaxIsa } from '../helpers/cpu-isa.js';
import { prng } from '../helpers/prng.js';

const lanes = 4;

/** What each variant needs, as /proc/cpuinfo names it. */
const needs = {
  avx512: ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl', 'vaes', 'aes'],
  avx2: ['avx2', 'fma', 'bmi2', 'aes'],
} as const;

/** Lane i's stream out of the interleaved keystream: per 128 bytes, its z0 at 16·i and its z1 at 64 + 16·i. */
function lane(stream: Buffer, i: number): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < stream.length; at += 128) {
    parts.push(stream.subarray(at + 16 * i, at + 16 * i + 16), stream.subarray(at + 64 + 16 * i, at + 64 + 16 * i + 16));
  }
  return Buffer.concat(parts);
}

/** libsodium's AEGIS-128L keystream: the encryption of `bytes` zeros, no associated data, tag dropped. */
function libsodiumStream(key: Uint8Array, nonce: Uint8Array, bytes: number): Buffer {
  const sealed = sodium.crypto_aead_aegis128l_encrypt(new Uint8Array(bytes), null, null, nonce, key);
  return Buffer.from(sealed.subarray(0, bytes));
}

function laneNonce(nonce: Uint8Array, i: number): Uint8Array {
  const n = Uint8Array.from(nonce);
  n[15] = (n[15] ?? 0) ^ i;
  return n;
}

for (const isa of ['avx512', 'avx2'] as const) {
  test(`the noise keystream (${isa}) is four AEGIS-128L streams, each equal to libsodium’s, where the CPU has what it needs`, async () => {
    const first = withMaxIsa(isa, () => noiseKeystream(new Uint8Array(16), new Uint8Array(16), 128));
    if (first === null) {
      assert.equal(
        needs[isa].every((flag) => cpuFlags().has(flag)),
        false,
        'null only where the CPU lacks what this variant needs',
      );
      return;
    }
    await sodium.ready;
    const random = prng(isa === 'avx512' ? 20261207 : 20261208);
    const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
    // One update, a few, and more than one refill of the generator's 16 KB buffer.
    for (const length of [128, 128 * 7, 16384 + 256]) {
      const key = bytes(16);
      const nonce = bytes(16);
      const stream = withMaxIsa(isa, () => noiseKeystream(key, nonce, length));
      assert.ok(stream !== null);
      assert.equal(stream.length, length);
      for (let i = 0; i < lanes; i += 1) {
        const expected = libsodiumStream(key, laneNonce(nonce, i), length / lanes);
        assert.ok(lane(stream, i).equals(expected), `lane ${i} of ${length} bytes differs from libsodium`);
      }
    }
    // RFC 10032's AEGIS-128L test vector 1: 16 zero bytes under this key and nonce encrypt to c1c0e58b…
    const key = Buffer.from('10010000000000000000000000000000', 'hex');
    const nonce = Buffer.from('10000200000000000000000000000000', 'hex');
    const stream = withMaxIsa(isa, () => noiseKeystream(key, nonce, 128)) ?? Buffer.alloc(0);
    assert.equal(lane(stream, 0).subarray(0, 16).toString('hex'), 'c1c0e58bd913006feba00f4b3cc3594e');
  });
}

test('with BASTION_MAX_CPU_ISA=baseline the generator runs OpenSSL’s AES-128-CTR: no AEGIS keystream', () => {
  assert.equal(
    withMaxIsa('baseline', () => noiseKeystream(new Uint8Array(16), new Uint8Array(16), 128)),
    null,
  );
});

test('noiseKeystream refuses a key or nonce that is not 16 bytes and a length that is not whole updates', () => {
  assert.throws(
    () => noiseKeystream(new Uint8Array(15), new Uint8Array(16), 128),
    (e: unknown) => e instanceof NativeError && /16 bytes for key/.test(e.message),
  );
  assert.throws(
    () => noiseKeystream(new Uint8Array(16), new Uint8Array(17), 128),
    (e: unknown) => e instanceof NativeError && /16 bytes for nonce/.test(e.message),
  );
  assert.throws(
    () => noiseKeystream(new Uint8Array(16), new Uint8Array(16), 100),
    (e: unknown) => e instanceof NativeError && /multiple of 128 for bytes/.test(e.message),
  );
});
