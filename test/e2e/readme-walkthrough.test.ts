// The README's walkthrough, run as written: every ```sh block marked <!-- walkthrough --> is joined into
// one bash script and run (set -euo pipefail) in a fresh folder against the real server (dist/main.js)
// whose data folder is that folder's var/, so the README cannot drift from what the server does.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot, startServerProcess } from '../helpers/server.js';

const run = promisify(execFile);

/** The walkthrough's shell blocks, in order. */
export function walkthroughBlocks(readme: string): string[] {
  const blocks: string[] = [];
  const marker = /<!-- walkthrough -->\s*\n```sh\n([\s\S]*?)\n```/g;
  for (let m = marker.exec(readme); m !== null; m = marker.exec(readme)) blocks.push(m[1]!);
  return blocks;
}

test('the README walkthrough runs as written: principals, uploads with a policy, plan, DP training watched to the end, download into PyTorch, a DP evaluation, the ledger, a non-private training', async () => {
  const blocks = walkthroughBlocks(fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8'));
  assert.ok(blocks.length >= 6, `found ${blocks.length} walkthrough blocks`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-readme-'));
  const server = await startServerProcess(['--data-dir', path.join(dir, 'var'), '--port', '0'], { BASTION_DATA_DIR: '' });
  try {
    const script = ['set -euo pipefail', ...blocks].join('\n');
    fs.writeFileSync(path.join(dir, 'walkthrough.sh'), script);
    let out: { stdout: string; stderr: string };
    try {
      out = await run('bash', ['walkthrough.sh'], {
        cwd: dir,
        // Debian's python3 (with python3-torch) first, as a reader following the README has it.
        env: { ...process.env, BASTION: server.url, PATH: `/usr/bin:${process.env.PATH ?? ''}` },
        timeout: 300_000,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      assert.fail(`the walkthrough failed (exit ${e.code}):\n${e.stdout}\n${e.stderr}`);
    }
    const lines = out.stdout.trim().split('\n');
    assert.ok(Number(lines[0]) > 0, `the plan prints σ: ${lines[0]}`);
    assert.ok(lines.includes('event: completed'), out.stdout);
    assert.ok(lines.includes('torch.Size([1, 3])'), out.stdout);
    const [epsilon, accuracy, remaining, status] = lines.slice(-4);
    assert.ok(Number(epsilon) > 0 && Number(epsilon) <= 2, `lineage ε ${epsilon}`);
    assert.ok(Number(accuracy) >= 0 && Number(accuracy) <= 1, `accuracy ${accuracy}`);
    assert.ok(Number(remaining) > 0 && Number(remaining) < 4 - 2, `ε left ${remaining}`);
    assert.equal(status, 'queued');
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
