#!/usr/bin/env node
// Builds the libtorch addon with node-gyp against this Node's own headers (never downloading them),
// incrementally, with ccache when it is installed. Run by `npm ci` (install script) and scripts/setup.sh.
//
// Quiet unless something changed: a digest of everything the build reads (the addon sources,
// binding.gyp, the libtorch that scripts/libtorch.mjs finds, this Node, node-addon-api, node-gyp and the
// compiler settings) is kept beside the built addon, and when it matches, the build is skipped with one
// line. A build prints one progress line per compiled file instead of node-gyp's `gyp info` chatter;
// compiler warnings and errors and node-gyp's own errors still reach stderr as they happen.
//
// Usage: node scripts/build-addon.mjs [--force] [--verbose]
//   --force    build even when the digest matches
//   --verbose  node-gyp's and make's full output (also V=1)
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'binding.gyp'))) process.exit(0);

const force = process.argv.includes('--force');
const verbose = process.argv.includes('--verbose') || process.env.V === '1';
const say = (message) => console.log(`build-addon: ${message}`);

const nodeGyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
if (!existsSync(nodeGyp)) {
  console.error('build-addon: node-gyp is not installed; run `npm ci` first (scripts/setup.sh does it).');
  process.exit(1);
}

const addonFile = join(root, 'build', 'Release', 'bastion.node');
const stampFile = join(root, 'build', 'bastion-inputs.sha256');

// Node's own headers: <prefix>/include/node/node.h beside <prefix>/bin/node.
const prefix = join(dirname(process.execPath), '..');
const nodedir = existsSync(join(prefix, 'include', 'node', 'node.h')) ? prefix : null;

const env = { ...process.env };
const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
if (!env.CXX && which('ccache')) {
  env.CXX = 'ccache g++';
  env.CC = 'ccache gcc';
}

/** Every file under `dir`, relative to the root, sorted. */
function filesUnder(dir) {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath ?? entry.path, entry.name)))
    .sort();
}

const packageVersion = (name) => {
  const file = join(root, 'node_modules', name, 'package.json');
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).version : null;
};

/**
 * The digest of the build's inputs; null when libtorch cannot be found (the build then runs, and
 * binding.gyp's call to scripts/libtorch.mjs says what is missing).
 */
async function inputsDigest() {
  let libtorch;
  try {
    const { findLibtorch } = await import('./libtorch.mjs');
    const { dir, version, cxx11Abi, cxxstd, openmp, libDir } = findLibtorch();
    libtorch = { dir, version, cxx11Abi, cxxstd, openmp, libDir };
  } catch {
    return null;
  }
  const hash = createHash('sha256');
  const add = (label, value) => hash.update(`${label}\0${value}\0`);
  for (const file of ['binding.gyp', 'scripts/libtorch.mjs', 'scripts/build-addon.mjs', ...filesUnder('addon')]) {
    add(
      file,
      createHash('sha256')
        .update(readFileSync(join(root, file)))
        .digest('hex'),
    );
  }
  add('libtorch', JSON.stringify(libtorch));
  add('node', JSON.stringify({ version: process.version, modules: process.versions.modules, arch: process.arch, nodedir }));
  add('packages', JSON.stringify({ 'node-addon-api': packageVersion('node-addon-api'), 'node-gyp': packageVersion('node-gyp') }));
  const settings = ['CXX', 'CC', 'CXXFLAGS', 'CFLAGS', 'CPPFLAGS', 'LDFLAGS', 'LIBTORCH_DIR', 'LIBTORCH_CXX11_ABI'];
  add('env', JSON.stringify(settings.map((name) => [name, env[name] ?? null])));
  return hash.digest('hex');
}

const digest = await inputsDigest();
if (!force && digest !== null && existsSync(addonFile) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === digest) {
  say(`up to date (${relative(root, addonFile)})`);
  process.exit(0);
}
rmSync(stampFile, { force: true }); // a failed build must not leave the old digest beside a stale addon

const args = [nodeGyp, 'configure', 'build', `--jobs=${Math.max(1, os.availableParallelism())}`];
if (nodedir) args.push(`--nodedir=${nodedir}`);
if (!verbose) args.push('--loglevel=warn'); // node-gyp's "gyp info" lines; warnings and errors remain

const sources = readFileSync(join(root, 'binding.gyp'), 'utf8').match(/"addon\/src\/[^"]+\.cc"/g)?.length ?? 0;
const started = Date.now();
say(`building ${relative(root, addonFile)} (${sources} files; ccache: ${env.CXX?.startsWith('ccache') ? 'yes' : 'no'})`);
const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['inherit', verbose ? 'inherit' : 'pipe', 'inherit'] });

// make's stdout (V=0): "  CXX(target) Release/obj.target/bastion/addon/src/x.o" per file, the link,
// the copy, and make's directory notices. Compiler diagnostics go to stderr, untouched.
if (!verbose) {
  let compiled = 0;
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    const compile = /^\s*CXX\(target\) \S*?obj\.target\/bastion\/(\S+)\.o$/.exec(line);
    if (compile) say(`[${++compiled}/${sources}] compiling ${compile[1]}.cc`);
    else if (/^\s*SOLINK_MODULE\(target\)/.test(line)) say('linking');
    else if (!/^make(\[\d+\])?: (Entering|Leaving) directory|^make(\[\d+\])?: Nothing to be done|^\s*COPY /.test(line)) console.log(line);
  });
}

const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])));
if (code !== 0) {
  console.error(`build-addon: the build failed (${signal ?? `exit ${code}`}); rerun with --verbose for node-gyp's full output`);
  process.exit(code ?? 1);
}
if (digest !== null) writeFileSync(stampFile, `${digest}\n`);
say(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
