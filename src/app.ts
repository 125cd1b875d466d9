// buildApp(deps): the Fastify instance with every plugin and route, not listening. main.ts listens;
// tests call app.inject() or listen on port 0. Routes are registered explicitly, one file per resource.

import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import type { ArtifactDeps } from './artifacts/service.js';
import type { Attestor } from './enclave/attestation.js';
import type { KeySource } from './enclave/keys.js';
import { type CertificateSigner, TrainingCertificateSchema } from './enclave/training-certificate.js';
import type { AuditLog } from './governance/audit.js';
import type { Principal } from './governance/principals.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import authPlugin from './http/plugins/auth.js';
import metricsPlugin from './http/plugins/metrics.js';
import multipartPlugin from './http/plugins/multipart.js';
import openapiPlugin from './http/plugins/openapi.js';
import problemPlugin, { answerClientError } from './http/plugins/problem.js';
import ssePlugin from './http/plugins/sse.js';
import attestationRoutes from './http/routes/attestation.js';
import auditRoutes from './http/routes/audit.js';
import datasetRoutes from './http/routes/datasets.js';
import evaluationRoutes from './http/routes/evaluations.js';
import healthRoutes, { type ReadinessChecks } from './http/routes/health.js';
import metricsRoutes from './http/routes/metrics.js';
import modelRoutes from './http/routes/models.js';
import principalRoutes from './http/routes/principals.js';
import trainingRoutes from './http/routes/trainings.js';
import { ProblemSchema } from './http/schemas/common.js';
import type { PrivacyMath } from './privacy/ledger.js';
import { DatasetSchema, ModelApprovalsSchema, ModelSchema } from './schemas/artifacts.js';
import { AuditEntrySchema } from './schemas/audit.js';
import { EvaluationRunSchema, EvaluationSchema } from './schemas/evaluations.js';
import { DatasetPolicyInputSchema, DatasetPolicySchema, ModelPolicyInputSchema, ModelPolicySchema } from './schemas/policies.js';
import { PrincipalSchema } from './schemas/principals.js';
import {
  DatasetPrivacySchema,
  ParameterRuleSchema,
  TrainingMetricSchema,
  TrainingPlanSchema,
  TrainingSchema,
} from './schemas/trainings.js';
import type { Store } from './store/db.js';
import { createEvaluations } from './training/evaluate.js';
import { createTrainingJobs, type TrainingJobsOptions } from './training/jobs.js';
import type { WorkerPool } from './workers/pool.js';

export interface AppDeps {
  store: Store;
  /** The libtorch worker pool; each service gets it as the narrow interface it declares. */
  pool: WorkerPool;
  /** The audit log every state change and refused access is written to. */
  audit: AuditLog;
  /** Sealed blob store and limits of the artifact services. */
  artifacts: Omit<ArtifactDeps, 'store' | 'pool' | 'audit'>;
  /** Largest accepted upload in bytes (413 above). */
  maxUploadBytes: number;
  /** The enclave's quote maker (Gramine); absent outside an enclave, where /v1/attestation answers 503. */
  attestor?: Attestor | null;
  /** Signs the certificate of each trained model (the enclave's attested key, or the development key). */
  certificates: CertificateSigner;
  /** What data at rest is sealed with, shown by /readyz (default: the development key). */
  keySource?: KeySource;
  /** True once the addon has loaded in the pool workers (checked at start). */
  isAddonLoaded: () => boolean;
  logger?: Logger | false;
  /** Checkpoint and queue settings of training jobs (defaults: every 500 steps or 60 s, pool-size jobs at once). */
  training?: TrainingJobsOptions;
  /** TLS key and certificate; absent for plain HTTP (tests, --insecure-http). */
  https?: { cert: string; key: string };
  /** Where the privacy accountants run (main.ts: the pool, so PLD never blocks the event loop); absent: inline. */
  privacyMath?: PrivacyMath;
  /** The Prometheus metrics (main.ts shares them with the metrics listener); absent: the app's own. */
  metrics?: Metrics;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const options: FastifyServerOptions & { https?: { cert: string; key: string } } = {
    genReqId: () => randomUUID(),
    ajv: { customOptions: { allErrors: true, removeAdditional: false, coerceTypes: false } },
    // Headers over Node's maxHeaderSize (16 KiB) and unparseable requests: problem+json, read to the end.
    clientErrorHandler: answerClientError,
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
  };
  if (deps.https) options.https = deps.https;
  const app = Fastify(options) as unknown as FastifyInstance;

