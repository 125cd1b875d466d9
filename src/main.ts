// Process entry: read the configuration, open the store, start the worker pool and the HTTPS server,
// and shut all of it down cleanly on SIGTERM/SIGINT (stop accepting, let in-flight requests finish,
// close the pool, then the store). `npm start` runs this file; `bastion serve` calls runServer().

import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { openBlobStore, sweepBlobs } from './artifacts/blob-store.js';
import { type Config, dataLayout, loadConfig } from './config.js';
import { type Attestor, gramineAttestor } from './enclave/attestation.js';
import { KeyPurpose, openKeyProvider } from './enclave/keys.js';
import { createRaTlsCertificate } from './enclave/ra-tls.js';
import { loadTlsMaterial } from './enclave/tls.js';
import { openCertificateSigner } from './enclave/training-certificate.js';
import { openAuditLog } from './governance/audit.js';
import { bootstrapAdmin, bootstrapAdminFromVerifier } from './governance/principals.js';
import { createMetrics, type MetricsListener, serveMetrics } from './http/metrics.js';
import { createLogger } from './logger.js';
import { allArtifactIds } from './store/artifacts.js';
import { openStore, type Store } from './store/db.js';
import { countPrincipals } from './store/principals.js';
import { activeTrainingIds } from './store/trainings.js';
import { createPool, privacyMathOn, type WorkerPool } from './workers/pool.js';

export interface RunningServer {
  app: FastifyInstance;
  /** Base URL the server listens on, e.g. https://127.0.0.1:8443. */
  url: string;
  close(): Promise<void>;
}

/** What tests may put in place of the machine's own parts; production passes nothing. */
export interface ServerSeams {
  /** Quotes in place of Gramine's /dev/attestation (a fake quoting enclave); used only when the key source is the enclave. */
  attestor?: Attestor;
}

