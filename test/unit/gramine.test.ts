// The Gramine manifest template renders to TOML that keeps the enclave's security rules (fixed argv,
// no host environment, encrypted data mount, DCAP attestation, …); a template that breaks one is
// refused by the check. Gramine itself is not needed: gramine/check_manifest.py renders and checks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/testdata.js';

const template = path.join(repoRoot, 'gramine', 'bastion.manifest.template');
const check = (file: string) =>
  spawnSync('/usr/bin/python3', [path.join(repoRoot, 'gramine', 'check_manifest.py'), file], { encoding: 'utf8' });

test('the manifest template renders and meets every rule of gramine/check_manifest.py (make -C gramine check)', () => {
  const result = spawnSync('make', ['-s', '-C', path.join(repoRoot, 'gramine'), 'check'], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /meets every rule/);
});

test('a template that lets the host pass its environment or leaves the data folder unencrypted is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-gramine-'));
  const original = fs.readFileSync(template, 'utf8');
  const broken = path.join(dir, 'broken.template');
  fs.writeFileSync(broken, `${original.replace('sgx.remote_attestation = "dcap"', 'sgx.remote_attestation = "none"')}\nloader.insecure__use_host_env = true\n`.replace('{ type = "encrypted", path = "/data"', '{ path = "/data"'));
  const result = check(broken);
  assert.equal(result.status, 1);
  assert.match(result.stderr, /insecure__use_host_env/);
  assert.match(result.stderr, /encrypted mount/);
  assert.match(result.stderr, /dcap/);
});