  // JSON is the only body format of the JSON routes; anything else is a 415, not a string to validate.
  app.removeContentTypeParser('text/plain');
  app.addSchema(ProblemSchema);
  app.addSchema(PrincipalSchema);
  app.addSchema(ModelPolicyInputSchema);
  app.addSchema(ModelPolicySchema);
  app.addSchema(ModelSchema);
  app.addSchema(ModelApprovalsSchema);
  app.addSchema(TrainingCertificateSchema);
  app.addSchema(DatasetPolicyInputSchema);
  app.addSchema(DatasetPolicySchema);
  app.addSchema(DatasetSchema);
  app.addSchema(ParameterRuleSchema);
  app.addSchema(TrainingPlanSchema);
  app.addSchema(TrainingMetricSchema);
  app.addSchema(TrainingSchema);
  app.addSchema(DatasetPrivacySchema);
  app.addSchema(EvaluationSchema);
  app.addSchema(EvaluationRunSchema);
  app.addSchema(AuditEntrySchema);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  await app.register(problemPlugin);
  const metrics = deps.metrics ?? createMetrics();
  await app.register(metricsPlugin, { metrics });
  await app.register(openapiPlugin);
  await app.register(authPlugin, { store: deps.store });

  const readiness = (): ReadinessChecks => ({ addon: deps.isAddonLoaded(), store: deps.store.isOpen(), pool: deps.pool.isAlive() });
  await app.register(healthRoutes, { readiness, keySource: deps.keySource ?? { provider: 'development' } });
  await app.register(multipartPlugin, { maxFileBytes: deps.maxUploadBytes });
  await app.register(ssePlugin);
  const artifacts: ArtifactDeps = {
    ...deps.artifacts,
    store: deps.store,
    pool: deps.pool,
    audit: deps.audit,
    onUploadBytes: metrics.countUploadBytes,
    ...(deps.privacyMath ? { math: deps.privacyMath } : {}),
  };
  await app.register(modelRoutes, { artifacts });
  await app.register(datasetRoutes, { artifacts });
  // Jobs left by a previous process resume once the app is ready; on close, running jobs checkpoint
  // and stop, and event streams end, before the server stops waiting for connections.
  const jobs = createTrainingJobs(
    { ...artifacts, pool: deps.pool, certificates: deps.certificates, log: app.log },
    deps.training ?? { checkpointEverySteps: 500, checkpointEveryMs: 60_000 },
  );
  app.addHook('onReady', async () => jobs.start());
  app.addHook('preClose', async () => jobs.close());
  const evaluations = createEvaluations({ ...artifacts, pool: deps.pool });
  // Revoking a principal stops everything it has running.
  const stopAllOf = async (principalId: string, actor: Principal) => {
    evaluations.cancelAllOf(principalId, actor);
    await jobs.cancelAllOf(principalId, actor);
  };
  await app.register(principalRoutes, { governance: { store: deps.store, audit: deps.audit }, stopAllOf });
  await app.register(trainingRoutes, { jobs });
  await app.register(evaluationRoutes, { evaluations });
  await app.register(auditRoutes, { store: deps.store });
  await app.register(attestationRoutes, { attestor: deps.attestor ?? null, certificatePem: deps.https?.cert ?? null });
  metrics.setSources({ trainings: () => jobs.stats(), pool: () => deps.pool.stats?.() });
  await app.register(metricsRoutes, { metrics, governance: { store: deps.store, audit: deps.audit } });
  return app;
}
