#!/usr/bin/env node
// The `bastion` command (package.json "bin"): runs the compiled CLI from dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('bastion: the TypeScript build is missing (dist/); run scripts/setup.sh or npm run build');
  process.exit(1);
}
const { runCli } = await import(entry.href);
await runCli(process.argv.slice(2));
