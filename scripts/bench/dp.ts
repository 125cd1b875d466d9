// Benchmark: DP-SGD step throughput against non-private training on the same model and batch size,
// with the same threads, data and optimizer, for the models of dp_models.py: the three of issue 11 (the
// Opacus MNIST CNN at batch 256, an MLP 100-256-256-2 at batch 512, a text classifier over 64 tokens of
// a 10,000-word vocabulary at batch 128) and the three of issue 17 (a 2-layer transformer encoder
// classifier at batch 64, a GroupNorm ResNet of 3 residual blocks at batch 128, an LSTM classifier at
// batch 64). Trainer.create loads each file directly (no upload, no operator policy), so a model whose
// layers no rule covers still trains, through the batch-of-one fallback: the table counts those
// parameters from the engine's plan (gradientPlan on a batch of two).
//
// Speed: both trainers live in one process and take their steps in alternating rounds of 5, so that
// the machine's drift (a shared VM can run one process 1.5x slower than the next) hits both modes
// alike; each figure is over all rounds, and the range is that of the per-round ratios. With --repeat
// N, N such processes run and the medians are reported, beside the median of every round's ratio (one
// slow spell of the machine moves a process's totals, but only the rounds it falls in). Memory: each mode also runs alone in a fresh
// process, whose peak resident memory (VmHWM) is its own. Prints a table, or with --json one object
// {"models": [{"name", "nonPrivateSamplesPerSec", "privateSamplesPerSec", "ratio", "peakRssBytes",
// "fallback", ...}]}. --models a,b runs only those; --threads N sets libtorch's intra-op threads (default:
// the CPUs; on a loaded machine 1 avoids OpenMP threads spinning at barriers while the other is descheduled).
//
//   npm run bench:dp [-- --steps 40] [--repeat 3] [--models gn_resnet,mnist_cnn] [--threads 1] [--json]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeCpu } from './cpu.js';
import { type ModelSpec, syntheticData, writeModels } from './dp-models.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '40' },
    repeat: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    models: { type: 'string' },
    threads: { type: 'string' },
    child: { type: 'string' },
    mode: { type: 'string' },
    manifest: { type: 'string' },
  },
});

type Mode = 'private' | 'non-private';
const threads = Number(values.threads ?? os.availableParallelism());
const ROUND = 5; // steps per mode and round

interface SpeedResult {
  nonPrivateSamplesPerSec: number;
  privateSamplesPerSec: number;
  /** Per round: private time per sample / non-private time per sample. */
  roundRatios: number[];
}

interface PlanResult {
  /** Trainable parameters (tensors) and their elements. */
  parameters: number;
  elements: number;
  /** Those the engine sends to the batch-of-one fallback, and the distinct reasons it gives. */
  fallbackParameters: number;
  fallbackElements: number;
  reasons: string[];
}

interface MemoryResult {
  /** VmHWM of the child: the whole process (node, libtorch, data, model). */
  peakRssBytes: number;
  /** Peak resident memory the steps added above what the loaded trainer held. */
  stepPeakGrowthBytes: number;
}

function status(field: 'VmRSS' | 'VmHWM'): number {
  const text = fs.readFileSync('/proc/self/status', 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0) * 1024;
}

async function trainers(spec: ModelSpec, modes: Mode[]) {
  const { Trainer, setThreads } = await import('../../src/native.js');
  setThreads(threads);
  const n = spec.batchSize * 20;
  const data = syntheticData(spec, n);
  const common = { loss: { kind: 'cross_entropy' as const }, optimizer: { type: 'sgd' as const, learningRate: 0.05 } };
  const model = fs.readFileSync(spec.file);
  return modes.map((mode) => {
    const trainer = Trainer.create(
      model,
      data,
      mode === 'private'
        ? {
            ...common,
            mode,
            sampleRate: spec.batchSize / n,
            noiseMultiplier: 1.0,
            maxGradNorm: 1.0,
            maxPhysicalBatchSize: spec.batchSize * 2,
          }
        : { ...common, mode, batchSize: spec.batchSize },
    );
    for (let i = 0; i < 3; i += 1) trainer.step(); // warm-up
    return trainer;
  });
}

