// The test runner: node:test's run() over an explicit list of test files (plain `node --test` finds no
// TypeScript tests on Node 20). Run as `node --import tsx scripts/test.mjs [tier | path ...]`: a tier name
// runs that tier's folder, a path runs that file or folder, nothing runs every tier (what `npm test` does).
// Files run in tier order, so the fast tiers report first; each file runs in its own process, which
// inherits the tsx loader. It fails when it finds no test file, and a full run fails on a test file that
// is in no tier, so no test silently stops running.
//
// The Python-built fixtures (test/helpers/torch-fixtures.ts) are built once per run: the runner makes a
// folder for them in the run's temporary folder (TMPDIR for every test process, removed at exit) and
// names it in BASTION_TEST_FIXTURE_CACHE for every test process. A folder already named there is used
// and kept (fixtures then survive across runs; its entries are keyed by the generator's text and
// arguments, not by the PyTorch installed).
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The tiers, each the folder test/<name>, in the order a full run starts them (fast feedback first):
 * - unit: pure TypeScript; no addon, no Python, no child process that loads libtorch (test/unit/tiers.test.ts
 *   fails on a file that imports one);
 * - addon: needs the built addon, a child process that loads libtorch, or Python with PyTorch;
 * - http: the app through inject(), with its worker pool and the Python-built models;
 * - e2e: a real server process, curl, the CLI, Python clients;
 * - slow: pure but long (the full PLD reference grid); last, so it fills the tail of a full run.
 */
const tierNames = ['unit', 'addon', 'http', 'e2e', 'slow'];
const isTier = (name) => tierNames.includes(name);

function testFiles(full) {
  if (statSync(full).isFile()) return [full];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.test.ts'))
    .map((d) => path.join(d.parentPath ?? d.path, d.name));
}

function collect(entry) {
  if (isTier(entry)) return testFiles(path.join(root, 'test', entry));
  const full = path.resolve(root, entry);
  try {
    return testFiles(full);
  } catch {
    console.error(`test runner: ${entry} is neither a tier (${tierNames.join(', ')}) nor a file or folder`);
    process.exit(1);
  }
}

/** The tier a file belongs to, or undefined for a file outside test/<tier>/. */
function tierOf(file) {
  const [top, name] = path.relative(root, file).split(path.sep);
  return top === 'test' && isTier(name) ? name : undefined;
}

const targets = process.argv.slice(2);
const files = [...new Set((targets.length ? targets : tierNames).flatMap(collect))];
if (files.length === 0) {
  console.error(`test runner: no *.test.ts files under ${targets.join(', ') || 'test/'}`);
  process.exit(1);
}
if (targets.length === 0) {
  const strays = testFiles(path.join(root, 'test')).filter((file) => tierOf(file) === undefined);
  if (strays.length) {
    const names = strays.map((f) => path.relative(root, f)).join(', ');
    console.error(`test runner: ${names} in no tier; move into test/{${tierNames.join(',')}}/`);
    process.exit(1);
  }
}
const rank = (file) => {
  const tier = tierOf(file);
  return tier === undefined ? tierNames.length : tierNames.indexOf(tier);
};
files.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));

// One temporary folder for the run, named in TMPDIR for every test process (os.tmpdir(), Python's
// tempfile, mktemp), so that what the tests leave there goes with it at exit.
const runTmp = mkdtempSync(path.join(os.tmpdir(), 'bastion-test-'));
process.env.TMPDIR = runTmp;
process.on('exit', () => rmSync(runTmp, { recursive: true, force: true }));
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
])
  process.once(signal, () => process.exit(code));
if (!process.env.BASTION_TEST_FIXTURE_CACHE) {
  const cache = mkdtempSync(path.join(runTmp, 'fixtures-'));
  process.env.BASTION_TEST_FIXTURE_CACHE = cache;
}

const counts = tierNames.map((tier) => [tier, files.filter((file) => tierOf(file) === tier).length]).filter(([, n]) => n > 0);
const others = files.filter((file) => tierOf(file) === undefined).length;
console.log(`test runner: ${[...counts.map(([tier, n]) => `${tier} ${n}`), ...(others ? [`other ${others}`] : [])].join(', ')} files`);

let failed = false;
const stream = run({ files, concurrency: 2, timeout: 10 * 60 * 1000 });
stream.on('test:fail', (event) => {
  if (event.details?.type !== 'suite') failed = true;
});
stream.compose(spec).pipe(process.stdout);
stream.on('end', () => {
  if (failed) process.exitCode = 1;
});
