// The test runner: node:test's run() over an explicit list of test files (plain `node --test` finds no
// TypeScript tests on Node 20). Run as `node --import tsx scripts/test.mjs [path ...]`; each file runs
// in its own process, which inherits the tsx loader. Fails when it finds no test file.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const targets = process.argv.slice(2);

function collect(entry) {
  const full = path.resolve(root, entry);
  if (statSync(full).isFile()) return [full];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.test.ts'))
    .map((d) => path.join(d.parentPath ?? d.path, d.name));
}

const files = [...new Set((targets.length ? targets : ['test']).flatMap(collect))].sort();
if (files.length === 0) {
  console.error(`test runner: no *.test.ts files under ${targets.join(', ') || 'test/'}`);
  process.exit(1);
}

let failed = false;
const stream = run({ files, concurrency: 2, timeout: 10 * 60 * 1000 });
stream.on('test:fail', (event) => {
  if (event.details?.type !== 'suite') failed = true;
});
stream.compose(spec).pipe(process.stdout);
stream.on('end', () => {
  if (failed) process.exitCode = 1;
});