/** Both modes in this process, in alternating rounds of ROUND steps each. */
async function speedChild(spec: ModelSpec, steps: number): Promise<SpeedResult> {
  const [nonPrivate, dp] = await trainers(spec, ['non-private', 'private']);
  const round = (trainer: typeof dp) => {
    let samples = 0;
    const started = performance.now();
    for (let i = 0; i < ROUND; i += 1) samples += trainer!.step().samples;
    return { samples, ms: performance.now() - started };
  };
  const total = { np: { samples: 0, ms: 0 }, dp: { samples: 0, ms: 0 } };
  const roundRatios: number[] = [];
  for (let r = 0; r < Math.max(1, Math.round(steps / ROUND)); r += 1) {
    const a = round(nonPrivate);
    const b = round(dp);
    for (const [sum, one] of [
      [total.np, a],
      [total.dp, b],
    ] as const) {
      sum.samples += one.samples;
      sum.ms += one.ms;
    }
    roundRatios.push(b.ms / b.samples / (a.ms / a.samples));
  }
  return {
    nonPrivateSamplesPerSec: (total.np.samples / total.np.ms) * 1000,
    privateSamplesPerSec: (total.dp.samples / total.dp.ms) * 1000,
    roundRatios,
  };
}

/** The engine's plan for the model, on a batch of two (so the batch-layout check runs). */
async function planChild(spec: ModelSpec): Promise<PlanResult> {
  const { gradientPlan } = await import('../../src/native.js');
  const plan = gradientPlan(fs.readFileSync(spec.file), syntheticData(spec, 2).inputs);
  const fallback = plan.filter((p) => p.rule === 'fallback');
  const elements = (ps: typeof plan) => ps.reduce((n, p) => n + (spec.parameters[p.parameter] ?? 0), 0);
  // Reasons without the source position, which differs per layer.
  const reasons = [...new Set(fallback.map((p) => p.reason.replace(/ at code\/\S+/, '')))];
  return {
    parameters: plan.length,
    elements: elements(plan),
    fallbackParameters: fallback.length,
    fallbackElements: elements(fallback),
    reasons,
  };
}

/** One mode alone: the process's peak memory while it steps. */
async function memoryChild(spec: ModelSpec, mode: Mode, steps: number): Promise<MemoryResult> {
  const [trainer] = await trainers(spec, [mode]);
  // Reset the peak (VmHWM) so it measures the steps (Linux: clear_refs 5).
  fs.writeFileSync('/proc/self/clear_refs', '5');
  const base = status('VmRSS');
  for (let i = 0; i < steps; i += 1) trainer!.step();
  const peak = status('VmHWM');
  return { peakRssBytes: peak, stepPeakGrowthBytes: Math.max(0, peak - base) };
}

