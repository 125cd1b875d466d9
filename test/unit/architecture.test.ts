import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = path.join(root, 'src');

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
  names: string[];
}

/** Relative imports of every src/**\/*.ts file, resolved to src-relative paths without extension. */
function edges(): Edge[] {
  const out: Edge[] = [];
  const files = fs.readdirSync(src, { recursive: true, withFileTypes: true }).filter((d) => d.isFile() && d.name.endsWith('.ts'));
  for (const file of files) {
    const full = path.join(file.parentPath, file.name);
    const text = fs.readFileSync(full, 'utf8');
    const pattern = /^\s*(?:import|export)\s+(type\s+)?([^'";]*?)\s*from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/gm;
    for (const m of text.matchAll(pattern)) {
      const spec = m[3] ?? m[4]!;
      const target = path.relative(src, path.resolve(path.dirname(full), spec)).replace(/\.(js|ts)$/, '');
      const names = (m[2] ?? '').replace(/[{}]/g, '').split(',').map((n) => n.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0]!).filter(Boolean);
      out.push({ from: path.relative(src, full).replace(/\.ts$/, ''), to: target, typeOnly: Boolean(m[1]), names });
    }
  }
  return out;
}

const layerOf = (file: string): string => {
  const top = file.split(path.sep)[0]!;
  if (['artifacts', 'training', 'privacy', 'governance', 'enclave'].includes(top)) return 'service';
  if (top === 'http') return 'http';
  if (top === 'store') return 'store';
  if (file === 'native') return 'native';
  if (['errors', 'config', 'logger', 'vocabulary'].includes(file) || top === 'generated') return 'base';
  return 'root'; // app.ts, main.ts, cli/: composition roots
};

/** Which layers each layer may import at run time (type-only imports are free). */
const allowed: Record<string, string[]> = {
  http: ['http', 'service', 'base'],
  service: ['service', 'store', 'native', 'base'],
  store: ['store', 'base'],
  native: ['base'],
  base: ['base'],
  root: ['root', 'http', 'service', 'store', 'native', 'base'],
};

test('imports point one way: http → services → store | native', () => {
  const all = edges();
  assert.ok(all.length > 20, 'the import scan found the source files');
  const violations = all
    .filter((e) => !e.typeOnly && !allowed[layerOf(e.from)]!.includes(layerOf(e.to)))
    .map((e) => `${e.from} (${layerOf(e.from)}) imports ${e.to} (${layerOf(e.to)})`);
  assert.deepEqual(violations, []);
});

test('heavy addon functions are imported only by pool workers and the sandbox child', () => {
  const heavy = new Set(['inspectModel', 'extractTensors', 'gradientPlan', 'perSampleGradients', 'clippedGradientSum', 'Trainer']);
  // The sandbox child is a disposable process of its own (src/artifacts/sandbox.ts starts it).
  const workers = new Set([path.join('training', 'worker'), path.join('artifacts', 'sandbox-child')]);
  const offenders = edges()
    .filter((e) => e.to === 'native' && !e.typeOnly && e.names.some((n) => heavy.has(n) || n.startsWith('*')) && !workers.has(e.from))
    .map((e) => `${e.from} imports ${e.names.join(', ')}`);
  assert.deepEqual(offenders, []);
  assert.ok(edges().some((e) => e.from === path.join('training', 'worker') && e.to === 'native' && e.names.includes('inspectModel')), 'the worker is where inspectModel is called');
  assert.ok(
    edges().some((e) => e.from === path.join('artifacts', 'sandbox-child') && e.to === 'native' && e.names.includes('extractTensors')),
    'the sandbox child is where extractTensors is called',
  );
});

test('the sandbox parent manages a process and never loads the addon', () => {
  const parent = path.join('artifacts', 'sandbox');
  const imports = edges().filter((e) => e.from === parent && !e.typeOnly).map((e) => e.to);
  assert.ok(!imports.includes('native'), `${parent} imports native at run time`);
});
