// The compiled server (what `npm start` runs) in a child process for the benchmarks: started on a
// free port in its own data folder, resolved once it logs that it listens.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface BenchServer {
  process: ChildProcess;
  url: string;
  token: string;
  /** The development certificate, for curl --cacert. */
  ca: string;
}

export async function startBenchServer(dataDir: string, flags: string[] = []): Promise<BenchServer> {
  const server = spawn(process.execPath, [path.join(root, 'dist', 'main.js'), '--port', '0', '--data-dir', dataDir, ...flags], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: server.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'Bastion is listening' && entry.url) resolve(entry.url);
      } catch {
        /* not a log line */
      }
    });
    server.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return {
    process: server,
    url,
    token: fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim(),
    ca: path.join(dataDir, 'tls', 'server-cert.pem'),
  };
}
