// A route's answer is checked against its response schema when the code compiles: each schema is
// declared once (src/schemas) and a route names it through ref(), which keeps the document's $ref and
// gives the type provider the schema's type. A bare Type.Ref is `unknown` to the type provider, so a
// handler could answer any shape; the @ts-expect-error lines below are what `tsc -p tsconfig.check.json`
// (npm test) holds to that: if the check stopped biting, each would be an unused directive, a compile error.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import type { Static } from 'typebox';
import { authedProblems, ProblemSchema, problemResponses } from '../../src/http/schemas/common.js';
import { ref } from '../../src/schemas/common.js';
import { TrainingMetricSchema, TrainingSchema } from '../../src/schemas/trainings.js';
import { repoRoot } from '../helpers/testdata.js';

type Metric = Static<typeof TrainingMetricSchema>;
const metric: Metric = { epoch: 1, step: 10, steps: 10, meanLoss: 0.5, noiseStd: 0 };

/** An app with the metric route the test calls and, never called, the routes whose handlers must not compile. */
function metricApp() {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>();
  app.addSchema(ProblemSchema);
  app.addSchema(TrainingMetricSchema);
  const schema = { response: { 200: ref(TrainingMetricSchema), ...problemResponses(...authedProblems, 404) } };
  app.get('/metric', { schema }, async () => metric);
  // @ts-expect-error a field of the wrong type
  app.get('/wrong-type', { schema }, async () => ({ ...metric, epoch: 'one' }));
  // @ts-expect-error a required field missing
  app.get('/missing-field', { schema }, async () => ({ epoch: 1, step: 10, steps: 10, meanLoss: 0.5 }));
  app.get('/sent', { schema }, async (_request, reply) => {
    // @ts-expect-error reply.send() is checked too
    return reply.code(200).send({ ...metric, noiseStd: null });
  });
  return app;
}

// @ts-expect-error a reference nested in a schema is typed too: Training.metrics holds TrainingMetric
const _nested: Static<typeof TrainingSchema>['metrics'][number] = { ...metric, epoch: 'one' };

test('ref() names the registered schema by its $id, so the document keeps one component, and refuses a schema without one', () => {
  assert.deepEqual(JSON.parse(JSON.stringify(ref(TrainingMetricSchema))), { $ref: 'TrainingMetric' });
  assert.deepEqual(JSON.parse(JSON.stringify(ref(TrainingMetricSchema, { description: 'd' }))), {
    $ref: 'TrainingMetric',
    description: 'd',
  });
  assert.throws(() => ref(TrainingSchema.properties.request), /\$id/);
});

test('a route declared with ref() answers through the registered schema', async () => {
  const app = metricApp();
  const response = await app.inject({ method: 'GET', url: '/metric' });
  assert.equal(response.statusCode, 200);
  assert.deepEqual(response.json(), metric);
  await app.close();
});

test('no route or schema uses a bare Type.Ref: only ref() in src/schemas/common.ts does, so every reference is typed', () => {
  const src = path.join(repoRoot, 'src');
  const files = fs
    .readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts') && !d.parentPath.includes('generated'))
    .map((d) => path.relative(repoRoot, path.join(d.parentPath, d.name)));
  const users = files.filter((file) => /\bType\.Ref\(/.test(fs.readFileSync(path.join(repoRoot, file), 'utf8')));
  assert.deepEqual(users, [path.join('src', 'schemas', 'common.ts')]);
});
