// The Trainer: DP-SGD steps against PyTorch's own optimizers (σ = 0, q = 1, C = ∞ is plain SGD), the
// noise's standard deviation and independence, Poisson batch sizes, exact physical batching,
// checkpoints, export to PyTorch, and the refusals (labels of the wrong dtype or shape, models that drop
// the batch; NaN in non-private training). Samples that fail in private training: dropped-samples.test.ts.
// Noise is tested statistically: there is no way to seed the trainer, by design.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import {
  extractTensors,
  NativeError,
  setThreads,
  type TensorData,
  Trainer,
  type TrainerConfig,
  type TrainingData,
} from '../../src/native.js';
import { normalCdf } from '../../src/privacy/analysis/gaussian.js';
import { withMaxIsa } from '../helpers/cpu-isa.js';
import { prng } from '../helpers/prng.js';
import { testdataPath } from '../helpers/testdata.js';
import { runPythonJson, type TrainerFixtures, trainerFixtures } from '../helpers/trainer-fixtures.js';

const f32 = (data: Float32Array, shape: number[]): TensorData => ({ dtype: 'F32', shape, data });
const i64 = (data: BigInt64Array, shape: number[]): TensorData => ({ dtype: 'I64', shape, data });

function classification(fx: TrainerFixtures): TrainingData {
  return { inputs: [f32(fx.x, [fx.n, fx.d])], labels: i64(fx.y, [fx.n]) };
}

const sgd = (learningRate: number) => ({ type: 'sgd', learningRate }) as const;
const ce = { kind: 'cross_entropy' } as const;

/** Trainable parameters, flat, in trainableParameters order (read back through an exported archive). */
function parameters(trainer: Trainer): Float32Array {
  const names = new Set(trainer.info().trainableParameters);
  const tensors = extractTensors(trainer.exportModel(), 1 << 30).filter((t) => names.has(t.name));
  const parts = tensors.map((t) => new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)));
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'same number of parameters');
  let max = 0;
  for (let i = 0; i < a.length; i += 1) max = Math.max(max, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return max;
}

function difference(after: Float32Array, before: Float32Array): Float64Array {
  return Float64Array.from(after, (v, i) => v - (before[i] ?? 0));
}

function stats(values: ArrayLike<number>): { mean: number; std: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i += 1) sum += values[i] ?? 0;
  const mean = sum / values.length;
  let squares = 0;
  for (let i = 0; i < values.length; i += 1) squares += ((values[i] ?? 0) - mean) ** 2;
  return { mean, std: Math.sqrt(squares / (values.length - 1)) };
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const sa = stats(a);
  const sb = stats(b);
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += ((a[i] ?? 0) - sa.mean) * ((b[i] ?? 0) - sb.mean);
  return sum / (a.length - 1) / (sa.std * sb.std);
}

