// Accounting benchmark: how long RDP ε (100 000 steps), RDP noise calibration and PLD ε (10 000 steps at
// the reference 1e-4 grid) take for three DP-SGD settings at δ = 1e-5; medians of several runs. Prints
// a table, or with --json one JSON object with the same figures. Never run by npm test; no asserts.
import { createPldAccountant, createRdpAccountant, type PrivacyEvent } from '../../src/privacy/accountant.js';
import { calibrateNoiseMultiplier } from '../../src/privacy/calibration.js';

const DELTA = 1e-5;
const settings = [
  { sampleRate: 0.01, noiseMultiplier: 1.0 },
  { sampleRate: 256 / 60_000, noiseMultiplier: 1.1 },
  { sampleRate: 0.1, noiseMultiplier: 0.8 },
];
const targets = { rdpMs: 10, calibrationMs: 200, pldMs: 1000 };
const json = process.argv.includes('--json');
const runsArg = process.argv.find((a) => a.startsWith('--runs='));
const runs = runsArg ? Number(runsArg.slice('--runs='.length)) : 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median wall time (ms) of `n` runs of fn, and its last result. */
function time<T>(n: number, fn: () => T): { ms: number; value: T } {
  const samples: number[] = [];
  let value!: T;
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    value = fn();
    samples.push(performance.now() - start);
  }
  return { ms: median(samples), value };
}

const rdp = createRdpAccountant();
const pld = createPldAccountant({ valueDiscretizationInterval: 1e-4 });
const rows = settings.map(({ sampleRate, noiseMultiplier }) => {
  const events = (count: number): PrivacyEvent[] => [{ kind: 'poisson-gaussian', sampleRate, noiseMultiplier, count }];
  const rdpRun = time(runs, () => rdp.epsilonWithOrder(events(100_000), { delta: DELTA }));
  const steps = 10_000;
  const calibrationRun = time(runs, () => calibrateNoiseMultiplier({ accountant: rdp, targetEpsilon: 8, delta: DELTA, sampleRate, steps }));
  const pldRun = time(Math.max(1, Math.min(runs, 3)), () => pld.epsilon(events(10_000), { delta: DELTA }));
  return {
    sampleRate,
    noiseMultiplier,
    rdpEpsilon100k: rdpRun.value.epsilon,
    rdpOrder100k: rdpRun.value.order,
    rdpMs: rdpRun.ms,
    calibrationTargetEpsilon: 8,
    calibrationSteps: steps,
    calibratedNoiseMultiplier: calibrationRun.value,
    calibrationMs: calibrationRun.ms,
    pldEpsilon10k: pldRun.value,
    pldMs: pldRun.ms,
  };
});

if (json) {
  console.log(JSON.stringify({ delta: DELTA, runs, valueDiscretizationInterval: 1e-4, targets, rows }));
} else {
  const fmt = (x: number, digits = 4) => x.toPrecision(digits);
  console.log(
    `Accounting benchmark (δ = ${DELTA}, median of ${runs} runs; PLD median of ${Math.min(runs, 3)}; ` +
      `targets: RDP < ${targets.rdpMs} ms, calibration < ${targets.calibrationMs} ms, PLD < ${targets.pldMs} ms)`,
  );
  console.log(
    ['q', 'σ', 'RDP ε (1e5 steps)', 'order', 'RDP ms', 'σ for ε=8 (1e4 steps)', 'calib ms', 'PLD ε (1e4 steps)', 'PLD ms'].join('\t'),
  );
  for (const r of rows) {
    console.log(
      [
        fmt(r.sampleRate),
        r.noiseMultiplier,
        fmt(r.rdpEpsilon100k, 6),
        r.rdpOrder100k,
        r.rdpMs.toFixed(2),
        fmt(r.calibratedNoiseMultiplier, 6),
        r.calibrationMs.toFixed(1),
        fmt(r.pldEpsilon10k, 6),
        r.pldMs.toFixed(0),
      ].join('\t'),
    );
  }
}
