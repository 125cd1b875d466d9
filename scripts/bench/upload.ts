// Benchmark: loopback upload of a large safetensors dataset with curl over HTTPS to the compiled server
// (what `npm start` runs), end to end: multipart parsing, SHA-256, sealing, the dataset check and the
// canonical conversion, until the 201 arrives. Samples the server's resident memory (VmRSS) while it
// runs. Prints a table, or with --json one object {"megabytesPerSec", "rssGrowthBytes", ...}.
//
//   npm run bench:upload [-- --size-mib 1024] [--runs 3] [--json]
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { encodeSafetensorsHeader } from '../../src/artifacts/formats/safetensors.js';
import { startBenchServer } from './server.js';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    runs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const sizeMiB = Number(values['size-mib']);
const runs = Number(values.runs);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-bench-upload-'));
const file = path.join(work, 'dataset.safetensors');

// A safetensors dataset of about sizeMiB: inputs F32 [n, 256], labels I64 [n].
function writeDataset(): number {
  const features = 256;
  const rowBytes = features * 4 + 8;
  const n = Math.floor((sizeMiB * 1024 * 1024) / rowBytes);
  const header = encodeSafetensorsHeader([
    { name: 'inputs', dtype: 'F32', shape: [n, features] },
    { name: 'labels', dtype: 'I64', shape: [n] },
  ]);
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, header);
  const rowsPerChunk = 4096;
  const chunk = new Float32Array(rowsPerChunk * features);
  for (let i = 0; i < chunk.length; i += 1) chunk[i] = ((i * 7919) % 1000) / 1000;
  for (let done = 0; done < n; done += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, n - done);
    fs.writeSync(fd, new Uint8Array(chunk.buffer, 0, rows * features * 4));
  }
  const labels = new BigInt64Array(rowsPerChunk);
  for (let i = 0; i < labels.length; i += 1) labels[i] = BigInt(i % 10);
  for (let done = 0; done < n; done += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, n - done);
    fs.writeSync(fd, new Uint8Array(labels.buffer, 0, rows * 8));
  }
  fs.closeSync(fd);
  return fs.statSync(file).size;
}

function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

async function main() {
  const sizeBytes = writeDataset();
  const dataDir = path.join(work, 'var');
  const { process: server, url, token, ca } = await startBenchServer(dataDir, ['--pool-size', '1']);
  const results: { seconds: number; megabytesPerSec: number; rssGrowthBytes: number }[] = [];
  try {
    for (let i = 0; i < runs; i += 1) {
      const baseline = rssBytes(server.pid!);
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(server.pid!))), 20);
      const started = performance.now();
      const { stdout } = await run(
        'curl',
        [
          '-sS',
          '--cacert',
          ca,
          '-H',
          `Authorization: Bearer ${token}`,
          '-F',
          `file=@${file};type=application/octet-stream`,
          '-F',
          `name=bench-${i}`,
          '-F',
          'privacyLimit=8',
          '-w',
          '\n%{http_code}',
          `${url}/v1/datasets`,
        ],
        { maxBuffer: 1 << 20 },
      );
      const seconds = (performance.now() - started) / 1000;
      clearInterval(sampler);
      peak = Math.max(peak, rssBytes(server.pid!));
      const [body, status] = stdout.split('\n');
      if (status !== '201') throw new Error(`upload answered ${status}: ${body}`);
      // Each run starts from the same state: the previous dataset is deleted.
      const { id } = JSON.parse(body!) as { id: string };
      await run('curl', ['-sS', '--cacert', ca, '-H', `Authorization: Bearer ${token}`, '-X', 'DELETE', `${url}/v1/datasets/${id}`]);
      results.push({ seconds, megabytesPerSec: sizeBytes / 1e6 / seconds, rssGrowthBytes: peak - baseline });
    }
  } finally {
    server.kill('SIGTERM');
    fs.rmSync(work, { recursive: true, force: true });
  }
  const median = <T>(xs: T[], f: (x: T) => number) => xs.map(f).sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const summary = {
    sizeBytes,
    runs,
    seconds: median(results, (r) => r.seconds),
    megabytesPerSec: median(results, (r) => r.megabytesPerSec),
    rssGrowthBytes: Math.max(...results.map((r) => r.rssGrowthBytes)),
  };
  if (values.json) {
    console.log(JSON.stringify(summary));
    return;
  }
  console.log(
    `upload of a ${(sizeBytes / 2 ** 20).toFixed(0)} MiB safetensors dataset, curl over HTTPS on ` +
      `loopback, ${runs} runs (${os.cpus().length} cores)`,
  );
  console.log('| run | seconds | MB/s | server RSS growth (MB) |');
  console.log('|---|---|---|---|');
  results.forEach((r, i) => {
    console.log(`| ${i + 1} | ${r.seconds.toFixed(2)} | ${r.megabytesPerSec.toFixed(0)} | ${(r.rssGrowthBytes / 1e6).toFixed(1)} |`);
  });
  console.log(
    `| median / max | ${summary.seconds.toFixed(2)} | ${summary.megabytesPerSec.toFixed(0)} | ${(summary.rssGrowthBytes / 1e6).toFixed(1)} |`,
  );
}

await main();