function assertNativeError(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof NativeError, `a NativeError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

const plainPrivate = (extra: Partial<TrainerConfig> = {}): TrainerConfig =>
  ({ mode: 'private', loss: ce, optimizer: sgd(0.1), sampleRate: 1, noiseMultiplier: 0, maxGradNorm: Infinity, ...extra }) as TrainerConfig;

test('σ = 0, C = ∞ and q = 1 reproduce one plain SGD step of PyTorch, as does a full-batch non-private trainer (scripted and traced)', async () => {
  const fx = await trainerFixtures();
  const reference = fx.refs.sgd_plain_1 ?? [];
  for (const model of ['tiny_mlp.script.pt', 'tiny_mlp.trace.pt'] as const) {
    const priv = Trainer.create(fx.bytes(model), classification(fx), plainPrivate());
    assert.ok(maxAbsDiff(parameters(priv), fx.refs.initial ?? []) < 1e-7, 'starts from the saved weights');
    const step = priv.step();
    assert.equal(step.step, 1);
    assert.equal(step.samples, fx.n);
    assert.ok(maxAbsDiff(parameters(priv), reference) < 1e-5, `${model}: private step equals torch.optim.SGD`);

    const plain = Trainer.create(fx.bytes(model), classification(fx), {
      mode: 'non-private',
      loss: ce,
      optimizer: sgd(0.1),
      batchSize: fx.n,
    });
    plain.step();
    assert.ok(maxAbsDiff(parameters(plain), reference) < 1e-5, `${model}: non-private step equals torch.optim.SGD`);
  }
});

test('SGD with momentum, nesterov, dampening and weight decay, Adam and AdamW match PyTorch over three full-batch steps', async () => {
  const fx = await trainerFixtures();
  const cases: Array<[string, TrainerConfig['optimizer']]> = [
    ['sgd_nesterov_3', { type: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 }],
    ['sgd_dampening_3', { type: 'sgd', learningRate: 0.05, momentum: 0.8, dampening: 0.1 }],
    ['adam_3', { type: 'adam', learningRate: 0.01, betas: [0.8, 0.99], eps: 1e-7, weightDecay: 0.01 }],
    ['adamw_3', { type: 'adamw', learningRate: 0.01, weightDecay: 0.1 }],
  ];
  for (const [name, optimizer] of cases) {
    for (const config of [{ mode: 'non-private', loss: ce, optimizer, batchSize: fx.n }, plainPrivate({ optimizer })] as TrainerConfig[]) {
      const trainer = Trainer.create(fx.bytes('tiny_mlp.script.pt'), classification(fx), config);
      for (let i = 0; i < 3; i += 1) trainer.step();
      const diff = maxAbsDiff(parameters(trainer), fx.refs[name] ?? []);
      assert.ok(diff < 1e-5, `${name} (${config.mode}): max |Δ| ${diff}`);
    }
  }
});

test('per-sample clipping, flat and per layer, matches clipping PyTorch per-sample gradients one sample at a time', async () => {
  const fx = await trainerFixtures();
  const cases: Array<[string, Partial<TrainerConfig>]> = [
    ['dp_flat_clip_1', { maxGradNorm: 0.05 }],
    [
      'dp_per_layer_clip_1',
      {
        maxGradNorm: undefined,
        perLayer: [
          { parameters: ['fc1.weight', 'fc1.bias'], maxGradNorm: 0.03 },
          { parameters: ['fc2.weight', 'fc2.bias'], maxGradNorm: 0.02 },
        ],
      },
    ],
  ];
  for (const [name, clip] of cases) {
    const trainer = Trainer.create(
      fx.bytes('tiny_mlp.script.pt'),
      classification(fx),
      plainPrivate({ optimizer: sgd(0.5), maxPhysicalBatchSize: 7, ...clip }),
    );
    trainer.step();
    const diff = maxAbsDiff(parameters(trainer), fx.refs[name] ?? []);
    assert.ok(diff < 1e-6, `${name}: max |Δ| ${diff}`);
  }
  assert.ok(maxAbsDiff(fx.refs.dp_flat_clip_1 ?? [], fx.refs.sgd_plain_1 ?? []) > 1e-3, 'clipping was active');
});

test('physical batches accumulate exactly: with σ = 0 and clipping active, any maxPhysicalBatchSize gives the same step', async () => {
  const fx = await trainerFixtures();
  const results = [1, 5, 32].map((maxPhysicalBatchSize) => {
    const trainer = Trainer.create(
      fx.bytes('tiny_mlp.script.pt'),
      classification(fx),
      plainPrivate({ maxGradNorm: 0.05, maxPhysicalBatchSize, optimizer: { type: 'sgd', learningRate: 0.5, momentum: 0.9 } }),
    );
    trainer.step();
    trainer.step();
    return parameters(trainer);
  });
  const [one, five, whole] = results as [Float32Array, Float32Array, Float32Array];
  assert.ok(maxAbsDiff(one, whole) < 1e-6);
  assert.ok(maxAbsDiff(five, whole) < 1e-6);
  // Clipping to 0.05 changed the step: it differs from the unclipped one.
  assert.ok(maxAbsDiff(whole, fx.refs.initial ?? []) > 0);
  const unclipped = Trainer.create(
    fx.bytes('tiny_mlp.script.pt'),
    classification(fx),
    plainPrivate({ optimizer: { type: 'sgd', learningRate: 0.5, momentum: 0.9 } }),
  );
  unclipped.step();
  unclipped.step();
  assert.ok(maxAbsDiff(parameters(unclipped), whole) > 1e-3);

  const nonPrivate = [4, 32].map((maxPhysicalBatchSize) => {
    const trainer = Trainer.create(fx.bytes('tiny_mlp.script.pt'), classification(fx), {
      mode: 'non-private',
      loss: ce,
      optimizer: sgd(0.1),
      batchSize: fx.n,
      maxPhysicalBatchSize,
    });
    trainer.step();
    return parameters(trainer);
  });
  assert.ok(maxAbsDiff(nonPrivate[0] ?? [], fx.refs.sgd_plain_1 ?? []) < 1e-5);
  assert.ok(maxAbsDiff(nonPrivate[0] ?? [], nonPrivate[1] ?? []) < 1e-6);
});

// zero_grad.pt's gradients are exactly 0, so one SGD step with lr = 1 moves every coordinate by
// -noise / (q·N), whose standard deviation must be σ·C / (q·N). 84,000 coordinates: the sample std’s
// relative standard error is at most 1/sqrt(2·20,000) = 0.5 %, so a 5 % bound fails only for a wrong scale.
function zeroGradData(fx: TrainerFixtures): TrainingData {
  return { inputs: [f32(fx.x, [fx.n, fx.d])], labels: f32(new Float32Array(fx.n), [fx.n, 1]) };
}

test('the noise has standard deviation σ·C/(q·N) per coordinate, mean 0, flat and per-layer', async () => {
  const fx = await trainerFixtures();
  const q = 0.5;
  const sigma = 1.3;
  const cases: Array<{ clip: Partial<TrainerConfig>; bound: number }> = [
    { clip: { maxGradNorm: 2 }, bound: 2 },
    // Per-layer: C = sqrt(1² + 2²) on every coordinate (Opacus's convention).
    {
      clip: {
        perLayer: [
          { parameters: ['w1'], maxGradNorm: 1 },
          { parameters: ['w2'], maxGradNorm: 2 },
        ],
      },
      bound: Math.sqrt(5),
    },
  ];
  for (const { clip, bound } of cases) {
    const trainer = Trainer.create(fx.bytes('zero_grad.pt'), zeroGradData(fx), {
      mode: 'private',
      loss: { kind: 'mse' },
      optimizer: sgd(1),
      sampleRate: q,
      noiseMultiplier: sigma,
      ...clip,
    } as TrainerConfig);
    const before = parameters(trainer);
    trainer.step();
    const moved = difference(parameters(trainer), before);
    const expected = (sigma * bound) / (q * fx.n);
    for (const [name, part] of [
      ['w1', moved.subarray(0, 20000)],
      ['w2', moved.subarray(20000)],
    ] as const) {
      const { mean, std } = stats(part);
      assert.ok(Math.abs(std / expected - 1) < 0.05, `${name}: std ${std}, expected ${expected}`);
      assert.ok(Math.abs(mean) < (5 * expected) / Math.sqrt(part.length), `${name}: mean ${mean}`);
    }
    // Its shape is Gaussian: the fractions beyond 1σ, 2σ and 3σ (5 standard errors each).
    const w2 = moved.subarray(20000);
    for (const [k, tail] of [
      [1, 0.3173],
      [2, 0.0455],
      [3, 0.0027],
    ] as const) {
      const beyond = w2.filter((v) => Math.abs(v) > k * expected).length / w2.length;
      assert.ok(Math.abs(beyond - tail) < 5 * Math.sqrt((tail * (1 - tail)) / w2.length), `beyond ${k}σ: ${beyond}, Gaussian ${tail}`);
    }
    // w2's noise comes from 8 streams, one per eighth: each eighth has the std, and no two are alike.
    const eighths = Array.from({ length: 8 }, (_, k) => moved.subarray(20000 + k * 8000, 20000 + (k + 1) * 8000));
    for (const part of eighths) assert.ok(Math.abs(stats(part).std / expected - 1) < 0.1, `std ${stats(part).std}`);
    for (let k = 1; k < 8; k += 1) {
      assert.ok(Math.abs(correlation(eighths[0]!, eighths[k]!)) < 5 / Math.sqrt(8000), `streams 0 and ${k} are independent`);
    }
  }
});

// The sampler (a ziggurat: layers, wedges and a tail beyond r) must give N(0, 1) exactly, not only the
// right variance, in each of its variants: 128 layers 16 at a time over the AEGIS-128L keystream from
// VAES (AVX-512), 256 layers 8 at a time over the same from AES-NI (AVX2), and the scalar one over
// OpenSSL's AES-128-CTR; BASTION_MAX_CPU_ISA caps the variant (a machine without AVX-512 runs the
// narrower ones twice). 24 steps × 84,000 coordinates ≈ 2 million draws each, on 2 threads (the streams
// in parallel): a Kolmogorov–Smirnov test, a χ² test over 34 bins, and the mass beyond each ziggurat's r
// and beyond 4. No run of draws comes back: a block of keystream words used twice (a refill that does
// not advance the state, a buffer read again) would repeat hundreds of them.
for (const isa of ['avx512', 'avx2', 'baseline'] as const) {
  test(`the noise is standard normal in distribution (${isa}): Kolmogorov–Smirnov, χ² over 34 bins, and the tails beyond the ziggurats; no run of draws repeats`, async () => {
    const fx = await trainerFixtures();
    const draws = withMaxIsa(isa, () => noiseDraws(fx, 24));
    const repeated = repeatedRuns(draws);
    assert.ok(repeated < 20, `${repeated} runs of 4 draws seen twice`);
    assertStandardNormal(Float64Array.from(draws).sort());
  });
}

// How many runs of 4 consecutive draws (each to 0.002, clamped to ±6) equal an earlier run: about 0.2
// by chance among 2 million independent N(0, 1) draws.
function repeatedRuns(draws: readonly number[]): number {
  const level = (x: number) => Math.round(Math.max(-6, Math.min(6, x)) * 500) + 3000; // 0 … 6000
  const seen = new Set<number>();
  let repeated = 0;
  for (let i = 0; i + 4 <= draws.length; i += 1) {
    let key = 0;
    for (let k = 0; k < 4; k += 1) key = key * 6001 + level(draws[i + k]!);
    if (seen.has(key)) repeated += 1;
    else seen.add(key);
  }
  return repeated;
}

// The noise of `steps` steps of a private trainer whose gradients are all zero, in units of σ·C/(q·N).
function noiseDraws(fx: TrainerFixtures, steps: number): number[] {
  const q = 0.5;
  const trainer = Trainer.create(fx.bytes('zero_grad.pt'), zeroGradData(fx), {
    mode: 'private',
    loss: { kind: 'mse' },
    optimizer: sgd(1),
    sampleRate: q,
    noiseMultiplier: 1,
    maxGradNorm: 1,
  });
  const unit = 1 / (q * fx.n);
  const draws: number[] = [];
  try {
    setThreads(2);
    let before = parameters(trainer);
    for (let s = 0; s < steps; s += 1) {
      trainer.step();
      const after = parameters(trainer);
      for (let i = 0; i < after.length; i += 1) draws.push(-(after[i]! - before[i]!) / unit);
      before = after;
    }
  } finally {
    setThreads(1);
  }
  return draws;
}

// The ziggurats of the sampler (layers, r, v: Marsaglia and Tsang 2000).
const ZIGGURATS = [
  [128, 3.442619855899, 9.91256303526217e-3],
  [256, 3.6541528853610088, 4.92867323399e-3],
] as const;

// The right edges x_1 < … < x_{n-1} = r of a ziggurat's layers: every layer has area v.
function zigguratEdges(layers: number, r: number, v: number): number[] {
  const edges = [r];
  for (let i = layers - 2; i >= 1; i -= 1) {
    const x = edges[0]!;
    edges.unshift(Math.sqrt(-2 * Math.log(v / x + Math.exp(-0.5 * x * x))));
  }
  return edges;
}

// The χ² quantile z standard deviations out (Wilson and Hilferty 1931): 4.75 is P < 1e-6.
function chiSquareQuantile(df: number, z: number): number {
  const c = 2 / (9 * df);
  return df * (1 - c + z * Math.sqrt(c)) ** 3;
}

function assertStandardNormal(z: Float64Array): void {
  const n = z.length;
  // KS: sqrt(n)·sup|F_n − Φ| exceeds 2.6 with probability about 2·exp(−2·2.6²) ≈ 3e-6.
  let sup = 0;
  for (let i = 0; i < n; i += 1) {
    const phi = normalCdf(z[i]!);
    sup = Math.max(sup, Math.abs((i + 1) / n - phi), Math.abs(i / n - phi));
  }
  assert.ok(Math.sqrt(n) * sup < 2.6, `KS statistic ${Math.sqrt(n) * sup}`);
  // χ²: bins of width 0.25 on [−4, 4] and the two tails beyond; 33 degrees of freedom, and
  // P(χ²₃₃ > 90) < 1e-6.
  const edges = [-Infinity, ...Array.from({ length: 33 }, (_, k) => -4 + 0.25 * k), Infinity];
  let chi = 0;
  let at = 0;
  for (let b = 0; b + 1 < edges.length; b += 1) {
    let count = 0;
    while (at < n && z[at]! < edges[b + 1]!) {
      count += 1;
      at += 1;
    }
    const expected = n * (normalCdf(edges[b + 1]!) - normalCdf(edges[b]!));
    chi += (count - expected) ** 2 / expected;
  }
  assert.ok(chi < 90, `χ² ${chi} over 34 bins`);
  // χ² over the layers of each ziggurat: |z| binned at the layers' edges x_1 < … < x_{n-1} = r. A
  // wrong wedge test moves mass between these bins: accepting every point of a wedge adds a
  // non-centrality of about 430 (128 layers) or 200 (256 layers) at 2 million draws.
  for (const [layers, r, v] of ZIGGURATS) {
    const cuts = zigguratEdges(layers, r, v);
    const counts = new Array<number>(cuts.length + 1).fill(0);
    for (const value of z) {
      const magnitude = Math.abs(value);
      let lo = 0;
      let hi = cuts.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cuts[mid]! <= magnitude) lo = mid + 1;
        else hi = mid;
      }
      counts[lo]! += 1;
    }
    const bounds = [0, ...cuts, Infinity];
    let layerChi = 0;
    for (let b = 0; b < counts.length; b += 1) {
      const expected = 2 * n * (normalCdf(bounds[b + 1]!) - normalCdf(bounds[b]!));
      layerChi += (counts[b]! - expected) ** 2 / expected;
    }
    const limit = chiSquareQuantile(counts.length - 1, 4.75);
    assert.ok(layerChi < limit, `χ² ${layerChi} over the ${layers} layers (limit ${limit})`);
  }
  // Symmetric: as many negative draws as positive, within 5 standard errors.
  const negative = z.filter((v) => v < 0).length;
  assert.ok(Math.abs(negative / n - 0.5) < 5 * Math.sqrt(0.25 / n), `${negative} negative of ${n}`);
  // The ziggurats' tails (|z| > r, for 128 and 256 layers) and beyond 4σ: their fractions within 5
  // standard errors.
  for (const cut of [3.442619855899, 3.6541528853610088, 4]) {
    const tail = 2 * normalCdf(-cut);
    const beyond = z.filter((v) => Math.abs(v) > cut).length / n;
    assert.ok(Math.abs(beyond - tail) < 5 * Math.sqrt((tail * (1 - tail)) / n), `beyond ${cut}: ${beyond}, Gaussian ${tail}`);
  }
  assert.ok(z[n - 1]! > 4 && z[0]! < -4, `the extremes reach the tail: ${z[0]}, ${z[n - 1]}`);
}

test('two identically created trainers draw independent noise, and restore() re-seeds the generator', async () => {
  const fx = await trainerFixtures();
  const config: TrainerConfig = {
    mode: 'private',
    loss: { kind: 'mse' },
    optimizer: sgd(1),
    sampleRate: 0.5,
    noiseMultiplier: 1,
    maxGradNorm: 1,
  };
  const moves = [0, 1].map(() => {
    const trainer = Trainer.create(fx.bytes('zero_grad.pt'), zeroGradData(fx), config);
    const before = parameters(trainer);
    trainer.step();
    return difference(parameters(trainer), before);
  });
  const [a, b] = moves as [Float64Array, Float64Array];
  // Independent: |corr| ≤ 0.025 (over 5 standard errors at 84,000 coordinates) except with probability < 1e-6.
  assert.ok(Math.abs(correlation(a, b)) < 0.025, `correlation ${correlation(a, b)}`);

  const trainer = Trainer.create(fx.bytes('zero_grad.pt'), zeroGradData(fx), config);
  const start = trainer.state();
  const before = parameters(trainer);
  trainer.step();
  const first = difference(parameters(trainer), before);
  trainer.restore(start);
  assert.equal(trainer.info().steps, 0);
  assert.equal(maxAbsDiff(parameters(trainer), before), 0);
  trainer.step();
  const second = difference(parameters(trainer), before);
  assert.ok(Math.abs(correlation(first, second)) < 0.025, 'the step after restore draws fresh noise');
});

test('Poisson sampling: batch sizes vary around q·N with the binomial variance', async () => {
  const fx = await trainerFixtures();
  const q = 0.25;
  const trainer = Trainer.create(fx.bytes('tiny_mlp.script.pt'), classification(fx), {
    mode: 'private',
    loss: ce,
    optimizer: sgd(0.01),
    sampleRate: q,
    noiseMultiplier: 0.5,
    maxGradNorm: 1,
    maxPhysicalBatchSize: 4,
  });
  const steps = 400;
  const sizes: number[] = [];
  for (let i = 0; i < steps; i += 1) {
    const step = trainer.step();
    assert.equal(step.step, i + 1);
    sizes.push(step.samples);
  }
  const { mean, std } = stats(sizes);
  const variance = fx.n * q * (1 - q); // 6
  // The mean's standard error is sqrt(6/400) ≈ 0.12: a 6-sigma bound.
  assert.ok(Math.abs(mean - q * fx.n) < 6 * Math.sqrt(variance / steps), `mean batch ${mean}`);
  assert.ok(std ** 2 > variance / 2 && std ** 2 < variance * 2, `variance ${std ** 2}`);
  assert.ok(new Set(sizes).size >= 5, 'batch sizes vary');
  assert.equal(trainer.info().steps, steps);
});

test('an empty Poisson batch is a noise-only step', async () => {
  const fx = await trainerFixtures();
  // P(a non-empty batch) = 1 - (1 - 1e-7)^32 ≈ 3e-6.
  const trainer = Trainer.create(fx.bytes('tiny_mlp.script.pt'), classification(fx), {
    mode: 'private',
    loss: ce,
    optimizer: sgd(0.1),
    sampleRate: 1e-7,
    noiseMultiplier: 1,
    maxGradNorm: 1e-6,
  });
  const before = parameters(trainer);
  const step = trainer.step();
  assert.equal(step.samples, 0);
  assert.equal(step.lossSum, 0);
  assert.ok(maxAbsDiff(parameters(trainer), before) > 0, 'the noise moved the parameters');
  assert.ok(parameters(trainer).every(Number.isFinite));
});

test('lossBound L: a step also sums its per-sample losses clamped to [0, L], in both modes', async () => {
  const fx = await trainerFixtures();
  const first = (extra: Partial<TrainerConfig>) =>
    Trainer.create(fx.bytes('tiny_mlp.script.pt'), classification(fx), plainPrivate(extra)).step();
  const plain = first({});
  assert.equal(plain.clippedLossSum, undefined, 'reported only with lossBound');
  const loose = first({ lossBound: 1e6 });
  assert.ok(Math.abs(loose.clippedLossSum! - plain.lossSum) <= 1e-9 * plain.lossSum, 'a bound above every loss changes nothing');
  const tight = first({ lossBound: 1e-3 });
  assert.ok(plain.lossSum / fx.n > 0.1, 'the untrained losses are far above the tight bound');
  assert.ok(Math.abs(tight.clippedLossSum! - fx.n * 1e-3) < 1e-12, `every loss clamps to L: ${tight.clippedLossSum}`);
  const middle = first({ lossBound: plain.lossSum / fx.n });
  assert.ok(middle.clippedLossSum! < plain.lossSum && middle.clippedLossSum! > tight.clippedLossSum!);

  const nonPrivate = Trainer.create(fx.bytes('tiny_mlp.script.pt'), classification(fx), {
    mode: 'non-private',
    loss: ce,
    optimizer: sgd(0.1),
    batchSize: fx.n,
    lossBound: 1e-3,
  }).step();
  assert.ok(Math.abs(nonPrivate.clippedLossSum! - fx.n * 1e-3) < 1e-12);
  for (const bad of [0, -1, Number.NaN, Infinity]) {
    assert.throws(
      () => first({ lossBound: bad }),
      (e: unknown) => e instanceof NativeError && e.code === 'INVALID_ARGUMENT' && /lossBound/.test(e.message),
      String(bad),
    );
  }
});

test('non-private training of the reference mlp lowers the loss; private training of the mnist CNN steps', async () => {
  const random = prng(7);
  const n = 256;
  const x = Float32Array.from({ length: n * 100 }, () => random() * 2 - 1);
  const y = BigInt64Array.from({ length: n }, (_, i) => ((x[i * 100] ?? 0) + (x[i * 100 + 1] ?? 0) > 0 ? 1n : 0n));
  const data: TrainingData = { inputs: [f32(x, [n, 100])], labels: i64(y, [n]) };
  for (const file of ['mlp.script.pt', 'mlp.trace.pt']) {
    const model = readFileSync(testdataPath('torchscript', 'torch-1.13', file));
    const trainer = Trainer.create(model, data, {
      mode: 'non-private',
      loss: ce,
      optimizer: { type: 'adam', learningRate: 1e-3 },
      batchSize: 32,
    });
    const before = trainer.evaluate();
    for (let i = 0; i < 40; i += 1) trainer.step();
    const after = trainer.evaluate();
    assert.equal(after.samples, n);
    assert.ok(after.meanLoss < before.meanLoss * 0.7, `${file}: ${before.meanLoss} -> ${after.meanLoss}`);
    assert.ok((after.accuracy ?? 0) > 0.8, `${file}: accuracy ${after.accuracy}`);
  }

  const images = Float32Array.from({ length: 16 * 28 * 28 }, () => random());
  const digits = BigInt64Array.from({ length: 16 }, (_, i) => BigInt(i % 10));
  for (const file of ['mnist_cnn.script.pt', 'mnist_cnn.trace.pt']) {
    const trainer = Trainer.create(
      readFileSync(testdataPath('torchscript', 'torch-2.6', file)),
      { inputs: [f32(images, [16, 1, 28, 28])], labels: i64(digits, [16]) },
      {
        mode: 'private',
        loss: ce,
        optimizer: { type: 'sgd', learningRate: 0.05, momentum: 0.9 },
        sampleRate: 0.5,
        noiseMultiplier: 1,
        maxGradNorm: 1,
        maxPhysicalBatchSize: 4,
      },
    );
    const before = parameters(trainer);
    const step = trainer.step();
    assert.ok(Number.isFinite(step.lossSum) && step.durationMs >= 0);
    const after = parameters(trainer);
    assert.ok(after.every(Number.isFinite) && maxAbsDiff(after, before) > 0, file);
  }
});

test('every loss kind runs a private and a non-private step; accuracy is reported for classification losses only', async () => {
  const fx = await trainerFixtures();
  const random = prng(3);
  const targets = Float32Array.from({ length: fx.n * 2 }, () => random() * 2 - 1);
  const binary = Float32Array.from({ length: fx.n * 2 }, () => (random() < 0.5 ? 0 : 1));
  const cases: Array<{
    loss: TrainerConfig['loss'];
    model: 'tiny_mlp.script.pt' | 'regression.trace.pt';
    labels: TensorData;
    accuracy: boolean;
  }> = [
    { loss: { kind: 'cross_entropy', labelSmoothing: 0.1 }, model: 'tiny_mlp.script.pt', labels: i64(fx.y, [fx.n]), accuracy: true },
    { loss: { kind: 'nll' }, model: 'tiny_mlp.script.pt', labels: i64(fx.y, [fx.n]), accuracy: true },
    { loss: { kind: 'mse' }, model: 'regression.trace.pt', labels: f32(targets, [fx.n, 2]), accuracy: false },
    { loss: { kind: 'l1' }, model: 'regression.trace.pt', labels: f32(targets, [fx.n, 2]), accuracy: false },
    { loss: { kind: 'bce_with_logits' }, model: 'regression.trace.pt', labels: f32(binary, [fx.n, 2]), accuracy: true },
  ];
  for (const { loss, model, labels, accuracy } of cases) {
    const data: TrainingData = { inputs: [f32(fx.x, [fx.n, fx.d])], labels };
    for (const config of [
      { mode: 'non-private', loss, optimizer: sgd(0.1), batchSize: 8 },
      { mode: 'private', loss, optimizer: { type: 'adamw', learningRate: 0.01 }, sampleRate: 0.3, noiseMultiplier: 0.8, maxGradNorm: 1 },
    ] as TrainerConfig[]) {
      const trainer = Trainer.create(fx.bytes(model), data, config);
      const step = trainer.step();
      assert.ok(Number.isFinite(step.lossSum), `${loss.kind} ${config.mode}`);
      const evaluation = trainer.evaluate();
      assert.ok(Number.isFinite(evaluation.meanLoss), `${loss.kind}: mean loss ${evaluation.meanLoss}`);
      assert.equal(evaluation.accuracy !== null, accuracy, `${loss.kind}: accuracy ${evaluation.accuracy}`);
    }
  }
  // The non-private fixed-size batches: 32 samples in batches of 8.
  const trainer = Trainer.create(fx.bytes('tiny_mlp.script.pt'), classification(fx), {
    mode: 'non-private',
    loss: ce,
    optimizer: sgd(0.1),
    batchSize: 12,
  });
  assert.deepEqual(
    [1, 2, 3, 4].map(() => trainer.step().samples),
    [12, 12, 8, 12],
  );
});

test('a model with two inputs trains on inputs.0 and inputs.1, evaluates on given data, and predicts', async () => {
  const fx = await trainerFixtures();
  const random = prng(11);
  const tokens = BigInt64Array.from({ length: fx.n * 4 }, () => BigInt(Math.floor(random() * 10)));
  const data: TrainingData = { inputs: [f32(fx.x, [fx.n, fx.d]), i64(tokens, [fx.n, 4])], labels: i64(fx.y, [fx.n]) };
  const trainer = Trainer.create(fx.bytes('two_inputs.pt'), data, {
    mode: 'private',
    loss: ce,
    optimizer: sgd(0.1),
    sampleRate: 0.5,
    noiseMultiplier: 1,
    perLayer: [
      { parameters: ['fc.weight', 'fc.bias'], maxGradNorm: 1 },
      { parameters: ['emb.weight'], maxGradNorm: 0.5 },
    ],
  });
  assert.deepEqual(trainer.info().trainableParameters, ['fc.weight', 'fc.bias', 'emb.weight']);
  trainer.step();
  const subset: TrainingData = {
    inputs: [f32(fx.x.subarray(0, 5 * fx.d), [5, fx.d]), i64(tokens.subarray(0, 20), [5, 4])],
    labels: i64(fx.y.subarray(0, 5), [5]),
  };
  assert.equal(trainer.evaluate(subset).samples, 5);
  const output = trainer.predict(subset.inputs);
  assert.equal(output.dtype, 'F32');
  assert.deepEqual(output.shape, [5, fx.k]);
  assert.equal(output.data.length, 5 * fx.k * 4);
});

test('state() and restore(): a fresh trainer continues to the parameters of an uninterrupted run, with the step count', async () => {
  const fx = await trainerFixtures();
  const configs: TrainerConfig[] = [
    { mode: 'non-private', loss: ce, optimizer: { type: 'adam', learningRate: 0.01 }, batchSize: fx.n },
    plainPrivate({ optimizer: { type: 'sgd', learningRate: 0.1, momentum: 0.9 }, maxGradNorm: 0.1 }),
  ];
  for (const config of configs) {
    const model = fx.bytes('tiny_mlp.script.pt');
    const uninterrupted = Trainer.create(model, classification(fx), config);
    for (let i = 0; i < 2; i += 1) uninterrupted.step();
    const checkpoint = uninterrupted.state();
    for (let i = 0; i < 3; i += 1) uninterrupted.step();

    const resumed = Trainer.create(model, classification(fx), config);
    resumed.restore(checkpoint);
    assert.equal(resumed.info().steps, 2);
    assert.equal(resumed.step().step, 3);
    resumed.step();
    resumed.step();
    assert.ok(maxAbsDiff(parameters(resumed), parameters(uninterrupted)) < 1e-7, `${config.mode}: same parameters`);
    assert.equal(resumed.info().steps, 5);
  }
});

test('restore() refuses a state of another model, optimizer or mode, and garbage, and leaves the trainer unchanged', async () => {
  const fx = await trainerFixtures();
  const model = fx.bytes('tiny_mlp.script.pt');
  const trainer = Trainer.create(model, classification(fx), plainPrivate());
  trainer.step();
  const before = parameters(trainer);
  const other = Trainer.create(
    fx.bytes('regression.trace.pt'),
    { inputs: [f32(fx.x, [fx.n, fx.d])], labels: f32(new Float32Array(fx.n * 2), [fx.n, 2]) },
    plainPrivate({ loss: { kind: 'mse' } }),
  );
  assertNativeError(() => trainer.restore(other.state()), 'INVALID_ARGUMENT', /another model/);
  const adam = Trainer.create(model, classification(fx), plainPrivate({ optimizer: { type: 'adam', learningRate: 0.1 } }));
  assertNativeError(() => trainer.restore(adam.state()), 'INVALID_ARGUMENT', /another optimizer/);
  const nonPrivate = Trainer.create(model, classification(fx), { mode: 'non-private', loss: ce, optimizer: sgd(0.1), batchSize: 4 });
  assertNativeError(() => trainer.restore(nonPrivate.state()), 'INVALID_ARGUMENT', /not of a private trainer/);
  assertNativeError(() => trainer.restore(Buffer.from('not a state')), 'INVALID_ARGUMENT', /cannot be read/);
  assertNativeError(() => trainer.restore(model), 'INVALID_ARGUMENT', /has no 'format'|cannot be read/);
  assert.equal(trainer.info().steps, 1);
  assert.equal(maxAbsDiff(parameters(trainer), before), 0);
});

test('exportModel() loads in PyTorch, gives the outputs of predict(), and keeps the original buffers', async () => {
  const fx = await trainerFixtures();
  const trainer = Trainer.create(fx.bytes('buffered.pt'), classification(fx), {
    mode: 'non-private',
    loss: ce,
    optimizer: { type: 'sgd', learningRate: 0.5, momentum: 0.5 },
    batchSize: 8,
  });
  for (let i = 0; i < 4; i += 1) trainer.step();
  const exported = path.join(fx.dir, 'buffered.exported.pt');
  writeFileSync(exported, trainer.exportModel());
  writeFileSync(path.join(fx.dir, 'x.exported.f32'), fx.x);
  const predicted = trainer.predict([f32(fx.x, [fx.n, fx.d])]);
  const python = `
import json, sys, torch, zipfile
m = torch.jit.load(sys.argv[1]); o = torch.jit.load(sys.argv[2])
x = torch.frombuffer(bytearray(open(sys.argv[3], 'rb').read()), dtype=torch.float32).reshape(${fx.n}, ${fx.d})
with torch.no_grad():
    out = m(x)
print(json.dumps({
  'training': m.training,
  'debug': [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith('.debug_pkl')],
  'output': out.reshape(-1).tolist(),
  'buffers': {k: torch.equal(v, dict(o.named_buffers())[k]) for k, v in m.named_buffers()},
  'changed': {k: not torch.equal(v, dict(o.named_parameters())[k]) for k, v in m.named_parameters()},
}))`;
  const result = (await runPythonJson(python, [exported, fx.file('buffered.pt'), path.join(fx.dir, 'x.exported.f32')])) as {
    training: boolean;
    debug: string[];
    output: number[];
    buffers: Record<string, boolean>;
    changed: Record<string, boolean>;
  };
  assert.equal(result.training, false, 'exported in the mode it was uploaded in');
  assert.deepEqual(result.debug, [], "no source ranges of the uploader's machine");
  assert.deepEqual(result.buffers, { offset: true, scale: true });
  assert.deepEqual(result.changed, { 'fc.weight': true, 'fc.bias': true });
  const ours = new Float32Array(
    predicted.data.buffer.slice(predicted.data.byteOffset, predicted.data.byteOffset + predicted.data.byteLength),
  );
  assert.ok(maxAbsDiff(ours, result.output) < 1e-5);
});

test('refuses labels of the wrong dtype or shape for the loss, naming what it needs; label values are not looked at', async () => {
  const fx = await trainerFixtures();
  const model = fx.bytes('tiny_mlp.script.pt');
  const withLabels = (labels: TensorData): TrainingData => ({ inputs: [f32(fx.x, [fx.n, fx.d])], labels });
  assertNativeError(
    () => Trainer.create(model, withLabels(f32(new Float32Array(fx.n), [fx.n])), plainPrivate()),
    'INVALID_ARGUMENT',
    /cross_entropy needs I64 class labels, got F32/,
  );
  assertNativeError(
    () => Trainer.create(model, withLabels({ dtype: 'I32', shape: [fx.n], data: new Int32Array(fx.n) }), plainPrivate()),
    'INVALID_ARGUMENT',
    /I64 class labels, got I32/,
  );
  // Values are data: Create probes on zeros, so labels out of range do not decide whether it succeeds.
  assert.equal(Trainer.create(model, withLabels(i64(new BigInt64Array(fx.n).fill(7n), [fx.n])), plainPrivate()).info().steps, 0);
  assertNativeError(
    () => Trainer.create(model, withLabels(i64(fx.y, [fx.n])), plainPrivate({ loss: { kind: 'mse' } })),
    'INVALID_ARGUMENT',
    /mse needs float labels/,
  );
});

test('refuses a model whose output loses the batch dimension', async () => {
  const fx = await trainerFixtures();
  assertNativeError(
    () => Trainer.create(fx.bytes('batch_mean.pt'), classification(fx), plainPrivate()),
    'INVALID_ARGUMENT',
    /model output has 1 samples .* but the batch has 2/,
  );
});

test('non-private: a NaN loss fails the step with NON_FINITE naming the step and no count, leaving the parameters and the step count unchanged', async () => {
  const fx = await trainerFixtures();
  {
    const trainer = Trainer.create(fx.bytes('log_of_linear.pt'), classification(fx), {
      mode: 'non-private',
      loss: ce,
      optimizer: sgd(0.1),
      batchSize: 8,
    });
    const before = parameters(trainer);
    assertNativeError(
      () => trainer.step(),
      'NON_FINITE',
      /^Step 1: a per-sample loss is NaN or infinite; the step was not applied and the parameters are unchanged$/,
    );
    assertNativeError(() => trainer.step(), 'NON_FINITE', /^Step 1:/);
    assert.equal(trainer.info().steps, 0);
    assert.equal(maxAbsDiff(parameters(trainer), before), 0);
  }
  // A step whose optimizer update overflows float32 (lr · weightDecay · p ≈ 1e59) is undone.
  const trainer = Trainer.create(fx.bytes('tiny_mlp.script.pt'), classification(fx), {
    mode: 'non-private',
    loss: ce,
    optimizer: { type: 'sgd', learningRate: 1e30, momentum: 0.9, weightDecay: 1e30 },
    batchSize: fx.n,
  });
  assertNativeError(() => trainer.step(), 'NON_FINITE', /^Step 1: the optimizer update made parameter '.*' NaN or infinite/);
  assert.ok(maxAbsDiff(parameters(trainer), fx.refs.initial ?? []) === 0);
});

test('refuses invalid configs and datasets, listing every problem at once', async () => {
  const fx = await trainerFixtures();
  const model = fx.bytes('tiny_mlp.script.pt');
  const data = classification(fx);
  assertNativeError(
    () =>
      Trainer.create(model, data, { mode: 'private', loss: ce, optimizer: sgd(0.1), sampleRate: 0, noiseMultiplier: -1, maxGradNorm: 0 }),
    'INVALID_ARGUMENT',
    /3 problems.*sampleRate \(q\) must be in \(0, 1\], got 0.*noiseMultiplier \(σ\) must be a finite number ≥ 0, got -1.*maxGradNorm \(C\) must be > 0, got 0/,
  );
  assertNativeError(
    () => Trainer.create(model, data, plainPrivate({ sampleRate: 1.5 })),
    'INVALID_ARGUMENT',
    /sampleRate \(q\) must be in \(0, 1\], got 1.5/,
  );
  assertNativeError(
    () => Trainer.create(model, data, plainPrivate({ noiseMultiplier: 1 })),
    'INVALID_ARGUMENT',
    /maxGradNorm \(C\) is infinite/,
  );
  assertNativeError(
    () => Trainer.create(model, data, plainPrivate({ maxGradNorm: undefined })),
    'INVALID_ARGUMENT',
    /exactly one of config.maxGradNorm .* but received neither/,
  );
  assertNativeError(
    () =>
      Trainer.create(
        model,
        data,
        plainPrivate({ perLayer: [{ parameters: ['fc1.weight', 'nope'], maxGradNorm: 1 }], maxGradNorm: undefined }),
      ),
    'INVALID_ARGUMENT',
    /'nope', which is not a trainable parameter.*'fc1.bias' is in no perLayer group/,
  );
  assertNativeError(
    () => Trainer.create(model, data, plainPrivate({ optimizer: { type: 'sgd', learningRate: 0.1, nesterov: true } })),
    'INVALID_ARGUMENT',
    /nesterov needs momentum > 0/,
  );
  assertNativeError(
    () => Trainer.create(model, data, { mode: 'non-private', loss: ce, optimizer: sgd(0.1), batchSize: 0 }),
    'INVALID_ARGUMENT',
    /Expected integer between 1 and 9007199254740991 for config.batchSize but received 0/,
  );
  assertNativeError(
    () => Trainer.create(model, data, { ...plainPrivate(), mode: 'secret' } as unknown as TrainerConfig),
    'INVALID_ARGUMENT',
    /'private' or 'non-private' for config.mode/,
  );
  assertNativeError(
    () => Trainer.create(model, data, plainPrivate({ loss: { kind: 'hinge' as 'mse' } })),
    'INVALID_ARGUMENT',
    /loss.kind is 'hinge'/,
  );
  assertNativeError(
    () => Trainer.create(model, { inputs: [f32(fx.x, [fx.n, fx.d])], labels: i64(fx.y.subarray(0, 10), [10]) }, plainPrivate()),
    'INVALID_ARGUMENT',
    /'labels' has 10 samples but 'inputs.0' has 32 \(first dimensions must match\)/,
  );
  assertNativeError(
    () => Trainer.create(model, { inputs: [f32(new Float32Array(0), [0, fx.d])], labels: i64(new BigInt64Array(0), [0]) }, plainPrivate()),
    'INVALID_ARGUMENT',
    /dataset is empty/,
  );
  assertNativeError(
    () => Trainer.create(model, { inputs: [f32(fx.x, [fx.n, 5])], labels: i64(fx.y, [fx.n]) }, plainPrivate()),
    'INVALID_ARGUMENT',
    /needs 160 × 4 bytes but has 768/,
  );
  assertNativeError(
    () =>
      Trainer.create(
        model,
        { inputs: [{ dtype: 'F8' as 'F32', shape: [fx.n, fx.d], data: fx.x }], labels: i64(fx.y, [fx.n]) },
        plainPrivate(),
      ),
    'INVALID_ARGUMENT',
    /dtype F8; expected one of F64, F32/,
  );
  assertNativeError(
    () => Trainer.create(model, { inputs: [], labels: i64(fx.y, [fx.n]) }, plainPrivate()),
    'INVALID_ARGUMENT',
    /no input tensor/,
  );
  assertNativeError(
    () => Trainer.create(Buffer.from('garbage'), data, plainPrivate()),
    'MODEL_LOAD_FAILED',
    /Cannot load the TorchScript archive/,
  );
});

test('training tensors are borrowed: a detached buffer is refused at the next call; SharedArrayBuffer data is copied', async () => {
  const fx = await trainerFixtures();
  const x = fx.x.slice();
  const trainer = Trainer.create(
    fx.bytes('tiny_mlp.script.pt'),
    { inputs: [f32(x, [fx.n, fx.d])], labels: i64(fx.y, [fx.n]) },
    plainPrivate(),
  );
  trainer.step();
  structuredClone(x.buffer, { transfer: [x.buffer] });
  assert.equal(x.byteLength, 0, 'the buffer is detached');
  assertNativeError(() => trainer.step(), 'INVALID_ARGUMENT', /training tensor 'inputs.0' was detached or resized/);

  const shared = new Float32Array(new SharedArrayBuffer(fx.x.byteLength));
  shared.set(fx.x);
  const copied = Trainer.create(
    fx.bytes('tiny_mlp.script.pt'),
    { inputs: [f32(shared, [fx.n, fx.d])], labels: i64(fx.y, [fx.n]) },
    plainPrivate(),
  );
  shared.fill(Number.NaN);
  copied.step();
  assert.ok(maxAbsDiff(parameters(copied), fx.refs.sgd_plain_1 ?? []) < 1e-5, 'trained on the values at creation');
});
