// The Gramine manifest template renders to TOML that keeps the enclave's security rules (fixed argv, no host
// environment, encrypted data mount keyed by the sealing key, no debug enclave, DCAP attestation, every library
// the process loads trusted, …); a template that breaks one is refused naming what broke it. Gramine itself is not
// needed: gramine/check_manifest.py renders and checks, and `make check` passes it this machine's real values.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { repoRoot } from '../helpers/testdata.js';

const gramineDir = path.join(repoRoot, 'gramine');
const original = fs.readFileSync(path.join(gramineDir, 'bastion.manifest.template'), 'utf8');

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-gramine-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Writes `text` as a template in a fresh folder under `scratch` and returns its path. */
function templateFile(text: string): string {
  const file = path.join(fs.mkdtempSync(path.join(scratch, 'template-')), 'bastion.manifest.template');
  fs.writeFileSync(file, text);
  return file;
}

/** The template with `from` replaced by `to`; fails when `from` is not in it (the test would then prove nothing). */
function edited(from: string, to: string): string {
  assert.ok(original.includes(from), `the template holds ${JSON.stringify(from)}`);
  return original.replace(from, to);
}

/** check_manifest.py with the fixed values only (no ldd): the rules that do not depend on this machine. */
const checkFixed = (file: string) =>
  spawnSync('/usr/bin/python3', [path.join(gramineDir, 'check_manifest.py'), file], { encoding: 'utf8' });

/** `make check`: the fixed values and this machine's (node, the repository, the libraries ldd reports). */
const makeCheck = (...variables: string[]) =>
  spawnSync('make', ['-s', '-C', gramineDir, 'check', 'PYTHON=/usr/bin/python3', ...variables], { encoding: 'utf8' });

test('make -C gramine check passes on this tree, printing each rule for the fixed values and for this machine', () => {
  const result = makeCheck();
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /fixed values/);
  assert.match(result.stdout, /this machine's values/);
  assert.match(result.stdout, /ok {4}every library that ldd reports for node, prlimit, the addon and \d+ module/);
  assert.match(result.stdout, /ok {4}sgx\.debug = false/);
  assert.match(result.stdout, /renders and meets every rule/);
});

test('a template whose trusted list leaves out one library that ldd reports for the addon is refused naming it', () => {
  const ldd = spawnSync('ldd', [path.join(repoRoot, 'build', 'Release', 'bastion.node')], { encoding: 'utf8' });
  const soname = /^\s*(libc10\.so\S*) =>/m.exec(ldd.stdout)?.[1];
  assert.ok(soname, `ldd names libc10 for the addon:\n${ldd.stdout}`);
  const loop = '{% for lib in native_libs.split() %}';
  const file = templateFile(edited(loop, `{% for lib in native_libs.split() if not lib.endswith('/${soname}') %}`));
  const result = makeCheck(`TEMPLATE=${file}`);
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, new RegExp(`${soname.replaceAll('.', '\\.')} \\(ldd: \\S+ -> \\S+, for build/Release/bastion\\.node\\)`));
  assert.match(result.stderr, /which is not a trusted file/);
});

test('a debug enclave (sgx.debug = true) is refused', () => {
  const result = checkFixed(templateFile(edited('sgx.debug = false', 'sgx.debug = true')));
  assert.equal(result.status, 1);
  assert.match(result.stderr, /FAIL sgx\.debug = false/);
  assert.match(result.stderr, /sgx\.debug is true/);
});

test('an environment variable passed through from the host is refused naming it', () => {
  const result = checkFixed(templateFile(edited('loader.env.NODE_ENV = "production"', 'loader.env.NODE_ENV = { passthrough = true }')));
  assert.equal(result.status, 1);
  assert.match(result.stderr, /loader\.env\.NODE_ENV takes its value from the host \(\{ passthrough = true \}\)/);
});

test("a manifest without the first admin's token verifier is refused (a token in the sealed folder could never be read)", () => {
  const result = checkFixed(templateFile(edited('loader.env.BASTION_ADMIN_TOKEN_VERIFIER = "{{ admin_token_verifier }}"', '')));
  assert.equal(result.status, 1);
  assert.match(result.stderr, /BASTION_ADMIN_TOKEN_VERIFIER is .*: make one with npx bastion token new/);
  const malformed = makeCheck('ADMIN_TOKEN_VERIFIER=bstv_nope');
  assert.notEqual(malformed.status, 0);
  assert.match(malformed.stderr, /BASTION_ADMIN_TOKEN_VERIFIER is "bstv_nope"/);
});

test('a template that lets the host pass its environment or leaves the data folder unencrypted is refused', () => {
  const broken = edited('sgx.remote_attestation = "dcap"', 'sgx.remote_attestation = "none"')
    .replace('{ type = "encrypted", path = "/data"', '{ path = "/data"')
    .concat('\nloader.insecure__use_host_env = true\n');
  const result = checkFixed(templateFile(broken));
  assert.equal(result.status, 1);
  assert.match(result.stderr, /insecure__use_host_env/);
  assert.match(result.stderr, /encrypted mount/);
  assert.match(result.stderr, /dcap/);
});

test('make check refuses to run without the addon, saying to build it first', () => {
  const result = makeCheck(`APP_DIR=${fs.mkdtempSync(path.join(scratch, 'app-'))}`);
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /build\/Release\/bastion\.node is missing: build the addon first \(npm run build:addon\)/);
});
