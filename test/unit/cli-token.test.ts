// `bastion token new`: a token made on the operator's machine and the verifier the server is given instead.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { parseToken, parseTokenVerifier, secretMatches, tokenVerifier } from '../../src/governance/tokens.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');

test('bastion token new prints a fresh token and the verifier that matches it, and only it', () => {
  const script = `import('./src/cli/main.ts').then((m) => m.runCli(process.argv.slice(1)))`;
  const run = () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', '-e', script, 'token', 'new', '--json'], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stderr);
    return JSON.parse(result.stdout) as { token: string; verifier: string };
  };
  const first = run();
  const second = run();
  assert.notEqual(first.token, second.token);
  const token = parseToken(first.token)!;
  const verifier = parseTokenVerifier(first.verifier)!;
  assert.equal(verifier.id, token.id);
  assert.ok(secretMatches(token.secret, verifier.secretHash));
  assert.equal(secretMatches(parseToken(second.token)!.secret, verifier.secretHash), false);
  assert.equal(tokenVerifier(first.token), first.verifier);
  assert.equal(tokenVerifier('not a token'), null);
});
