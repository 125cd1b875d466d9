// Noise for releases computed on the event loop (evaluations, training metrics): samples come from the
// operating system's CSPRNG (node:crypto), so no request can predict or choose them. DP-SGD's noise is
// drawn inside the addon (its own OS-seeded generator); this is for scalar releases only. Integer
// releases get the discrete Gaussian, sampled exactly from CSPRNG integers (no floating point between
// the random bits and the released integer, hence no Mironov 2012 style leak through its low bits).
import { randomBytes, randomFillSync } from 'node:crypto';
import { type RandomSource, randomSourceFromBytes, rationalFromDouble, sampleDiscreteGaussian } from './analysis/discrete-gaussian.js';

/** Uniform integers from the OS CSPRNG (node:crypto randomFillSync, buffered 4 KiB at a time). */
export const cryptoRandomSource: RandomSource = randomSourceFromBytes((bytes) => randomFillSync(bytes));

/**
 * One exact draw of the discrete Gaussian N_Z(0, σ²) for σ² > 0, σ² taken as the exact rational value
 * of the double given (CKS20 Algorithm 3; see ./analysis/discrete-gaussian.ts). An integer; the
 * source defaults to the OS CSPRNG (tests pass a seeded one).
 */
export function discreteGaussianNoise(sigmaSquared: number, random: RandomSource = cryptoRandomSource): number {
  const draw = sampleDiscreteGaussian(rationalFromDouble(sigmaSquared), random);
  const value = Number(draw);
  if (!Number.isSafeInteger(value))
    throw new RangeError(`A discrete Gaussian draw of ${draw} is beyond the safe integers (σ² = ${sigmaSquared})`);
  return value;
}

/** A uniform double in (0, 1) with 53 random bits. */
function uniformOpen(): number {
  for (;;) {
    const bytes = randomBytes(8);
    const high = bytes.readUInt32BE(0) >>> 5; // 27 bits
    const low = bytes.readUInt32BE(4) >>> 6; // 26 bits
    const u = (high * 67108864 + low) / 9007199254740992;
    if (u > 0) return u;
  }
}

/** One draw of N(0, std²) (Box–Muller), std ≥ 0. */
export function gaussianNoise(std: number): number {
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`Expected finite number ≥ 0 for std but received ${std}`);
  const r = Math.sqrt(-2 * Math.log(uniformOpen()));
  return std * r * Math.cos(2 * Math.PI * uniformOpen());
}
