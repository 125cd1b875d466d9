// Runs the compiled server (what `npm start` runs) in a child process on a free port and waits for its
// "listening" log line — no sleeps. Collects its log lines for assertions.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  logs: Record<string, unknown>[];
  rawLog: string[];
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
}

export async function startServerProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'main.js'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const rawLog: string[] = [];
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const listening = new Promise<string>((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      rawLog.push(line);
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'Bastion is listening') resolve(entry.url as string);
      } catch {
        // not a log line
      }
    });
    const stderr: string[] = [];
    child.stderr!.on('data', (chunk) => stderr.push(String(chunk)));
    void exited.then(([code]) => reject(new Error(`server exited with ${code} before listening: ${stderr.join('')}${rawLog.join('\n')}`)));
  });
  const url = await listening;
  return {
    child,
    url,
    logs,
    rawLog,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}