export async function startServer(
  config: Config,
  logger: Logger = createLogger(config.logLevel),
  seams: ServerSeams = {},
): Promise<RunningServer> {
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  let store: Store | undefined;
  let pool: WorkerPool | undefined;
  let metricsListener: MetricsListener | undefined;
  try {
    store = openStore(config.dataDir);
    const { keys, source } = openKeyProvider(config.dataDir, config);
    logger.info(
      { keys: keys.description, keyId: keys.keyId, ...(source.provider === 'enclave' ? { enclave: source.identity } : {}) },
      'data at rest is sealed with keys derived from this root key',
    );
    if (source.provider === 'enclave' && source.identity.debug)
      logger.warn('this is a debug enclave: the host can read its memory; never give it real data');
    const audit = openAuditLog(store, keys.deriveKey(KeyPurpose.AUDIT), {
      highWaterFile: dataLayout(config.dataDir).auditHighWater,
      onHighWaterProblem: (message) => logger.error({ problem: message }, 'audit log high-water mark'),
    });
    if (config.adminTokenVerifier !== null) {
      if (bootstrapAdminFromVerifier({ store, audit }, config.adminTokenVerifier))
        logger.info('first start: created the admin principal with the token whose verifier was configured');
    } else if (source.provider === 'enclave' && countPrincipals(store) === 0) {
      // A token written into the sealed data folder could never be read: nobody could ever sign in.
      throw new Error(
        'In an enclave the first admin needs BASTION_ADMIN_TOKEN_VERIFIER (make one with bastion token new; make -C gramine ' +
          'ADMIN_TOKEN_VERIFIER=…)',
      );
    } else {
      const adminTokenFile = bootstrapAdmin({ store, audit }, config.dataDir);
      if (adminTokenFile)
        logger.info({ file: adminTokenFile }, 'first start: created the admin principal; its token is in this file (0600)');
    }

    const blobs = openBlobStore(config.dataDir, keys);
    // Before any upload can start: what a crash left (staged uploads, blobs whose row never committed).
    // Checkpoints of unfinished trainings are live too: those jobs resume from them.
    const swept = sweepBlobs(blobs, new Set([...allArtifactIds(store), ...activeTrainingIds(store)]));
    if (swept > 0) logger.info({ files: swept }, 'removed sealed files of uploads that never completed');

    pool = createPool({ size: config.poolSize, torchThreads: config.torchThreads });
    const torch = await pool.run('version', {});
    logger.info(
      { torch: torch.torch, blas: torch.blas, cxx11Abi: torch.cxx11Abi, poolSize: config.poolSize, torchThreads: config.torchThreads },
      'libtorch addon loaded in the worker pool',
    );
    if (torch.blas === null) logger.warn('libtorch is not using OpenBLAS; DP training will be 2-4x slower (install libopenblas0-pthread)');

    const attestor = source.provider === 'enclave' ? (seams.attestor ?? gramineAttestor(config.attestationDir)) : null;
    let https: { cert: string; key: string } | undefined;
    if (config.insecureHttp) {
      logger.warn('serving plain HTTP (BASTION_INSECURE_HTTP): tokens and data cross the network in clear');
    } else if (attestor && config.tlsCertPath === null) {
      // In the enclave, with no certificate of the operator's: RA-TLS. The key is made here and stays in memory
      // (never on disk, never logged): only this process can use it, and its quotes say which enclave that is.
      const raTls = await createRaTlsCertificate(attestor, { now: new Date(), hosts: [config.host] });
      logger.info({ spkiSha256: raTls.spkiSha256 }, 'TLS certificate: RA-TLS, made in the enclave at start (its key is only in memory)');
      https = { cert: raTls.cert, key: raTls.key };
    } else {
      const tls = await loadTlsMaterial({
        dataDir: config.dataDir,
        certPath: config.tlsCertPath,
        keyPath: config.tlsKeyPath,
        hosts: [config.host],
      });
      logger.info({ certificate: tls.certPath, fingerprint256: tls.fingerprint256, generated: tls.generated }, 'TLS certificate');
      https = { cert: tls.cert, key: tls.key };
    }

    // Inside an enclave this makes the quote that binds the certificate key, once, before serving.
    const certificates = await openCertificateSigner(keys, attestor);
    logger.info(
      { enclave: certificates.enclave, publicKey: certificates.publicKey.toString('base64') },
      'training certificates are signed with this Ed25519 key',
    );
    if (certificates.enclave && !certificates.keyQuote) {
      logger.error('the enclave answered with a quote over other report data: training certificates carry no quote and will not verify');
    }

    const metrics = createMetrics();
    const app = await buildApp({
      store,
      pool,
      audit,
      artifacts: {
        blobs,
        sandbox: { timeoutMs: config.sandboxTimeoutMs, memoryBytes: config.sandboxMemoryBytes, maxInflatedBytes: config.maxInflatedBytes },
      },
      maxUploadBytes: config.maxUploadBytes,
      isAddonLoaded: () => true,
      keySource: source,
      attestor,
      certificates,
      training: {
        checkpointEverySteps: config.checkpointEverySteps,
        checkpointEveryMs: config.checkpointEveryMs,
        maxConcurrent: config.maxConcurrentTrainings,
        maxJobsPerPrincipal: config.maxJobsPerPrincipal,
      },
      logger,
      privacyMath: privacyMathOn(pool),
      metrics,
      ...(https ? { https } : {}),
    });
    if (config.metricsPort !== null) {
      metricsListener = await serveMetrics(metrics, { host: config.host, port: config.metricsPort });
      logger.warn(
        { url: metricsListener.url },
        'serving the metrics without a token on a plain-HTTP listener (BASTION_METRICS_PORT): let only the scraper reach it',
      );
    }
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    const url = `${https ? 'https' : 'http'}://${host}:${port}`;
    logger.info({ url, dataDir: config.dataDir }, 'Bastion is listening');

    const openPool = pool;
    const openStoreHandle = store;
    const openMetricsListener = metricsListener;
    let closing: Promise<void> | undefined;
    return {
      app,
      url,
      close: () =>
        (closing ??= (async () => {
          await openMetricsListener?.close();
          await app.close();
          await openPool.close();
          audit.close(); // the high-water mark of the last entries, before the store goes
          openStoreHandle.close();
        })()),
    };
  } catch (err) {
    await metricsListener?.close();
    await pool?.close().catch(() => undefined);
    store?.close();
    throw err;
  }
}

/** Starts the server and closes it gracefully on SIGTERM/SIGINT or a fatal error. */
export async function runServer(config: Config): Promise<RunningServer> {
  const logger = createLogger(config.logLevel);
  const server = await startServer(config, logger);
  closeWithGrace({ delay: config.shutdownTimeoutMs, logger }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'shutting down after a fatal error');
    else logger.info({ signal }, 'shutting down');
    await server.close();
    logger.info('stopped');
  });
  return server;
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href;
if (isEntry) {
  const { parseServeArgs } = await import('./serve-options.js');
  try {
    await runServer(loadConfig(process.env, parseServeArgs(process.argv.slice(2))));
  } catch (err) {
    console.error(`bastion: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
