// Real curl against a server process started by test/helpers/server.ts: the development certificate
// of its data folder is trusted and the admin token (read when the server starts) is sent.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Curl {
  /** curl's arguments with --cacert and the Authorization header added. */
  args(extra: string[]): string[];
  /** Runs curl; the status and body of the response. */
  (extra: string[]): Promise<{ status: number; body: string }>;
}

/** A curl bound to `dataDir`: call refreshToken() after each (re)start of the server. */
export function curlFor(dataDir: string): Curl & { refreshToken(): void } {
  let token = '';
  const args = (extra: string[]) => [
    '-sS',
    '--cacert',
    path.join(dataDir, 'tls', 'server-cert.pem'),
    '-H',
    `Authorization: Bearer ${token}`,
    ...extra,
  ];
  const curl = async (extra: string[]) => {
    const { stdout } = await run('curl', [...args(extra), '-w', '\n%{http_code}'], { maxBuffer: 64 << 20 });
    const cut = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
  };
  return Object.assign(curl, {
    args,
    refreshToken: () => {
      token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
    },
  });
}
