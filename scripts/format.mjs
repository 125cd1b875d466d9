#!/usr/bin/env node
// One command formats and lints the tree: biome for TypeScript and JSON (biome.json), clang-format for the
// addon's C++ (.clang-format). `node scripts/format.mjs` rewrites files; `--check` changes nothing and exits
// non-zero when a file is not formatted or a lint rule fails (npm test runs it that way).
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) {
    const hint = command === 'clang-format' ? ' (scripts/setup.sh installs it: apt-get install clang-format)' : '';
    console.error(`format: cannot run ${command}${hint}: ${result.error.message}`);
    process.exit(1);
  }
  return result.status ?? 1;
}

const biome = path.join(root, 'node_modules', '.bin', 'biome');
const biomeStatus = run(biome, check ? ['check', '--error-on-warnings', '.'] : ['check', '--write', '.']);

const cxx = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', 'addon'], { cwd: root, encoding: 'utf8' })
  .split('\n')
  .filter((f) => /\.(cc|h)$/.test(f));
const clangStatus = run('clang-format', check ? ['--dry-run', '--Werror', ...cxx] : ['-i', ...cxx]);

if (biomeStatus !== 0 || clangStatus !== 0) {
  if (check) console.error('format: run `npm run format` to format the tree; lint findings need a hand');
  process.exit(1);
}