async function main() {
  if (values.child) {
    const spec = (JSON.parse(values.manifest!) as Record<string, ModelSpec>)[values.child]!;
    const steps = Number(values.steps);
    const result =
      values.mode === 'speed'
        ? await speedChild(spec, steps)
        : values.mode === 'plan'
          ? await planChild(spec)
          : await memoryChild(spec, values.mode as Mode, steps);
    process.stdout.write(JSON.stringify(result));
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-bench-dp-'));
  const manifest = writeModels(dir);
  const manifestText = JSON.stringify(manifest);
  const run = <T>(name: string, mode: string, steps: string): T =>
    JSON.parse(
      execFileSync(
        process.execPath,
        [
          ...process.execArgv,
          fileURLToPath(import.meta.url),
          '--threads',
          String(threads),
          '--child',
          name,
          '--mode',
          mode,
          '--steps',
          steps,
          '--manifest',
          manifestText,
        ],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, OPENBLAS_NUM_THREADS: '1' },
        },
      ),
    ) as T;
  const repeat = Math.max(1, Number(values.repeat));
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const names = values.models ? values.models.split(',') : Object.keys(manifest);
  for (const name of names) if (!manifest[name]) throw new Error(`--models: ${name} is not one of ${Object.keys(manifest).join(', ')}`);
  const models = names.map((name) => {
    const plan = run<PlanResult>(name, 'plan', '0');
    const speed = Array.from({ length: repeat }, () => run<SpeedResult>(name, 'speed', values.steps!));
    const memorySteps = String(Math.min(20, Number(values.steps)));
    const memory = { dp: run<MemoryResult>(name, 'private', memorySteps), np: run<MemoryResult>(name, 'non-private', memorySteps) };
    const ratios = speed.map((s) => s.nonPrivateSamplesPerSec / s.privateSamplesPerSec);
    const rounds = speed.flatMap((s) => s.roundRatios);
    return {
      name,
      batchSize: manifest[name]!.batchSize,
      nonPrivateSamplesPerSec: median(speed.map((s) => s.nonPrivateSamplesPerSec)),
      privateSamplesPerSec: median(speed.map((s) => s.privateSamplesPerSec)),
      /** private time / non-private time for the same number of samples: the median over processes. */
      ratio: median(ratios),
      /** The smallest and largest ratio of one round (ROUND steps of each mode, back to back). */
      ratioRange: [Math.min(...rounds), Math.max(...rounds)],
      /** The median of the per-round ratios over every round of every process. */
      roundMedianRatio: median(rounds),
      peakRssBytes: memory.dp.peakRssBytes,
      nonPrivatePeakRssBytes: memory.np.peakRssBytes,
      stepPeakGrowthBytes: memory.dp.stepPeakGrowthBytes,
      nonPrivateStepPeakGrowthBytes: memory.np.stepPeakGrowthBytes,
      /** private peak RSS / non-private peak RSS (whole processes, libtorch included). */
      peakRssRatio: memory.dp.peakRssBytes / memory.np.peakRssBytes,
      fallback: plan,
    };
  });
  fs.rmSync(dir, { recursive: true, force: true });
  if (values.json) {
    console.log(JSON.stringify({ cpu: describeCpu(), threads, steps: Number(values.steps), repeat, models }));
    return;
  }
  const mb = (b: number) => (b / 1e6).toFixed(0);
  console.log(
    `DP-SGD vs non-private, ${values.steps} timed steps per mode in alternating rounds of ${ROUND}, both modes in one process, ` +
      `medians of ${repeat} processes, ${threads} libtorch threads, OpenBLAS, on ${describeCpu()}`,
  );
  console.log(
    '| model (batch) | non-private samples/s | private samples/s | time ratio | median round ratio | ratio range over rounds | peak RSS private / ' +
      'non-private (MB) | peak RSS ratio | step memory growth private / non-private (MB) | fallback parameters (tensors, elements) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const m of models) {
    const f = m.fallback;
    console.log(
      `| ${m.name} (${m.batchSize}) | ${m.nonPrivateSamplesPerSec.toFixed(0)} | ${m.privateSamplesPerSec.toFixed(0)} | ${m.ratio.toFixed(2)} | ${m.roundMedianRatio.toFixed(2)} | ${m.ratioRange.map((r) => r.toFixed(2)).join('–')} | ${mb(m.peakRssBytes)} / ${mb(m.nonPrivatePeakRssBytes)} | ${m.peakRssRatio.toFixed(2)} | ${mb(m.stepPeakGrowthBytes)} / ${mb(m.nonPrivateStepPeakGrowthBytes)} | ${f.fallbackParameters}/${f.parameters}, ${f.fallbackElements}/${f.elements} |`,
    );
  }
  for (const m of models) {
    if (m.fallback.reasons.length) console.log(`${m.name}: fallback because ${m.fallback.reasons.join('; ')}`);
  }
}

await main();
