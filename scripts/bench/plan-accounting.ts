// Planning benchmark: what one training plan costs in accountant work, by target ε — the noise
// calibration (calibrateTrainingNoise with PLD asked for) and the ledger's ε at the calibrated σ
// (composedEpsilon), as the pool runs them for POST /v1/trainings/plan. With --unbounded, PLD has no
// work bound (the behaviour before SERVER_PLD_MAX_GRID_POINTS); --max-epsilon=N skips larger targets
// (unbounded PLD at ε = 1000 takes minutes). One run per row, wall time on this thread. Prints a table;
// never run by npm test; no asserts.
import { createPldAccountant, createRdpAccountant, type PrivacyEvent, SERVER_PLD_MAX_GRID_POINTS } from '../../src/privacy/accountant.js';
import { calibrateTrainingNoise } from '../../src/privacy/calibration.js';
import { composedEpsilon } from '../../src/privacy/ledger.js';
import { describeCpu } from './cpu.js';

const unbounded = process.argv.includes('--unbounded');
const maxArg = process.argv.find((a) => a.startsWith('--max-epsilon='));
const maxEpsilon = maxArg ? Number(maxArg.slice('--max-epsilon='.length)) : Infinity;
const DELTA = 1e-5;
const recipes = [
  { name: 'q=256/60000, 3 epochs', sampleRate: 256 / 60_000, epochs: 3 },
  { name: 'q=0.256, 3 epochs', sampleRate: 0.256, epochs: 3 },
];
const targets = [1, 8, 30, 100, 1000].filter((e) => e <= maxEpsilon);

const bound = unbounded ? 'none' : `${SERVER_PLD_MAX_GRID_POINTS} grid points`;
console.log(`CPU: ${describeCpu()}; PLD work bound: ${bound}`);
console.log('recipe                 | steps | target ε | calibrated by | σ        | calibrate ms | ledger ε  | ledger by | ledger ms');
for (const recipe of recipes) {
  const steps = Math.ceil(recipe.epochs / recipe.sampleRate);
  for (const targetEpsilon of targets) {
    let start = performance.now();
    const noise = calibrateTrainingNoise({
      accountant: 'pld',
      targetEpsilon,
      extraEpsilon: 0,
      delta: DELTA,
      sampleRate: recipe.sampleRate,
      steps,
      ...(unbounded ? { maxPldGridPoints: Infinity } : {}),
    });
    const calibrateMs = performance.now() - start;
    start = performance.now();
    const { sampleRate } = recipe;
    const events: PrivacyEvent[] = [{ kind: 'poisson-gaussian', sampleRate, noiseMultiplier: noise.noiseMultiplier, count: steps }];
    const ledger = unbounded ? unboundedLedger(events) : composedEpsilon(events, DELTA);
    const ledgerMs = performance.now() - start;
    console.log(
      [
        recipe.name.padEnd(22),
        String(steps).padStart(5),
        String(targetEpsilon).padStart(8),
        noise.accountant.padEnd(13),
        noise.noiseMultiplier.toFixed(5).padStart(8),
        calibrateMs.toFixed(0).padStart(12),
        ledger.epsilon.toFixed(3).padStart(9),
        ledger.accountant.padEnd(9),
        ledgerMs.toFixed(0).padStart(9),
      ].join(' | '),
    );
  }
}

/** The ledger's figure as it was before the work bound: the smaller of unbounded PLD and RDP. */
function unboundedLedger(events: PrivacyEvent[]): { epsilon: number; accountant: string } {
  const pld = createPldAccountant().epsilon(events, { delta: DELTA });
  const rdp = createRdpAccountant().epsilon(events, { delta: DELTA });
  return pld <= rdp ? { epsilon: pld, accountant: 'pld' } : { epsilon: rdp, accountant: 'rdp' };
}
