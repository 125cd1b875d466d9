// Benchmark: DP-SGD step throughput against non-private training on the same model and batch size,
// for the three models of the issue (the Opacus MNIST CNN at batch 256, an MLP 100-256-256-2 at batch
// 512, a text classifier over 64 tokens of a 10,000-word vocabulary at batch 128). Each (model, mode)
// runs in a fresh child process, so its peak memory is its own; both modes use the same threads,
// data and optimizer. A shared machine's speed drifts between processes (one run of a mode can be
// 1.5× slower than the next), so each mode runs --repeat times, alternating with the other, and the
// figures are the medians over those runs. Prints a table, or with --json one object
// {"models": [{"name", "nonPrivateSamplesPerSec", "privateSamplesPerSec", "ratio", "peakRssBytes", ...}]}.
//
//   npm run bench:dp [-- --steps 20] [--repeat 5] [--json]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '20' },
    repeat: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
    child: { type: 'string' },
    mode: { type: 'string' },
    manifest: { type: 'string' },
  },
});

interface ModelSpec {
  file: string;
  input: { dtype: 'F32' | 'I64'; shape: number[]; vocabulary?: number };
  classes: number;
  batchSize: number;
}

interface RunResult {
  samplesPerSec: number;
  /** VmHWM of the child: the whole process (node, libtorch, data, model). */
  peakRssBytes: number;
  /** Peak resident memory the steps added above what the loaded trainer held. */
  stepPeakGrowthBytes: number;
  steps: number;
}

function status(field: 'VmRSS' | 'VmHWM'): number {
  const text = fs.readFileSync('/proc/self/status', 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0) * 1024;
}

async function child(name: string, mode: 'private' | 'non-private', spec: ModelSpec, steps: number): Promise<RunResult> {
  const { Trainer, setThreads } = await import('../../src/native.js');
  setThreads(os.availableParallelism());
  const n = spec.batchSize * 20;
  const perSample = spec.input.shape.reduce((a, b) => a * b, 1);
  const inputs =
    spec.input.dtype === 'F32'
      ? Buffer.from(Float32Array.from({ length: n * perSample }, (_, i) => ((i * 2654435761) % 1000) / 1000).buffer)
      : Buffer.from(BigInt64Array.from({ length: n * perSample }, (_, i) => BigInt((i * 2654435761) % (spec.input.vocabulary ?? 2))).buffer);
  const labels = Buffer.from(BigInt64Array.from({ length: n }, (_, i) => BigInt(i % spec.classes)).buffer);
  const data = {
    inputs: [{ dtype: spec.input.dtype, shape: [n, ...spec.input.shape], data: inputs }],
    labels: { dtype: 'I64' as const, shape: [n], data: labels },
  };
  const common = { loss: { kind: 'cross_entropy' as const }, optimizer: { kind: 'sgd' as const, lr: 0.05 } };
  const trainer = Trainer.create(
    fs.readFileSync(spec.file),
    data,
    mode === 'private'
      ? { ...common, mode, sampleRate: spec.batchSize / n, noiseMultiplier: 1.0, maxGradNorm: 1.0, maxPhysicalBatchSize: spec.batchSize * 2 }
      : { ...common, mode, batchSize: spec.batchSize },
  );
  for (let i = 0; i < 3; i += 1) trainer.step(); // warm-up
  // Reset the peak (VmHWM) so it measures the timed steps (Linux: clear_refs 5).
  fs.writeFileSync('/proc/self/clear_refs', '5');
  const base = status('VmRSS');
  let samples = 0;
  const started = performance.now();
  for (let i = 0; i < steps; i += 1) samples += trainer.step().samples;
  const seconds = (performance.now() - started) / 1000;
  const peak = status('VmHWM');
  return { samplesPerSec: samples / seconds, peakRssBytes: peak, stepPeakGrowthBytes: Math.max(0, peak - base), steps };
}

async function main() {
  if (values.child) {
    const manifest = JSON.parse(values.manifest!) as Record<string, ModelSpec>;
    const result = await child(values.child, values.mode as 'private' | 'non-private', manifest[values.child]!, Number(values.steps));
    process.stdout.write(JSON.stringify(result));
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-bench-dp-'));
  const manifestText = execFileSync('/usr/bin/python3', [path.join(here, 'dp_models.py'), dir], { encoding: 'utf8' });
  const manifest = JSON.parse(manifestText) as Record<string, ModelSpec>;
  const run = (name: string, mode: string): RunResult =>
    JSON.parse(
      execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', name, '--mode', mode, '--steps', values.steps!, '--manifest', manifestText], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, OPENBLAS_NUM_THREADS: '1' },
      }),
    ) as RunResult;
  const repeat = Math.max(1, Number(values.repeat));
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const models = Object.keys(manifest).map((name) => {
    const nonPrivate: RunResult[] = [];
    const dp: RunResult[] = [];
    for (let i = 0; i < repeat; i += 1) {
      nonPrivate.push(run(name, 'non-private'));
      dp.push(run(name, 'private'));
    }
    const of = (runs: RunResult[], key: keyof RunResult) => median(runs.map((r) => r[key]));
    const pairRatios = nonPrivate.map((r, i) => r.samplesPerSec / dp[i]!.samplesPerSec);
    return {
      name,
      batchSize: manifest[name]!.batchSize,
      nonPrivateSamplesPerSec: of(nonPrivate, 'samplesPerSec'),
      privateSamplesPerSec: of(dp, 'samplesPerSec'),
      /** private time / non-private time for the same number of samples, from the medians. */
      ratio: of(nonPrivate, 'samplesPerSec') / of(dp, 'samplesPerSec'),
      /** The smallest and largest ratio of one non-private run to the private run after it. */
      ratioRange: [Math.min(...pairRatios), Math.max(...pairRatios)],
      peakRssBytes: Math.max(...dp.map((r) => r.peakRssBytes)),
      nonPrivatePeakRssBytes: Math.max(...nonPrivate.map((r) => r.peakRssBytes)),
      stepPeakGrowthBytes: Math.max(...dp.map((r) => r.stepPeakGrowthBytes)),
      nonPrivateStepPeakGrowthBytes: Math.max(...nonPrivate.map((r) => r.stepPeakGrowthBytes)),
    };
  });
  fs.rmSync(dir, { recursive: true, force: true });
  if (values.json) {
    console.log(JSON.stringify({ threads: os.availableParallelism(), steps: Number(values.steps), repeat, models }));
    return;
  }
  const mb = (b: number) => (b / 1e6).toFixed(0);
  console.log(`DP-SGD vs non-private, ${values.steps} timed steps per run, medians of ${repeat} alternating runs per mode, ${os.availableParallelism()} libtorch threads, OpenBLAS`);
  console.log('| model (batch) | non-private samples/s | private samples/s | time ratio | ratio range over run pairs | peak RSS private / non-private (MB) | step memory growth private / non-private (MB) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const m of models) {
    console.log(
      `| ${m.name} (${m.batchSize}) | ${m.nonPrivateSamplesPerSec.toFixed(0)} | ${m.privateSamplesPerSec.toFixed(0)} | ${m.ratio.toFixed(2)} | ${m.ratioRange.map((r) => r.toFixed(2)).join('–')} | ${mb(m.peakRssBytes)} / ${mb(m.nonPrivatePeakRssBytes)} | ${mb(m.stepPeakGrowthBytes)} / ${mb(m.nonPrivateStepPeakGrowthBytes)} |`,
    );
  }
}

await main();
