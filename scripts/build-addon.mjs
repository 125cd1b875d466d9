#!/usr/bin/env node
// Builds the libtorch addon with node-gyp against this Node's own headers (never downloading them),
// incrementally, with ccache when it is installed. Run by `npm ci` (install script) and scripts/setup.sh.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'binding.gyp'))) process.exit(0);

const nodeGyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
if (!existsSync(nodeGyp)) {
  console.error('build-addon: node-gyp is not installed; run `npm ci` first (scripts/setup.sh does it).');
  process.exit(1);
}

// Node's own headers: <prefix>/include/node/node.h beside <prefix>/bin/node.
const prefix = join(dirname(process.execPath), '..');
const args = [nodeGyp, 'configure', 'build', `--jobs=${Math.max(1, os.availableParallelism())}`];
if (existsSync(join(prefix, 'include', 'node', 'node.h'))) args.push(`--nodedir=${prefix}`);

const env = { ...process.env };
const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
if (!env.CXX && which('ccache')) {
  env.CXX = 'ccache g++';
  env.CC = 'ccache gcc';
}
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env });
process.exit(result.status ?? 1);
