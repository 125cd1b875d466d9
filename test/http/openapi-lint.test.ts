// openapi.yaml against the two linters the contract is held to: Redocly's recommended rules (redocly.yaml,
// its known exceptions in .redocly.lint-ignore.yaml) and Spectral's spectral:oas (.spectral.yaml). Both
// configs make a missing operation description an error. The linters run from devDependencies as child
// processes, all at once (each takes seconds); a copy with one description removed shows the configs bite.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

// Not imported from scripts/openapi.ts: that would load the whole app into this process for two paths.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OPENAPI_FILE = path.join(repoRoot, 'openapi.yaml');

const REDOCLY = path.join(repoRoot, 'node_modules', '@redocly', 'cli', 'bin', 'cli.js');
const SPECTRAL = path.join(repoRoot, 'node_modules', '@stoplight', 'spectral-cli', 'dist', 'index.js');
// No telemetry or update check from a test; no colour codes in the output a failure prints.
const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1', FORCE_COLOR: '0' };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runNode(script: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const options = { cwd: repoRoot, env, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 };
    execFile(process.execPath, [script, ...args], options, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

interface RedoclyProblem {
  ruleId: string;
  severity: 'error' | 'warn';
  message: string;
  location: { pointer: string }[];
}

/** Redocly's verdict on `file`: its JSON report (totals and problems) and the raw run for failure messages. */
async function redoclyLint(file: string) {
  const run = await runNode(REDOCLY, ['lint', file, '--config', path.join(repoRoot, 'redocly.yaml'), '--format=json']);
  let report: { totals: { errors: number; warnings: number; ignored: number }; problems: RedoclyProblem[] } | null = null;
  try {
    report = JSON.parse(run.stdout);
  } catch {
    // not JSON: the assertion below prints what it said instead
  }
  return { run, report };
}

interface SpectralResult {
  code: string | number;
  message: string;
  severity: number; // 0 error, 1 warning, 2 info, 3 hint
  path: string[];
  range: { start: { line: number } };
}

/** Spectral's verdict on `file`: its JSON results (written to a file) and its human-readable output. */
async function spectralLint(file: string, outDir: string) {
  const jsonFile = path.join(outDir, `spectral-${path.basename(path.dirname(file))}.json`);
  const ruleset = path.join(repoRoot, '.spectral.yaml');
  const run = await runNode(SPECTRAL, ['lint', file, '--ruleset', ruleset, '-f', 'json', '-o.json', jsonFile, '-f', 'text']);
  let results: SpectralResult[] | null = null;
  try {
    results = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
  } catch {
    // no report: the assertion below prints what it said instead
  }
  return { run, results };
}

const say = (name: string, run: Run) => `${name} exited ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;

// The negative control: the committed document less one operation's description.
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-openapi-lint-'));
const undescribedDir = path.join(workDir, 'undescribed');
fs.mkdirSync(undescribedDir);
const undescribed = parse(fs.readFileSync(OPENAPI_FILE, 'utf8')) as { paths: Record<string, Record<string, { description?: string }>> };
delete undescribed.paths['/v1/whoami']!.get!.description;
const undescribedFile = path.join(undescribedDir, 'openapi.yaml');
fs.writeFileSync(undescribedFile, stringify(undescribed, { lineWidth: 0 }));

const committedDir = path.join(workDir, 'committed');
fs.mkdirSync(committedDir);
const runs = {
  redocly: redoclyLint(OPENAPI_FILE),
  spectral: spectralLint(OPENAPI_FILE, committedDir),
  redoclyUndescribed: redoclyLint(undescribedFile),
  spectralUndescribed: spectralLint(undescribedFile, undescribedDir),
};
after(async () => {
  await Promise.allSettled(Object.values(runs));
  fs.rmSync(workDir, { recursive: true, force: true });
});

test('openapi.yaml passes redocly lint (recommended rules, redocly.yaml) with no error', async () => {
  const { run, report } = await runs.redocly;
  assert.ok(report, say('redocly', run));
  const errors = report.problems.filter((p) => p.severity === 'error');
  assert.deepEqual(
    errors.map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`),
    [],
    say('redocly', run),
  );
  assert.equal(report.totals.errors, 0, say('redocly', run));
  assert.equal(run.code, 0, say('redocly', run));
});

test('openapi.yaml passes spectral lint (spectral:oas, .spectral.yaml) with no error', async () => {
  const { run, results } = await runs.spectral;
  assert.ok(results, say('spectral', run));
  const errors = results.filter((r) => r.severity === 0);
  assert.deepEqual(
    errors.map((r) => `${r.code} at ${r.path.join('.')} (line ${r.range.start.line + 1}): ${r.message}`),
    [],
    say('spectral', run),
  );
  assert.equal(run.code, 0, say('spectral', run));
});

test('both linters fail a document in which an operation has no description (the configs are in force)', async () => {
  const redocly = await runs.redoclyUndescribed;
  assert.ok(redocly.report, say('redocly', redocly.run));
  assert.deepEqual(
    redocly.report.problems.filter((p) => p.severity === 'error').map((p) => [p.ruleId, p.location[0]?.pointer]),
    [['operation-description', '#/paths/~1v1~1whoami/get/description']],
    say('redocly', redocly.run),
  );
  assert.notEqual(redocly.run.code, 0);

  const spectral = await runs.spectralUndescribed;
  assert.ok(spectral.results, say('spectral', spectral.run));
  assert.deepEqual(
    spectral.results.filter((r) => r.severity === 0).map((r) => [r.code, r.path.join('.')]),
    [['operation-description', 'paths./v1/whoami.get']],
    say('spectral', spectral.run),
  );
  assert.notEqual(spectral.run.code, 0);
});
