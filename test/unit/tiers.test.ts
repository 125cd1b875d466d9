// The unit tier stays pure, so that it is fast and runs anywhere the TypeScript does: no file under test/unit, nor a
// helper or fixture it reaches, loads the addon, starts something that loads libtorch (the worker pool, the model
// sandbox), or runs Python. Tests that need those belong in test/addon, test/http or test/e2e (scripts/test.mjs
// names the tiers). The scan is static: static and dynamic relative imports, followed through test/, and the files
// of test/fixtures named in string literals (a child script is followed, a Python script is a finding).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/testdata.js';

const testDir = path.join(repoRoot, 'test');
const srcDir = path.join(repoRoot, 'src');
const rel = (file: string): string => path.relative(repoRoot, file);

/** Imported names that start libtorch in this process or a child: the worker pool, the model sandbox, the server. */
const heavyNames = new Set(['createPool', 'runSandboxed', 'startServerProcess']);
/** src modules (src-relative, no extension) that load the addon when imported: the pool worker and the sandbox child. */
const isHeavyModule = (module: string): boolean => module === 'native' || /(^|\/)(worker|sandbox-child)$/.test(module);

/** What makes a reached file impure wherever it appears in its code (comments left out). */
const impureCode: [RegExp, string][] = [
  [/\/usr\/bin\/python3|['"`]python3?['"`]|\bfixturePython\b/, 'runs Python'],
  [/bastion\.node|['"`]Release['"`]|from\s+['"]bindings['"]/, 'loads the addon binary'],
  [/['"`](native|sandbox-child|main)\.[jt]s['"`]/, 'names a module that loads the addon, to run it in a child'],
];

const fixtureFiles = new Map(
  fs
    .readdirSync(path.join(testDir, 'fixtures'), { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => [d.name, path.join(d.parentPath, d.name)] as const),
);

/** The code of a file without its comment lines (a comment may name what a test must not do). */
const codeOf = (file: string): string =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => !/^\s*(\/\/|\/\*|\*)/.test(line))
    .join('\n');

/** A relative import specifier from `from`, as the file it names (`.js` written for a `.ts` file). */
function resolve(from: string, spec: string): string {
  const target = path.resolve(path.dirname(from), spec);
  const ts = target.replace(/\.js$/, '.ts');
  return fs.existsSync(ts) ? ts : target;
}

/** Why `entry` is not pure: one line per finding, naming the chain of files that leads to it; [] when pure. */
function impurities(entry: string): string[] {
  const found: string[] = [];
  const via = new Map<string, string>([[entry, rel(entry)]]);
  const queue = [entry];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const code = codeOf(file);
    const chain = via.get(file)!;
    const reach = (target: string) => {
      if (via.has(target) || !target.startsWith(testDir + path.sep) || !fs.existsSync(target)) return;
      via.set(target, `${chain} → ${rel(target)}`);
      queue.push(target);
    };
    for (const [pattern, why] of impureCode) if (pattern.test(code)) found.push(`${chain}: ${why}`);
    const imports = /^\s*(?:import|export)\s+(type\s+)?([^'";]*?)\s*from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
    for (const m of code.matchAll(imports)) {
      const spec = m[3] ?? m[4]!;
      if (!spec.startsWith('.')) continue;
      const target = resolve(file, spec);
      const names = (m[2] ?? '*')
        .replace(/[{}]/g, '')
        .split(',')
        .map((n) => n.trim())
        .filter(Boolean);
      const typeOnly = Boolean(m[1]) || names.every((n) => n.startsWith('type '));
      if (typeOnly) continue;
      const inSrc = target.startsWith(srcDir + path.sep);
      const from = inSrc ? `src/${path.relative(srcDir, target).replace(/\.ts$/, '').split(path.sep).join('/')}` : rel(target);
      const heavy = names.map((n) => n.split(/\s+as\s+/)[0]!).filter((n) => heavyNames.has(n));
      if (heavy.length) found.push(`${chain}: imports ${heavy.join(', ')} from ${from}, which starts libtorch`);
      if (inSrc && isHeavyModule(from.slice(4))) found.push(`${chain}: imports ${from}, which loads the addon`);
      if (!inSrc) reach(target);
    }
    for (const m of code.matchAll(/['"`]([\w.-]+\.(?:ts|mjs|py))['"`]/g)) {
      const fixture = fixtureFiles.get(m[1]!);
      if (fixture?.endsWith('.py')) found.push(`${chain}: names the Python script ${rel(fixture)}`);
      else if (fixture) reach(fixture);
    }
  }
  return found;
}

const testsIn = (dir: string): string[] =>
  fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.test.ts'))
    .map((d) => path.join(d.parentPath, d.name))
    .sort();

test('no file under test/unit, nor a helper or fixture it reaches, loads the addon, starts libtorch or runs Python', () => {
  const files = testsIn(path.join(testDir, 'unit'));
  assert.ok(files.length > 30, `the scan found the unit tests (${files.length})`);
  assert.deepEqual(files.flatMap(impurities), []);
});

test('the scan finds each reason a test left test/unit for test/addon', () => {
  const addon = (name: string) => impurities(path.join(testDir, 'addon', `${name}.test.ts`)).join('\n');
  // Through the Python-built fixtures and the addon's inspectModel.
  assert.match(addon('batch-analysis'), /batch-analysis\.test\.ts → test\/helpers\/torch-fixtures\.ts: runs Python/);
  assert.match(addon('batch-analysis'), /batch-analysis\.test\.ts: imports src\/native, which loads the addon/);
  // The worker pool; the sandbox, whose child loads the addon.
  assert.match(addon('pool'), /imports createPool from src\/\S+, which starts libtorch/);
  assert.match(addon('sandbox'), /imports runSandboxed from src\/artifacts\/sandbox, which starts libtorch/);
  // Python named directly, and the addon binary handed to ldd.
  assert.match(addon('gramine'), /gramine\.test\.ts: runs Python/);
  assert.match(addon('gramine'), /gramine\.test\.ts: loads the addon binary/);
  // A child process that imports src/native.ts.
  assert.match(addon('loading'), /loading\.test\.ts: names a module that loads the addon, to run it in a child/);
  // Python reached through a helper only.
  assert.match(addon('torchscript-archive-hostile'), /→ test\/helpers\/torch-fixtures\.ts: runs Python/);
  // The real server, which starts the worker pool.
  assert.match(impurities(path.join(testDir, 'e2e', 'server.test.ts')).join('\n'), /imports startServerProcess from /);
  // A pure file is pure, though it imports types from src/native and reaches helpers.
  assert.deepEqual(impurities(path.join(testDir, 'unit', 'training-runner.test.ts')), []);
});
