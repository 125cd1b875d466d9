// A Bastion app on an in-memory store with a bootstrapped admin, for app.inject() tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { bootstrapAdmin } from '../../src/governance/principals.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { WorkerPool } from '../../src/training/pool.js';

export interface TestApp {
  app: FastifyInstance;
  store: Store;
  dataDir: string;
  adminToken: string;
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

export async function buildTestApp(overrides: { pool?: WorkerPool; isAddonLoaded?: () => boolean } = {}): Promise<TestApp> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-http-'));
  const store = openStore(dataDir);
  const file = bootstrapAdmin(store, dataDir)!;
  const adminToken = fs.readFileSync(file, 'utf8').trim();
  const app = await buildApp({ store, pool: overrides.pool ?? idlePool, isAddonLoaded: overrides.isAddonLoaded ?? (() => true) });
  await app.ready();
  return {
    app,
    store,
    dataDir,
    adminToken,
    auth: (token = adminToken) => ({ authorization: `Bearer ${token}` }),
    close: async () => {
      await app.close();
      store.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
