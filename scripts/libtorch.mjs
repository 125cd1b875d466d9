#!/usr/bin/env node
// Locates libtorch for binding.gyp: include and library dirs, the C++11 ABI flag and the C++ standard,
// from LIBTORCH_DIR (default /usr, Debian's libtorch-dev). The ABI is read from the library itself,
// because a build with the wrong _GLIBCXX_USE_CXX11_ABI links but fails at the first call.
//
// Usage: node scripts/libtorch.mjs include_dirs|libraries|defines|cxxstd|openmp|info
// Layouts: Debian (/usr/include, /usr/lib/<multiarch>) and PyTorch wheel / libtorch zip
// ($DIR/include, $DIR/include/torch/csrc/api/include, $DIR/lib).
// Overrides: LIBTORCH_CXX11_ABI=0|1.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MULTIARCH = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', ppc64: 'powerpc64le-linux-gnu' };
// Directories the dynamic loader searches anyway: no rpath for these.
const SYSTEM_LIB_DIRS = new Set(['/lib', '/lib64', '/usr/lib', '/usr/lib64']);
for (const triple of Object.values(MULTIARCH)) {
  SYSTEM_LIB_DIRS.add(`/lib/${triple}`);
  SYSTEM_LIB_DIRS.add(`/usr/lib/${triple}`);
}

export class LibtorchNotFoundError extends Error {}

/** Describes the libtorch installation under `dir`; throws LibtorchNotFoundError naming LIBTORCH_DIR. */
export function findLibtorch(dir = process.env.LIBTORCH_DIR || '/usr', abiOverride = process.env.LIBTORCH_CXX11_ABI) {
  const root = path.resolve(dir);
  const includeDir = path.join(root, 'include');
  const apiIncludeDir = path.join(includeDir, 'torch', 'csrc', 'api', 'include');
  const versionHeader = path.join(apiIncludeDir, 'torch', 'version.h');
  const triple = MULTIARCH[process.arch];
  const libCandidates = [triple && path.join(root, 'lib', triple), path.join(root, 'lib'), path.join(root, 'lib64')].filter(
    (d) => typeof d === 'string',
  );
  const libDir = libCandidates.find((d) => existsSync(path.join(d, 'libtorch_cpu.so')) && existsSync(path.join(d, 'libc10.so')));

  const missing = [];
  if (!existsSync(versionHeader)) missing.push(versionHeader);
  if (!libDir) missing.push(`libtorch_cpu.so and libc10.so in ${libCandidates.join(' or ')}`);
  if (missing.length > 0) {
    throw new LibtorchNotFoundError(
      `libtorch not found under LIBTORCH_DIR=${dir} (missing: ${missing.join('; ')}). ` +
        'Install it with scripts/setup.sh (Debian: apt-get install libtorch-dev), or set LIBTORCH_DIR to a libtorch ' +
        'zip or a PyTorch installation (the directory holding include/ and lib/, e.g. .../site-packages/torch).',
    );
  }

  const version = readVersion(versionHeader);
  const abi = abiOverride === undefined || abiOverride === '' ? detectCxx11Abi(path.join(libDir, 'libc10.so')) : parseAbi(abiOverride);
  const includeDirs = [includeDir, apiIncludeDir];
  // ATen's at::parallel_for is a header template: in code built without -fopenmp its "#pragma omp
  // parallel" is ignored and every call runs on one thread, whatever at::set_num_threads says.
  const openmp = /#define\s+AT_PARALLEL_OPENMP\s+1/.test(readIfExists(path.join(includeDir, 'ATen', 'Config.h')));
  const rpath = SYSTEM_LIB_DIRS.has(libDir) ? null : libDir;
  return {
    dir: root,
    version: version.text,
    versionMajor: version.major,
    versionMinor: version.minor,
    cxx11Abi: abi.value,
    abiSource: abi.source,
    cxxstd: cxxStandard(version, includeDir),
    openmp,
    includeDirs,
    libDir,
    rpath,
    libraries: [`-L${libDir}`, '-ltorch_cpu', '-lc10', ...(rpath ? [`-Wl,-rpath,${rpath}`] : [])],
  };
}

function readIfExists(file) {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

function readVersion(header) {
  const text = readFileSync(header, 'utf8');
  const num = (name) => Number(new RegExp(`#define\\s+${name}\\s+(\\d+)`).exec(text)?.[1] ?? NaN);
  const major = num('TORCH_VERSION_MAJOR');
  const minor = num('TORCH_VERSION_MINOR');
  const patch = num('TORCH_VERSION_PATCH');
  if (!Number.isInteger(major) || !Number.isInteger(minor)) throw new LibtorchNotFoundError(`cannot read the version from ${header}`);
  const full = /#define\s+TORCH_VERSION\s+\\?\s*"([^"]+)"/.exec(text)?.[1];
  return { major, minor, text: full ?? `${major}.${minor}.${Number.isInteger(patch) ? patch : 0}` };
}

// libtorch built with the C++11 ABI mangles std::string as std::__cxx11::basic_string in its own
// symbols; a pre-C++11-ABI build (older PyTorch wheels) never contains that name.
function detectCxx11Abi(libc10) {
  const bytes = readFileSync(realpathSync(libc10));
  return { value: bytes.includes('St7__cxx1112basic_string'), source: `detected from ${libc10}` };
}

function parseAbi(text) {
  if (text !== '0' && text !== '1') throw new LibtorchNotFoundError(`LIBTORCH_CXX11_ABI must be 0 or 1, got "${text}"`);
  return { value: text === '1', source: 'LIBTORCH_CXX11_ABI' };
}

// libtorch 1.x and 2.x up to 2.11 need C++17; later releases need C++20. The headers' own
// "#error C++NN or later" check is honoured too, in case the version rule is out of date.
function cxxStandard(version, includeDir) {
  let std = version.major > 2 || (version.major === 2 && version.minor >= 12) ? 20 : 17;
  for (const header of ['c10/macros/Macros.h', 'torch/csrc/api/include/torch/all.h', 'ATen/ATen.h']) {
    const file = path.join(includeDir, header);
    if (!existsSync(file)) continue;
    for (const match of readFileSync(file, 'utf8').matchAll(/#\s*error\s+C\+\+(\d\d) or later/g)) {
      std = Math.max(std, Number(match[1]));
    }
  }
  return `-std=c++${std}`;
}

function main(command) {
  const info = findLibtorch();
  switch (command) {
    case 'include_dirs':
      return info.includeDirs.join('\n');
    case 'libraries':
      return info.libraries.join('\n');
    case 'defines':
      return `_GLIBCXX_USE_CXX11_ABI=${info.cxx11Abi ? 1 : 0}`;
    case 'cxxstd':
      return info.cxxstd;
    case 'openmp':
      return info.openmp ? '-fopenmp' : '';
    case 'info':
      return JSON.stringify(info, null, 2);
    default:
      throw new LibtorchNotFoundError(`unknown command "${command}"; use include_dirs, libraries, defines, cxxstd, openmp or info`);
  }
}

if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  try {
    process.stdout.write(`${main(process.argv[2] ?? 'info')}\n`);
  } catch (error) {
    process.stderr.write(`scripts/libtorch.mjs: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
