// The shape of src/ as its imports show it, checked on every test run: dependencies point one way
// (roots → http → services → store | native, roots → workers → services, and http and services → schemas:
// the API's wire shapes, from which the services' types are derived), only the composition roots
// know the worker pool, no top-level folder imports itself back through others, heavy addon functions
// stay in pool workers and the sandbox child, and an uploaded archive meets libtorch only in that child.
// Type-only imports count everywhere except where the question is what loads at run time: a type is a
// dependency too, and ignoring them once hid a cycle (artifacts/ took WorkerPool from training/).
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

/** The relative imports and re-exports of one file (`file` src-relative, `text` its source), resolved to src-relative paths without extension. */
function importsOf(file: string, text: string): Edge[] {
  const from = file.replace(/\.ts$/, '');
  const pattern = /^\s*(?:import|export)\s+(type\s+)?(?:([^'";]*?)\s*from\s+)?['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/gm;
  return [...text.matchAll(pattern)].map((m) => {
    const spec = m[3] ?? m[4]!;
    const to = path.relative(src, path.resolve(src, path.dirname(file), spec)).replace(/\.(js|ts)$/, '');
    const names = (m[2] ?? '')
      .replace(/[{}]/g, '')
      .split(',')
      .map(
        (n) =>
          n
            .trim()
            .replace(/^type\s+/, '')
            .split(/\s+as\s+/)[0]!,
      )
      .filter(Boolean);
    return { from, to, typeOnly: Boolean(m[1]), names };
  });
}

/** The imports of every src/**\/*.ts file. */
function edges(): Edge[] {
  const files = fs.readdirSync(src, { recursive: true, withFileTypes: true }).filter((d) => d.isFile() && d.name.endsWith('.ts'));
  return files.flatMap((d) => {
    const full = path.join(d.parentPath, d.name);
    return importsOf(path.relative(src, full), fs.readFileSync(full, 'utf8'));
  });
}

const layerOf = (file: string): string => {
  const top = file.split(path.sep)[0]!;
  if (['artifacts', 'training', 'privacy', 'governance', 'enclave'].includes(top)) return 'service';
  if (top === 'http') return 'http';
  if (top === 'schemas') return 'schemas';
  if (top === 'store') return 'store';
  if (top === 'workers') return 'workers';
  if (file === 'native') return 'native';
  if (['errors', 'config', 'logger', 'vocabulary'].includes(file) || top === 'generated') return 'base';
  return 'root'; // app.ts, main.ts, serve-options.ts, cli/, client/: composition roots and entry points
};

/**
 * Which layers each layer may import, types included. The worker pool sits between the roots and the
 * services: its worker runs the services' worker-side code (training/runner.ts, artifacts/convert.ts,
 * the accountants), so it imports them, and no service imports it back (each declares the narrow
 * interface it needs, which the roots fill with the pool). The wire shapes (src/schemas) sit below http and
 * the services and above base, so a route's schema and a service's type can be one declaration.
 */
const allowed: Record<string, string[]> = {
  http: ['http', 'service', 'schemas', 'base'],
  service: ['service', 'schemas', 'store', 'native', 'base'],
  workers: ['workers', 'service', 'schemas', 'native', 'base'],
  schemas: ['schemas', 'base'],
  store: ['store', 'base'],
  native: ['base'],
  base: ['base'],
  root: ['root', 'http', 'service', 'workers', 'schemas', 'store', 'native', 'base'],
};

/** The node of the folder graph a src file belongs to: its top-level folder, or itself for a top-level file (native, config, app…). */
const unitOf = (file: string): string => file.split(path.sep)[0]!;

/**
 * The cycles of a directed graph given as edges: its strongly connected components (Tarjan 1972) of
 * more than one node, or of one node with an edge to itself; each sorted, and sorted by first node.
 */
function findCycles(graph: readonly (readonly [string, string])[]): string[][] {
  const next = new Map<string, string[]>();
  for (const [a, b] of graph) {
    next.set(a, [...(next.get(a) ?? []), b]);
    if (!next.has(b)) next.set(b, []);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const to of next.get(node)!) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(node, Math.min(low.get(node)!, index.get(to)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || next.get(node)!.includes(node)) cycles.push(component.sort());
  };
  for (const node of [...next.keys()].sort()) if (!index.has(node)) visit(node);
  return cycles.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/**
 * Each cycle among top-level folders and files, with the imports behind each of its folder edges (up to
 * three named, type-only ones marked): every edge inside a cycle's component lies on a cycle.
 */
function folderCycles(all: readonly Edge[]): string[] {
  const between = all.filter((e) => unitOf(e.from) !== unitOf(e.to));
  return findCycles(between.map((e) => [unitOf(e.from), unitOf(e.to)] as const)).map((cycle) => {
    const byPair = new Map<string, string[]>();
    for (const e of between.filter((e) => cycle.includes(unitOf(e.from)) && cycle.includes(unitOf(e.to)))) {
      const pair = `${unitOf(e.from)} → ${unitOf(e.to)}`;
      byPair.set(pair, [...(byPair.get(pair) ?? []), `${e.from} → ${e.to}${e.typeOnly ? ' (type only)' : ''}`]);
    }
    const pairs = [...byPair].sort(([a], [b]) => a.localeCompare(b));
    const named = (imports: string[]) => imports.slice(0, 3).join(', ') + (imports.length > 3 ? ` and ${imports.length - 3} more` : '');
    return `${cycle.join(' ⇄ ')}: ${pairs.map(([pair, imports]) => `${pair} by ${named(imports)}`).join('; ')}`;
  });
}

test('imports point one way, type-only imports included: roots → http → services → store | native, roots → workers → services', () => {
  const all = edges();
  assert.ok(all.length > 20, 'the import scan found the source files');
  assert.ok(
    all.some((e) => e.typeOnly),
    'the scan sees type-only imports',
  );
  const violations = all
    .filter((e) => !allowed[layerOf(e.from)]!.includes(layerOf(e.to)))
    .map((e) => `${e.from} (${layerOf(e.from)}) imports ${e.to} (${layerOf(e.to)})${e.typeOnly ? ' (type only)' : ''}`);
  assert.deepEqual(violations, []);
});

test('only the composition roots (app.ts, main.ts) import src/workers, types included: services state the narrow interface they need', () => {
  const importers = new Set(
    edges()
      .filter((e) => unitOf(e.to) === 'workers' && unitOf(e.from) !== 'workers')
      .map((e) => e.from),
  );
  assert.deepEqual([...importers].sort(), ['app', 'main']);
});

test('no top-level folder or file of src/ imports itself back through others, type-only imports included', () => {
  assert.deepEqual(folderCycles(edges()), []);
});

test('the cycle finder reports a cycle of three, one of two and a self-import, and nothing in a graph whose edges all point one way', () => {
  const graph = [
    ['a', 'b'],
    ['b', 'c'],
    ['c', 'a'],
    ['c', 'd'],
    ['d', 'e'],
    ['e', 'f'],
    ['f', 'e'],
    ['g', 'g'],
    ['a', 'g'],
  ] as const;
  assert.deepEqual(findCycles(graph), [['a', 'b', 'c'], ['e', 'f'], ['g']]);
  assert.deepEqual(
    findCycles([
      ['a', 'b'],
      ['b', 'c'],
      ['a', 'c'],
      ['c', 'd'],
    ]),
    [],
  );
  assert.deepEqual(findCycles([]), []);
});

test('a type-only import closes a folder cycle: the WorkerPool that artifacts/service.ts once took from training/ is reported with its file', () => {
  const synthetic = [
    ...importsOf(path.join('artifacts', 'service.ts'), "import type { WorkerPool } from '../training/pool.js';\n"),
    ...importsOf(
      path.join('training', 'jobs.ts'),
      "import { datasetLayout } from '../artifacts/datasets.js';\nimport { BastionError } from '../errors.js';\n",
    ),
    ...importsOf(path.join('training', 'pool.ts'), "import type { TaskMap } from './tasks.js';\n"),
  ];
  assert.deepEqual(folderCycles(synthetic), [
    `artifacts ⇄ training: artifacts → training by ${path.join('artifacts', 'service')} → ${path.join('training', 'pool')} (type only); ` +
      `training → artifacts by ${path.join('training', 'jobs')} → ${path.join('artifacts', 'datasets')}`,
  ]);
});

test('the import scan reads side-effect imports, re-exports and dynamic imports as edges too', () => {
  const text =
    "import './side.js';\nexport * from '../errors.js';\nexport { a, type B } from './c.js';\nconst m = await import('../main.js');\n";
  assert.deepEqual(
    importsOf(path.join('cli', 'x.ts'), text).map((e) => [e.to, e.typeOnly]),
    [
      [path.join('cli', 'side'), false],
      ['errors', false],
      [path.join('cli', 'c'), false],
      ['main', false],
    ],
  );
});

test('heavy addon functions are imported only by pool workers and the sandbox child', () => {
  const heavy = new Set(['inspectModel', 'extractTensors', 'gradientPlan', 'perSampleGradients', 'clippedGradientSum', 'Trainer']);
  // The sandbox child is a disposable process of its own (src/artifacts/sandbox.ts starts it).
  const workers = new Set([path.join('workers', 'worker'), path.join('artifacts', 'sandbox-child')]);
  const offenders = edges()
    .filter((e) => e.to === 'native' && !e.typeOnly && e.names.some((n) => heavy.has(n) || n.startsWith('*')) && !workers.has(e.from))
    .map((e) => `${e.from} imports ${e.names.join(', ')}`);
  assert.deepEqual(offenders, []);
  assert.ok(
    edges().some((e) => e.from === path.join('workers', 'worker') && e.to === 'native' && e.names.includes('Trainer')),
    'the pool worker is where Trainer is called',
  );
  assert.ok(
    edges().some((e) => e.from === path.join('artifacts', 'sandbox-child') && e.to === 'native' && e.names.includes('extractTensors')),
    'the sandbox child is where extractTensors is called',
  );
});

test('an uploaded archive reaches libtorch only in the sandbox child: inspectModel and extractTensors are imported nowhere else', () => {
  const loaders = new Set(['inspectModel', 'extractTensors']);
  const importers = edges()
    .filter((e) => e.to === 'native' && !e.typeOnly && e.names.some((n) => loaders.has(n) || n.startsWith('*')))
    .map((e) => e.from);
  assert.deepEqual([...new Set(importers)], [path.join('artifacts', 'sandbox-child')]);
});

test('the sandbox parent manages a process and never loads the addon', () => {
  const parent = path.join('artifacts', 'sandbox');
  const imports = edges()
    .filter((e) => e.from === parent && !e.typeOnly)
    .map((e) => e.to);
  assert.ok(!imports.includes('native'), `${parent} imports native at run time`);
});
