// A Bastion app on an in-memory store with a bootstrapped admin, for app.inject() tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from '../../src/app.js';
import { type BlobStore, openBlobStore } from '../../src/artifacts/blob-store.js';
import { dataLayout } from '../../src/config.js';
import { KeyPurpose, keyProviderFromRootKey, openDevKeyProvider } from '../../src/enclave/keys.js';
import { developmentCertificateSigner } from '../../src/enclave/training-certificate.js';
import { type AuditLog, openAuditLog } from '../../src/governance/audit.js';
import type { GovernanceDeps } from '../../src/governance/authorize.js';
import { authenticate, bootstrapAdmin, type CreatedPrincipal, createPrincipal, type Principal } from '../../src/governance/principals.js';
import { calibrateTrainingNoise } from '../../src/privacy/calibration.js';
import { composedEpsilon, type PrivacyMath } from '../../src/privacy/ledger.js';
import { insertModel } from '../../src/store/artifacts.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { TrainingJobsOptions } from '../../src/training/jobs.js';
import { privacyMathOn, type WorkerPool } from '../../src/workers/pool.js';

export interface TestApp {
  app: FastifyInstance;
  store: Store;
  dataDir: string;
  blobs: BlobStore;
  audit: AuditLog;
  /** The store and audit log, as governance functions take them. */
  governance: GovernanceDeps;
  adminToken: string;
  admin: Principal;
  /** Creates a principal (as the admin) and returns it with its token. */
  principal(name: string, role?: 'member' | 'admin'): CreatedPrincipal;
  auth(token?: string): { authorization: string };
  close(): Promise<void>;
}

/** A pool that is alive but must not be called (the routes under test do no libtorch work). */
export const idlePool: WorkerPool = {
  size: 1,
  run: () => Promise.reject(new Error('this test app has no worker pool')),
  isAlive: () => true,
  close: async () => undefined,
};

/**
 * A pool that answers only pre-flights, each as passed (training/preflight.ts), for tests whose models
 * are catalogue rows without bytes: POST /v1/trainings runs one before it charges.
 */
export const preflightPassingPool: WorkerPool = {
  ...idlePool,
  run: ((kind: string, input: { labels: { shape: number[] } }) =>
    kind === 'preflight'
      ? Promise.resolve({ samples: input.labels.shape[0], gradients: null })
      : idlePool.run(kind as never, input as never)) as WorkerPool['run'],
};

/** The accountants on the calling thread (for apps whose pool does not run them). */
export const inlineMath: PrivacyMath = {
  composedEpsilon: async (events, delta) => composedEpsilon(events, delta),
  calibrateTrainingNoise: async (options) => calibrateTrainingNoise(options),
};

/** Artifact dependencies for apps whose tests upload nothing (no folder behind them). */
export const unusedArtifacts = {
  certificates: developmentCertificateSigner(keyProviderFromRootKey(Buffer.alloc(32), 'a test key of zeros')),
  artifacts: {
    blobs: {
      blobsDir: '/nonexistent/blobs',
      stagingDir: '/nonexistent/blobs/staging',
      sealingKey: { keyId: '0000000000000000', key: Buffer.alloc(32) },
    },
    sandbox: { timeoutMs: 1000, memoryBytes: 1024 ** 3 },
  },
  maxUploadBytes: 1024,
};

/**
 * An app on an in-memory store, with no admin, no worker pool and no artifact folder, for tests of
 * what every route shares (errors, logging, limits, the route table). close() closes app and store.
 */
export async function bareApp(options: { logger?: Logger } = {}): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const store = openStore(':memory:');
  const app = await buildApp({
    store,
    audit: openAuditLog(store, Buffer.alloc(32), { highWaterFile: null }),
    pool: idlePool,
    ...unusedArtifacts,
    isAddonLoaded: () => true,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  return {
    app,
    close: async () => {
      await app.close();
      store.close();
    },
  };
}

export async function buildTestApp(
  overrides: {
    pool?: WorkerPool;
    isAddonLoaded?: () => boolean;
    maxUploadBytes?: number;
    sandbox?: { timeoutMs: number; memoryBytes: number };
    training?: TrainingJobsOptions;
    privacyMath?: PrivacyMath;
  } = {},
): Promise<TestApp> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-http-'));
  const store = openStore(dataDir);
  const keys = openDevKeyProvider(dataDir);
  const audit = openAuditLog(store, keys.deriveKey(KeyPurpose.AUDIT), { highWaterFile: dataLayout(dataDir).auditHighWater });
  const governance = { store, audit };
  const file = bootstrapAdmin(governance, dataDir)!;
  const adminToken = fs.readFileSync(file, 'utf8').trim();
  const admin = authenticate(store, adminToken)!;
  const blobs = openBlobStore(dataDir, keys);
  const app = await buildApp({
    store,
    audit,
    pool: overrides.pool ?? idlePool,
    artifacts: { blobs, sandbox: overrides.sandbox ?? { timeoutMs: 60_000, memoryBytes: 8 * 1024 ** 3 } },
    maxUploadBytes: overrides.maxUploadBytes ?? 4 * 1024 ** 3,
    isAddonLoaded: overrides.isAddonLoaded ?? (() => true),
    certificates: developmentCertificateSigner(keys),
    ...(overrides.training ? { training: overrides.training } : {}),
    // With a real pool the accountants run in it, as in the server; otherwise inline.
    ...(overrides.privacyMath
      ? { privacyMath: overrides.privacyMath }
      : overrides.pool
        ? { privacyMath: privacyMathOn(overrides.pool) }
        : {}),
  });
  await app.ready();
  return {
    app,
    store,
    dataDir,
    blobs,
    audit,
    governance,
    adminToken,
    admin,
    principal: (name, role = 'member') => createPrincipal(governance, admin, { name, role }),
    auth: (token = adminToken) => ({ authorization: `Bearer ${token}` }),
    close: async () => {
      await app.close();
      audit.close();
      store.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A model's catalogue row without an upload: its check (details) as given, readable by `readers`. The
 * sealed bytes, where a test needs them, are its own to write.
 */
export function insertModelRow(
  store: Store,
  row: { id: string; ownerId: string; details: object; readers?: string[]; sizeBytes?: number },
): string {
  insertModel(store, {
    id: row.id,
    ownerId: row.ownerId,
    name: 'm',
    description: '',
    sha256: '0'.repeat(64),
    sizeBytes: row.sizeBytes ?? 1,
    details: JSON.stringify(row.details),
    policy: JSON.stringify({ readers: row.readers ?? [] }),
    createdAt: new Date().toISOString(),
  });
  return row.id;
}
