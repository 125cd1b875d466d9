// The server's Prometheus metrics (prom-client): the training queue, the worker pool, upload volume,
// HTTP request durations and Node's process metrics. Served at GET /metrics to admins
// (routes/metrics.ts) and, when BASTION_METRICS_PORT is set, without a token on a listener of its own
// (serveMetrics below).
//
// What a metric may carry: only what the operator already sees on the host — counts, sizes and timing —
// and labels from closed sets (method, route pattern, status code, upload kind). Never an id, a name, a
// token, a raw URL, or a figure computed from data: no losses, no per-dataset drops or budgets, no
// per-training figures (a label per training or dataset would tie each series to one party's data).
// The step rate is timing: the sum over running trainings of what their progress already reports.
import http from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { TrainingStats } from '../training/jobs.js';

export type UploadKind = 'model' | 'dataset';

export interface RequestLabels {
  method: string;
  /** The route's pattern (`/v1/models/:id`), never the URL a client sent; `unmatched` for a 404 of no route. */
  route: string;
  statusCode: number;
}

/**
 * The worker pool's figures the pool gauges show, as src/workers/pool.ts's stats() gives them (PoolStats
 * documents each); app.ts wires it in. `completed` is a counter, the rest are gauges.
 */
export type PoolGauges = Readonly<Record<'threads' | 'queueSize' | 'utilization' | 'completed', number>>;

/** Where the gauges read their figures at scrape time; absent: zeros. */
export interface MetricSources {
  trainings?: () => TrainingStats;
  pool?: () => PoolGauges | undefined;
}

export interface Metrics {
  /** This app's metrics and the process's, rendered by `registry.metrics()` with `registry.contentType`. */
  readonly registry: Registry;
  /** Counts `bytes` more of an upload's file (each chunk as it arrives, whether the upload is accepted or not). */
  countUploadBytes(kind: UploadKind, bytes: number): void;
  /** Records one answered HTTP request that took `seconds`. */
  observeRequest(labels: RequestLabels, seconds: number): void;
  /** Sets where the training and pool gauges read their figures (the app's jobs and pool). */
  setSources(sources: MetricSources): void;
}

// Node's process metrics (CPU, memory, event loop lag, GC, handles) describe the process, not one app:
// collected once, into a registry every app's registry includes. Collecting them once per app would
// add a GC observer and an event-loop monitor per app, for ever (tests build many apps).
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Request durations from 5 ms to 5 minutes (uploads of gigabytes and event streams are long). */
const DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

const noTrainings: TrainingStats = { queued: 0, running: 0, steps: 0, stepsPerSec: 0 };

export function createMetrics(initial: MetricSources = {}): Metrics {
  const sources: MetricSources = { ...initial };
  const trainings = () => sources.trainings?.() ?? noTrainings;
  const pool = () => sources.pool?.();
  const own = new Registry();
  const registers = [own];

  new Gauge({
    name: 'bastion_trainings_queued',
    help: 'Trainings waiting in the queue',
    registers,
    collect() {
      this.set(trainings().queued);
    },
  });
  new Gauge({
    name: 'bastion_trainings_running',
    help: 'Trainings running in the worker pool',
    registers,
    collect() {
      this.set(trainings().running);
    },
  });
  let stepsSeen = 0;
  new Counter({
    name: 'bastion_training_steps_total',
    help: 'Training steps run by this process, all trainings together (a resumed training counts again from its checkpoint)',
    registers,
    collect() {
      const steps = trainings().steps;
      if (steps > stepsSeen) this.inc(steps - stepsSeen);
      stepsSeen = Math.max(stepsSeen, steps);
    },
  });
  new Gauge({
    name: 'bastion_training_steps_per_second',
    help: "Sum of the running trainings' latest step rates (their progress reports), in steps per second",
    registers,
    collect() {
      this.set(trainings().stepsPerSec);
    },
  });

  new Gauge({
    name: 'bastion_pool_threads',
    help: 'Live worker threads of the libtorch pool',
    registers,
    collect() {
      this.set(pool()?.threads ?? 0);
    },
  });
  new Gauge({
    name: 'bastion_pool_queue_size',
    help: 'Pool tasks waiting for a free worker',
    registers,
    collect() {
      this.set(pool()?.queueSize ?? 0);
    },
  });
  new Gauge({
    name: 'bastion_pool_utilization_ratio',
    help: "The pool's utilisation since it started: time running tasks over the time its workers were available, 0 to 1",
    registers,
    collect() {
      this.set(pool()?.utilization ?? 0);
    },
  });
  let completedSeen = 0;
  new Counter({
    name: 'bastion_pool_tasks_completed_total',
    help: 'Pool tasks completed (training, checks, conversions, accounting)',
    registers,
    collect() {
      const completed = pool()?.completed ?? 0;
      if (completed > completedSeen) this.inc(completed - completedSeen);
      completedSeen = Math.max(completedSeen, completed);
    },
  });

  const uploadBytes = new Counter({
    name: 'bastion_upload_bytes_total',
    help: 'Bytes of uploaded files received, by kind (model or dataset), whether the upload was accepted or not',
    labelNames: ['kind'] as const,
    registers,
  });
  // Both series exist from the start, so rate() sees the first upload.
  uploadBytes.inc({ kind: 'model' }, 0);
  uploadBytes.inc({ kind: 'dataset' }, 0);

  const requestDuration = new Histogram({
    name: 'bastion_http_request_duration_seconds',
    help: 'HTTP request durations, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers,
  });

  return {
    registry: Registry.merge([processMetrics(), own]),
    countUploadBytes: (kind, bytes) => uploadBytes.inc({ kind }, bytes),
    observeRequest: ({ method, route, statusCode }, seconds) =>
      requestDuration.observe({ method, route, status_code: statusCode }, seconds),
    setSources(next) {
      Object.assign(sources, next);
    },
  };
}

export interface MetricsListener {
  /** e.g. http://127.0.0.1:9464/metrics */
  url: string;
  close(): Promise<void>;
}

/**
 * A plain-HTTP listener that answers GET /metrics, without a token, and 404 to anything else
 * (BASTION_METRICS_PORT). Whoever reaches the port reads the metrics: bind it where only the scraper can.
 */
export async function serveMetrics(metrics: Metrics, options: { host: string; port: number }): Promise<MetricsListener> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: this listener serves GET /metrics only\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(request.method === 'HEAD' ? undefined : text),
      () => response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('The metrics could not be collected\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
