import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { compileErrors, validate } from '@readme/openapi-parser';
import { parse } from 'yaml';
import { buildOpenapiDocument, CLIENT_TYPES_FILE, OPENAPI_FILE, renderClientTypes, renderOpenapiYaml } from '../../scripts/openapi.js';
import { bareApp } from '../helpers/app.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/**
 * Every route the app serves, as "METHOD /path/{param}" (HEAD and the Swagger UI's pages left out),
 * rebuilt from Fastify's route tree: each line is a path segment under its parent, 4 columns deeper.
 */
async function servedRoutes(): Promise<Set<string>> {
  const { app, close } = await bareApp();
  await app.ready();
  const tree = app.printRoutes({ commonPrefix: false });
  await close();
  const routes = new Set<string>();
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^(.*?)[├└]── (\S+) \(([A-Z, ]+)\)$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    const path = (stack[depth - 1] ?? '') + match[2]!;
    stack[depth] = path;
    if (path.startsWith('/docs')) continue;
    for (const method of match[3]!.split(', ')) {
      if (method !== 'HEAD') routes.add(`${method} ${path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`);
    }
  }
  return routes;
}

function specOperations(document: Record<string, unknown>): Set<string> {
  const operations = new Set<string>();
  const paths = document.paths as Record<string, Record<string, unknown>>;
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) if (item[method]) operations.add(`${method.toUpperCase()} ${path}`);
  }
  return operations;
}

test('openapi.yaml is exactly what the route schemas generate (run `npm run openapi` after changing routes)', async () => {
  const generated = renderOpenapiYaml(await buildOpenapiDocument());
  assert.equal(fs.readFileSync(OPENAPI_FILE, 'utf8'), generated);
});

test('every route the server serves is in openapi.yaml, and every operation there is served', async () => {
  const committed = parse(fs.readFileSync(OPENAPI_FILE, 'utf8')) as Record<string, unknown>;
  const served = await servedRoutes();
  const documented = specOperations(committed);
  assert.ok(served.size >= 7, `expected the app's routes, got ${[...served].join(', ')}`);
  assert.deepEqual([...served].sort(), [...documented].sort());
});

test('openapi.yaml is a valid OpenAPI 3.1 document', async () => {
  const committed = parse(fs.readFileSync(OPENAPI_FILE, 'utf8')) as Record<string, unknown>;
  assert.equal(committed.openapi, '3.1.0');
  const result = await validate(structuredClone(committed) as never);
  assert.ok(result.valid, result.valid ? '' : compileErrors(result));
});

test('every operation has an operationId and lists its problem responses', () => {
  const committed = parse(fs.readFileSync(OPENAPI_FILE, 'utf8')) as {
    paths: Record<
      string,
      Record<string, { operationId?: string; security?: unknown[]; responses: Record<string, { content?: Record<string, unknown> }> }>
    >;
  };
  const ids = new Set<string>();
  for (const [path, item] of Object.entries(committed.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      assert.match(op.operationId ?? '', /^[a-z]+[A-Za-z]*$/, `${method} ${path}`);
      assert.equal(ids.has(op.operationId!), false, `duplicate operationId ${op.operationId}`);
      ids.add(op.operationId!);
      const secured = !(Array.isArray(op.security) && op.security.length === 0);
      if (secured && path.startsWith('/v1/')) {
        assert.ok(op.responses['401']?.content?.['application/problem+json'], `${method} ${path} lists 401 problem`);
      }
    }
  }
});

test('the typed client in src/generated/openapi.d.ts matches openapi.yaml', async () => {
  const expected = await renderClientTypes(fs.readFileSync(OPENAPI_FILE, 'utf8'));
  assert.equal(fs.readFileSync(CLIENT_TYPES_FILE, 'utf8'), expected);
});
