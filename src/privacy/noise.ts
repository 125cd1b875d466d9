// Gaussian noise for releases computed on the event loop (evaluations): samples come from the
// operating system's CSPRNG (node:crypto), so no request can predict or choose them. DP-SGD's noise is
// drawn inside the addon (its own OS-seeded generator); this is for scalar releases only.
import { randomBytes } from 'node:crypto';

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
