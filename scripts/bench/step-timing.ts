// Benchmark: what a DP-SGD step's duration reveals about its realised batch size. Under Poisson
// sampling a step draws Binomial(N, q) records — a private quantity — and takes longer the more it
// draws; whoever sees when steps end (the model's author polling GET /v1/trainings/{id} or reading its
// progress events, the operator watching the host) sees durations. This measures, for one of bench:dp's
// models (scripts/bench/dp_models.py) at a typical q, the correlation between realised size and step
// duration, and how precisely one step's duration estimates its size: the residual std of the linear fit
// duration = a + b · size, divided by b, against the Poisson std √(qN(1 − q)) that an observer knows
// without timing. Blocks of k consecutive steps (what one progress event covers when several steps fit
// in its interval) are measured the same way, against √k times the Poisson std.
//
// Wall time is what an observer sees; on a shared machine other tenants' load swamps it, so the
// process's CPU time per step is analysed too (with --threads 1 it approximates a dedicated core's wall
// clock). Prints a table, or with --json one object {"cpu", "cores", "loadAverage", "threads", "model",
// "sampleCount", "sampleRate", "steps", "realisedSizes", "wall", "wallDetrended" (each duration minus its
// neighbours' mean, as an observer would cancel drift) and "cpuTime": {"meanStepMs",
// "msPerSample", "correlation", "blocks": [{"k", "estimateStd", "poissonStd", "ratio", "posteriorStd"}]}}.
//
//   npm run bench:step-timing [-- --model mnist_cnn|mlp|text_cls] [--samples 60000] [--batch 256] [--steps 400] [--threads n] [--json]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { describeCpu } from './cpu.js';
import { syntheticData, writeModels } from './dp-models.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'mnist_cnn' },
    samples: { type: 'string', default: '60000' },
    batch: { type: 'string', default: '256' },
    steps: { type: 'string', default: '400' },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

/** Steps on either side whose mean is taken as the machine's current speed (detrend). */
const DRIFT_WINDOW = 8;

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Ordinary least squares y = a + b·x, with Pearson's r and the residuals. */
function fit(x: readonly number[], y: readonly number[]) {
  const mx = mean(x);
  const my = mean(y);
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < x.length; i += 1) {
    sxx += (x[i]! - mx) ** 2;
    sxy += (x[i]! - mx) * (y[i]! - my);
    syy += (y[i]! - my) ** 2;
  }
  const b = sxy / sxx;
  const a = my - b * mx;
  return { a, b, r: sxy / Math.sqrt(sxx * syy), residuals: y.map((yi, i) => yi - a - b * x[i]!) };
}

/** Sample standard deviation. */
const std = (xs: readonly number[]) => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, v) => s + (v - m) ** 2, 0) / (xs.length - 1));
};

