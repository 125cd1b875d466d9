// Streamed transfers against a plain local HTTP server: an upload does not hold its file in memory
// (memory stays bounded whatever the file's size) and arrives as a multipart form with
// its text fields first; a download that breaks off leaves no file behind.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { createBastionClient } from '../../src/client/client.js';
import { resolveConnection } from '../../src/client/connection.js';
import { downloadModel, saveStream, uploadDataset } from '../../src/client/transfer.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-transfer-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function serve(handler: http.RequestListener) {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = createBastionClient(resolveConnection({ url, token: 'test-token' }, {}, dir));
  return { client, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

test('an upload streams a 256 MiB file with memory bounded well below its size, fields first, then the file', async () => {
  const file = path.join(dir, 'big.safetensors');
  const sizeBytes = 256 * 1024 * 1024;
  fs.writeFileSync(file, '');
  fs.truncateSync(file, sizeBytes); // sparse: no disk, all zeros
  let received = 0;
  let head = '';
  const rssBefore = process.memoryUsage().rss;
  let maxRss = rssBefore;
  const { client, close } = await serve((req, res) => {
    req.on('data', (chunk: Buffer) => {
      if (head.length < 4096) head += chunk.subarray(0, 4096).toString('latin1');
      received += chunk.length;
    });
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ received, contentType: req.headers['content-type'], authorization: req.headers.authorization }));
    });
  });
  try {
    const answer = (await uploadDataset(client, file, { name: 'big', privacyLimit: 3, format: 'safetensors' }, () => {
      maxRss = Math.max(maxRss, process.memoryUsage().rss);
    })) as unknown as { received: number; contentType: string; authorization: string };
    assert.match(answer.contentType, /^multipart\/form-data; boundary=bastion-[0-9a-f]{32}$/);
    assert.equal(answer.authorization, 'Bearer test-token');
    assert.ok(answer.received > sizeBytes, 'the whole file and the form around it');
    const order = ['name="name"', 'name="privacyLimit"', 'name="format"', 'name="file"; filename="big.safetensors"'].map((part) =>
      head.indexOf(part),
    );
    assert.ok(
      order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1]!)),
      `fields before the file: ${order.join(',')}`,
    );
    // Stream and socket buffers, and garbage not yet collected (about 40 MB here), not the file: undici's
    // fetch with a streamed body (what this replaced) kept about 285 MB for these 256 MiB.
    const grownBytes = maxRss - rssBefore;
    assert.ok(grownBytes < 96 * 1024 * 1024, `memory grew by ${grownBytes} bytes while uploading ${sizeBytes}`);
  } finally {
    await close();
  }
});

test('a download that breaks off leaves neither the file nor its partial file', async () => {
  const { client, close } = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(1024 * 1024) });
    res.write(Buffer.alloc(64 * 1024), () => res.destroy());
  });
  const target = path.join(dir, 'broken.pt');
  try {
    await assert.rejects(downloadModel(client, '00000000-0000-0000-0000-000000000000', target));
    assert.equal(fs.existsSync(target), false);
    assert.equal(fs.existsSync(`${target}.partial`), false);
  } finally {
    await close();
  }
});

// The partial file is opened before the bytes flow. Left to the write stream, its open could finish after
// a stream that broke off at once had been cleaned up, creating the partial file then: 5 to 18 of these 40
// downloads left one behind in each of 5 runs, and the test above, open to the same race, failed once in CI.
test('downloads whose stream breaks off at once leave no partial file, also once pending opens are done', async () => {
  const targets = Array.from({ length: 40 }, (_, i) => path.join(dir, `at-once-${i}.pt`));
  for (const target of targets) {
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error('the connection broke'));
      },
    });
    await assert.rejects(saveStream(failing, target, null), /the connection broke/);
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  const left = targets.filter((target) => fs.existsSync(target) || fs.existsSync(`${target}.partial`));
  assert.deepEqual(left, []);
});

test('a complete download is renamed into place and reports its bytes', async () => {
  const content = Buffer.from('torchscript bytes'.repeat(1000));
  const { client, close } = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(content.length) });
    res.end(content);
  });
  const target = path.join(dir, 'model.pt');
  const seen: [number, number | null][] = [];
  try {
    assert.equal(
      await downloadModel(client, '00000000-0000-0000-0000-000000000000', target, (done, total) => seen.push([done, total])),
      content.length,
    );
    assert.deepEqual(fs.readFileSync(target), content);
    assert.deepEqual(seen.at(-1), [content.length, content.length]);
    assert.equal(fs.existsSync(`${target}.partial`), false);
  } finally {
    await close();
  }
});
