// scripts/examples/train_private.py, the example for PyTorch users (PyTorch and the standard library only), run
// with Debian's python3 against the real server: upload, plan, private training, download, load back.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot, startServerProcess } from '../helpers/server.js';
import { fixturePython } from '../helpers/torch-fixtures.js';

const run = promisify(execFile);

test('the Python example trains privately through the API and loads the result back into PyTorch', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-python-'));
  const dataDir = path.join(dir, 'var');
  const server = await startServerProcess(['--data-dir', dataDir, '--port', '0']);
  try {
    const { stdout } = await run(fixturePython, [path.join(repoRoot, 'scripts', 'examples', 'train_private.py')], {
      cwd: dir,
      env: {
        ...process.env,
        BASTION_URL: server.url,
        BASTION_CA: path.join(dataDir, 'tls', 'server-cert.pem'),
        BASTION_TOKEN: fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim(),
      },
      timeout: 300_000,
    });
    assert.match(stdout, /^plan: σ = \d+\.\d+, \d+ steps, ε = \d\.\d+ at δ = /m);
    assert.match(stdout, /succeeded: step (\d+)\/\1/);
    const accuracy = Number(/accuracy on the records here: (\d\.\d+)/.exec(stdout)?.[1]);
    assert.ok(accuracy >= 0 && accuracy <= 1, stdout);
    const spent = Number(/ε spent (\d\.\d+) of 3/.exec(stdout)?.[1]);
    assert.ok(spent > 0 && spent <= 2 + 1e-9, stdout);
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
