// GET /metrics: admin only (401 without a token, 403 for a member, audited), Prometheus text 0.0.4 with
// the training, pool, upload and HTTP metrics and Node's process metrics; uploads count their bytes by
// kind; request durations are labelled by route pattern, never by a raw URL; the separate listener
// (BASTION_METRICS_PORT) serves the same text without a token.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { listAuditEntries } from '../../src/governance/audit.js';
import { createMetrics, serveMetrics } from '../../src/http/metrics.js';
import { createPool, type WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { multipartForm } from '../helpers/multipart.js';

let t: TestApp;
let pool: WorkerPool;
let member: string;

before(async () => {
  pool = createPool({ size: 1, torchThreads: 1 });
  t = await buildTestApp({ pool, maxUploadBytes: 1024 * 1024 });
  member = t.principal('hospital-a').token;
});
after(async () => {
  await t.close();
  await pool.close();
});

const scrape = () => t.app.inject({ method: 'GET', url: '/metrics', headers: t.auth() });

/** The value of the sample `series` (name and labels as printed) in Prometheus text; undefined if absent. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe('who may read /metrics', () => {
  test('without a token: 401 with WWW-Authenticate', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(response.statusCode, 401);
    assert.match(String(response.headers['www-authenticate']), /^Bearer/);
    assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.doesNotMatch(response.body, /bastion_/);
  });

  test('with an unknown token: 401', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/metrics', headers: t.auth('not-a-token') });
    assert.equal(response.statusCode, 401);
  });

  test('a member: 403 naming the admin rule, and the refusal is audited', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/metrics', headers: t.auth(member) });
    assert.equal(response.statusCode, 403);
    assert.equal(response.json().rule, 'admin');
    assert.doesNotMatch(response.body, /bastion_/);
    const entries = listAuditEntries(t.store, t.admin, {}).items;
    assert.ok(entries.some((e) => e.action === 'metrics.read' && e.outcome === 'refused'));
  });

  test('an admin: 200, Prometheus text format 0.0.4', async () => {
    const response = await scrape();
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(response.body, /^# HELP /m);
    assert.match(response.body, /^# TYPE bastion_http_request_duration_seconds histogram$/m);
  });
});

describe('what /metrics shows', () => {
  test('every metric of the issue, and the process metrics', async () => {
    const text = (await scrape()).body;
    for (const name of [
      'bastion_trainings_queued',
      'bastion_trainings_running',
      'bastion_training_steps_total',
      'bastion_training_steps_per_second',
      'bastion_pool_threads',
      'bastion_pool_queue_size',
      'bastion_pool_utilization_ratio',
      'bastion_pool_tasks_completed_total',
      'bastion_upload_bytes_total',
      'bastion_http_request_duration_seconds',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    assert.equal(sample(text, 'bastion_trainings_queued'), 0);
    assert.equal(sample(text, 'bastion_trainings_running'), 0);
    assert.equal(sample(text, 'bastion_pool_threads'), 1);
  });

  test('an upload adds its file size to the upload bytes of its kind', async () => {
    const before = (await scrape()).body;
    const content = `${['age,blood_pressure,label', ...Array.from({ length: 40 }, (_, i) => `${20 + i},${110 + (i % 7)},${i % 3}`)].join('\n')}\n`;
    const form = await multipartForm({ name: 'ward-a', privacyLimit: '4', delta: '1e-5' }, [{ filename: 'ward-a.csv', content }]);
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/datasets',
      payload: form.payload,
      headers: { ...form.headers, ...t.auth(member) },
    });
    assert.equal(response.statusCode, 201, response.body);
    const afterText = (await scrape()).body;
    const grown =
      sample(afterText, 'bastion_upload_bytes_total{kind="dataset"}')! - sample(before, 'bastion_upload_bytes_total{kind="dataset"}')!;
    assert.equal(grown, Buffer.byteLength(content));
    assert.equal(sample(afterText, 'bastion_upload_bytes_total{kind="model"}'), sample(before, 'bastion_upload_bytes_total{kind="model"}'));
    assert.ok(sample(afterText, 'bastion_pool_tasks_completed_total')! >= 1, 'the conversion ran in the pool');
  });

  test('request durations are labelled by route pattern and status, never by the URL a client sent', async () => {
    const id = '0190f5b2-7c1e-7aaa-8000-000000000001';
    const missing = await t.app.inject({ method: 'GET', url: `/v1/datasets/${id}?secret=1`, headers: t.auth(member) });
    assert.equal(missing.statusCode, 404);
    await t.app.inject({ method: 'GET', url: `/no/such/route/${id}` });
    const text = (await scrape()).body;
    assert.ok(
      sample(text, 'bastion_http_request_duration_seconds_count{method="GET",route="/v1/datasets/:id",status_code="404"}')! >= 1,
      text,
    );
    assert.ok(sample(text, 'bastion_http_request_duration_seconds_count{method="GET",route="unmatched",status_code="404"}')! >= 1);
    assert.ok(sample(text, 'bastion_http_request_duration_seconds_count{method="POST",route="/v1/datasets",status_code="201"}')! >= 1);
    assert.ok(sample(text, 'bastion_http_request_duration_seconds_count{method="GET",route="/metrics",status_code="401"}')! >= 1);
    assert.equal(text.includes(id), false, 'no raw id in any label');
    assert.equal(text.includes('secret'), false);
    assert.equal(text.includes('/no/such'), false);
  });

  test('no principal name, token or id appears', async () => {
    const text = (await scrape()).body;
    assert.equal(text.includes('hospital-a'), false);
    assert.equal(text.includes('ward-a'), false);
    assert.equal(text.includes(member), false);
    assert.equal(text.includes(t.admin.id), false);
    assert.doesNotMatch(text, /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/);
  });
});

describe('the metrics registry', () => {
  test('training gauges and counters read their sources at scrape time', async () => {
    let stats = { queued: 2, running: 1, steps: 10, stepsPerSec: 3.5 };
    const metrics = createMetrics({ trainings: () => stats, pool: () => ({ threads: 4, queueSize: 3, utilization: 0.25, completed: 7 }) });
    let text = await metrics.registry.metrics();
    assert.equal(sample(text, 'bastion_trainings_queued'), 2);
    assert.equal(sample(text, 'bastion_trainings_running'), 1);
    assert.equal(sample(text, 'bastion_training_steps_total'), 10);
    assert.equal(sample(text, 'bastion_training_steps_per_second'), 3.5);
    assert.equal(sample(text, 'bastion_pool_threads'), 4);
    assert.equal(sample(text, 'bastion_pool_queue_size'), 3);
    assert.equal(sample(text, 'bastion_pool_utilization_ratio'), 0.25);
    assert.equal(sample(text, 'bastion_pool_tasks_completed_total'), 7);
    stats = { queued: 0, running: 2, steps: 25, stepsPerSec: 8 };
    text = await metrics.registry.metrics();
    assert.equal(sample(text, 'bastion_trainings_queued'), 0);
    assert.equal(sample(text, 'bastion_training_steps_total'), 25);
  });

  test('two apps in one process keep their own metrics and share the process ones', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.countUploadBytes('model', 5);
    assert.equal(sample(await a.registry.metrics(), 'bastion_upload_bytes_total{kind="model"}'), 5);
    assert.equal(sample(await b.registry.metrics(), 'bastion_upload_bytes_total{kind="model"}'), 0);
    assert.match(await b.registry.metrics(), /^# TYPE process_cpu_user_seconds_total counter$/m);
  });

  test('the separate listener serves GET /metrics without a token, and nothing else', async () => {
    const metrics = createMetrics();
    const listener = await serveMetrics(metrics, { host: '127.0.0.1', port: 0 });
    try {
      const response = await fetch(listener.url);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
      assert.match(await response.text(), /^# TYPE bastion_upload_bytes_total counter$/m);
      const other = await fetch(listener.url.replace('/metrics', '/v1/datasets'));
      assert.equal(other.status, 404);
      await other.text();
      const post = await fetch(listener.url, { method: 'POST' });
      assert.equal(post.status, 404);
      await post.text();
    } finally {
      await listener.close();
    }
  });
});