async function main() {
  const sampleCount = Number(values.samples);
  const batch = Number(values.batch);
  const steps = Number(values.steps);
  const sampleRate = batch / sampleCount;

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-bench-timing-'));
  const manifest = writeModels(dir);
  const spec = manifest[values.model!];
  if (!spec) throw new Error(`--model must be one of ${Object.keys(manifest).join(', ')}`);
  const model = fs.readFileSync(spec.file);
  fs.rmSync(dir, { recursive: true, force: true });

  const { Trainer, setThreads } = await import('../../src/native.js');
  const threads = values.threads ? Number(values.threads) : os.availableParallelism();
  setThreads(threads);
  const trainer = Trainer.create(model, syntheticData(spec, sampleCount), {
    mode: 'private',
    sampleRate,
    noiseMultiplier: 1.0,
    maxGradNorm: 1.0,
    maxPhysicalBatchSize: batch * 2,
    loss: { kind: 'cross_entropy' },
    optimizer: { type: 'sgd', learningRate: 0.05 },
  });
  for (let i = 0; i < 5; i += 1) trainer.step(); // warm-up

  // The observer's view is wall time (polling and events see when steps end). On a shared machine other
  // tenants' load swamps it, so the process's CPU time per step is recorded too: with one libtorch thread
  // it is close to what the wall clock of a dedicated core would show.
  const sizes: number[] = [];
  const series = { wall: [] as number[], cpu: [] as number[] };
  for (let i = 0; i < steps; i += 1) {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const { samples } = trainer.step();
    series.wall.push(performance.now() - started);
    const used = process.cpuUsage(cpu);
    series.cpu.push((used.user + used.system) / 1000);
    sizes.push(samples);
  }

  /**
   * Each duration minus the mean of its DRIFT_WINDOW neighbours on either side: what an observer does to
   * cancel the machine's slow changes of speed (other tenants' load) before reading a step's size off it.
   */
  const detrend = (durations: number[]) =>
    durations.map((d, i) => {
      const around = [...durations.slice(Math.max(0, i - DRIFT_WINDOW), i), ...durations.slice(i + 1, i + 1 + DRIFT_WINDOW)];
      return d - mean(around);
    });
  const poissonStd = Math.sqrt(sampleCount * sampleRate * (1 - sampleRate));
  const analyse = (durations: number[]) => {
    const one = fit(sizes, durations);
    const blocks = [1, 4, 16].map((k) => {
      // Consecutive blocks of k steps: the block's total size estimated from its total duration with the
      // per-step fit; the error is the sum of the k residuals over b.
      const errors: number[] = [];
      for (let start = 0; start + k <= steps; start += k)
        errors.push(one.residuals.slice(start, start + k).reduce((a, b) => a + b, 0) / one.b);
      const estimateStd = std(errors);
      const prior = Math.sqrt(k) * poissonStd;
      return {
        k,
        blocks: errors.length,
        /** Std of (size estimated from the duration − realised size), records. */
        estimateStd,
        /** What an observer knows without timing: the std of the block's total size. */
        poissonStd: prior,
        ratio: estimateStd / prior,
        /** Std of the size given the duration and the Poisson prior (both taken as Gaussian), records. */
        posteriorStd: 1 / Math.sqrt(1 / prior ** 2 + 1 / estimateStd ** 2),
      };
    });
    return {
      meanStepMs: mean(durations),
      stepMsStd: std(durations),
      /** b: how much longer a step takes per record drawn. */
      msPerSample: one.b,
      interceptMs: one.a,
      correlation: one.r,
      blocks,
    };
  };
  const result = {
    cpu: describeCpu(),
    cores: os.availableParallelism(),
    loadAverage: os.loadavg()[0] ?? 0,
    threads,
    model: values.model,
    sampleCount,
    sampleRate,
    expectedBatchSize: batch,
    steps,
    realisedSizes: { min: Math.min(...sizes), max: Math.max(...sizes), std: std(sizes) },
    wall: analyse(series.wall),
    wallDetrended: analyse(detrend(series.wall)),
    cpuTime: analyse(series.cpu),
  };
  if (values.json) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(
    `Step duration against realised Poisson batch size: ${values.model}, N = ${sampleCount}, q = ${batch}/${sampleCount}, ${steps} ` +
      `steps after 5 warm-up, ` +
      `${threads} libtorch threads, ${result.cpu} (${result.cores} cores, load average ${result.loadAverage.toFixed(1)} at the end); ` +
      `realised sizes ${result.realisedSizes.min}–${result.realisedSizes.max} (std ${result.realisedSizes.std.toFixed(1)})`,
  );
  console.log(
    '| clock | step ms (mean ± std) | fit: ms + ms per record | correlation r | k steps per observation | std of the size estimated ' +
      'from the duration (records) | Poisson std √(k·qN(1−q)) | ratio | std given duration and prior |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const [clock, a] of [
    ['wall', result.wall],
    [`wall − mean of ±${DRIFT_WINDOW} neighbours`, result.wallDetrended],
    ['CPU time', result.cpuTime],
  ] as const) {
    for (const b of a.blocks) {
      const head =
        b.k === 1
          ? `| ${clock} | ${a.meanStepMs.toFixed(1)} ± ${a.stepMsStd.toFixed(1)} | ${a.interceptMs.toFixed(1)} + ${a.msPerSample.toFixed(3)} | ${a.correlation.toFixed(3)}`
          : '| | | |';
      console.log(
        `${head} | ${b.k} | ${b.estimateStd.toFixed(1)} | ${b.poissonStd.toFixed(1)} | ${b.ratio.toFixed(2)} | ${b.posteriorStd.toFixed(1)} |`,
      );
    }
  }
}

await main();
