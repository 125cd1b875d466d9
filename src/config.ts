// Every server setting, typed, read from the environment and from matching command-line flags
// (a flag wins over its variable), with defaults that run on a laptop. Invalid values fail at start
// with a message naming the variable or flag; nothing else in the process reads process.env.
import os from 'node:os';
import path from 'node:path';

export interface Config {
  /** Folder for the database, sealed blobs, TLS material and the first admin token. Absolute. */
  dataDir: string;
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Piscina worker threads that run libtorch work. */
  poolSize: number;
  /** libtorch intra-op threads per pool worker (poolSize × torchThreads should not exceed the cores). */
  torchThreads: number;
  /** User-supplied TLS certificate and key (PEM paths); both or neither. */
  tlsCertPath: string | null;
  tlsKeyPath: string | null;
  /** Serve plain HTTP. Only for development behind a trusted proxy; never the default. */
  insecureHttp: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** How long graceful shutdown waits for in-flight requests and jobs before exiting anyway. */
  shutdownTimeoutMs: number;
  /**
   * Trainings that run at once (each holds a pool worker for its whole run); default one less than the
   * pool size, so a worker stays free for dataset checks and evaluations.
   */
  maxConcurrentTrainings: number;
  /** Trainings one principal may have queued and running together; more is 429. */
  maxJobsPerPrincipal: number;
  /** Gramine's /dev/attestation (where the enclave's sealing key and reports are read). */
  attestationDir: string;
  /** The enclave identity the sealing key is bound to. */
  sealingKey: 'mrenclave' | 'mrsigner';
  /** Refuse to start without an enclave's sealing key (never the development key). */
  requireEnclave: boolean;
  /**
   * The verifier (bstv_…) of the first admin's token, made by `bastion token new` on the operator's machine;
   * null: the first start writes a fresh token to `<dataDir>/admin-token`. Inside an enclave it is required.
   */
  adminTokenVerifier: string | null;
  /** Largest accepted upload (the file part of a model or dataset upload), in bytes. */
  maxUploadBytes: number;
  /** Wall-clock limit of the disposable process that first loads an uploaded TorchScript archive. */
  sandboxTimeoutMs: number;
  /** Memory limit (RLIMIT_DATA) of that process, in bytes. */
  sandboxMemoryBytes: number;
  maxInflatedBytes: number;
  /** A running training seals a checkpoint after this many steps … */
  checkpointEverySteps: number;
  /** … or this many milliseconds, whichever comes first. */
  checkpointEveryMs: number;
  /** Port of a plain-HTTP listener (on `host`) that serves GET /metrics without a token; null: none (admins read /metrics on the main port). */
  metricsPort: number | null;
}

type Parser<T> = (raw: string, name: string) => T;

interface OptionSpec<K extends keyof Config> {
  key: K;
  env: string;
  flag: string;
  /** Placeholder for the flag's value in help; absent for boolean switches. */
  valueName?: string;
  description: string;
  parse: Parser<Config[K]>;
}

/** Where things live in the data folder: the one place that names these files. */
export function dataLayout(dataDir: string) {
  return {
    database: path.join(dataDir, 'bastion.db'),
    adminToken: path.join(dataDir, 'admin-token'),
    tlsDir: path.join(dataDir, 'tls'),
    tlsCert: path.join(dataDir, 'tls', 'server-cert.pem'),
    tlsKey: path.join(dataDir, 'tls', 'server-key.pem'),
    /** The development root key (32 random bytes, 0600); inside an enclave the sealing key replaces it. */
    devRootKey: path.join(dataDir, 'dev-root.key'),
    /** The audit log's high-water mark (last seq and MAC, authenticated): detects a truncated log. */
    auditHighWater: path.join(dataDir, 'audit-high-water.json'),
    /** Sealed blobs of committed artifacts, one folder per kind. */
    blobsDir: path.join(dataDir, 'blobs'),
    /** Blobs being written (uploads in progress); emptied at every start. */
    stagingDir: path.join(dataDir, 'blobs', 'staging'),
  };
}

/** Trainings one principal may have queued and running together, unless configured otherwise. */
export const DEFAULT_MAX_JOBS_PER_PRINCIPAL = 4;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const cores = Math.max(1, os.availableParallelism());

function integer(min: number, max: number): Parser<number> {
  return (raw, name) => {
    const value = Number(raw);
    if (!/^\s*-?\d+\s*$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new ConfigError(`Expected integer between ${min} and ${max} for ${name} but received '${raw}'`);
    }
    return value;
  };
}

const boolean: Parser<boolean> = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new ConfigError(`Expected true or false for ${name} but received '${raw}'`);
};

const text: Parser<string> = (raw, name) => {
  if (raw.trim() === '') throw new ConfigError(`Expected a non-empty value for ${name}`);
  return raw.trim();
};

const filePath: Parser<string> = (raw, name) => path.resolve(text(raw, name));

const sealingKeyPolicy: Parser<Config['sealingKey']> = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (v === 'mrenclave' || v === 'mrsigner') return v;
  throw new ConfigError(`Expected mrenclave or mrsigner for ${name} but received '${raw}'`);
};

const tokenVerifierText: Parser<string> = (raw, name) => {
  const v = raw.trim();
  if (/^bstv_[0-9a-f]{32}_[0-9a-f]{64}$/.test(v)) return v;
  throw new ConfigError(`Expected a token verifier (bstv_<32 hex>_<64 hex>, from bastion token new) for ${name}`);
};

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const logLevel: Parser<Config['logLevel']> = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if ((logLevels as readonly string[]).includes(v)) return v as Config['logLevel'];
  throw new ConfigError(`Expected one of ${logLevels.join(', ')} for ${name} but received '${raw}'`);
};

/** The option table: one row per setting, shared by the environment reader and the CLI. */
export const configOptions = [
  {
    key: 'dataDir',
    env: 'BASTION_DATA_DIR',
    flag: '--data-dir',
    valueName: 'dir',
    description: 'data folder (default ./var)',
    parse: filePath,
  },
  {
    key: 'host',
    env: 'BASTION_HOST',
    flag: '--host',
    valueName: 'address',
    description: 'address to listen on (default 127.0.0.1)',
    parse: text,
  },
  {
    key: 'port',
    env: 'BASTION_PORT',
    flag: '--port',
    valueName: 'port',
    description: 'port to listen on, 0 for any (default 8443)',
    parse: integer(0, 65535),
  },
  {
    key: 'poolSize',
    env: 'BASTION_POOL_SIZE',
    flag: '--pool-size',
    valueName: 'n',
    description: 'worker threads for libtorch work (default: cores)',
    parse: integer(1, 256),
  },
  {
    key: 'torchThreads',
    env: 'BASTION_TORCH_THREADS',
    flag: '--torch-threads',
    valueName: 'n',
    description: 'libtorch intra-op threads per worker (default: cores / pool size)',
    parse: integer(1, 1024),
  },
  {
    key: 'tlsCertPath',
    env: 'BASTION_TLS_CERT',
    flag: '--tls-cert',
    valueName: 'file',
    description: 'PEM certificate (default: a self-signed one in the data folder)',
    parse: filePath,
  },
  {
    key: 'tlsKeyPath',
    env: 'BASTION_TLS_KEY',
    flag: '--tls-key',
    valueName: 'file',
    description: 'PEM private key for --tls-cert',
    parse: filePath,
  },
  {
    key: 'insecureHttp',
    env: 'BASTION_INSECURE_HTTP',
    flag: '--insecure-http',
    description: 'serve plain HTTP instead of HTTPS (development only)',
    parse: boolean,
  },
  {
    key: 'logLevel',
    env: 'BASTION_LOG_LEVEL',
    flag: '--log-level',
    valueName: 'level',
    description: 'log level (default info)',
    parse: logLevel,
  },
  {
    key: 'shutdownTimeoutMs',
    env: 'BASTION_SHUTDOWN_TIMEOUT_MS',
    flag: '--shutdown-timeout-ms',
    valueName: 'ms',
    description: 'grace period for shutdown (default 10000)',
    parse: integer(0, 600_000),
  },
  {
    key: 'maxConcurrentTrainings',
    env: 'BASTION_MAX_CONCURRENT_TRAININGS',
    flag: '--max-concurrent-trainings',
    valueName: 'n',
    description: 'trainings running at once (default: pool size − 1, at least 1)',
    parse: integer(1, 256),
  },
  {
    key: 'attestationDir',
    env: 'BASTION_ATTESTATION_DIR',
    flag: '--attestation-dir',
    valueName: 'dir',
    description: "Gramine's attestation folder (default /dev/attestation)",
    parse: filePath,
  },
  {
    key: 'sealingKey',
    env: 'BASTION_SEALING_KEY',
    flag: '--sealing-key',
    valueName: 'mrenclave|mrsigner',
    description: 'enclave identity the sealing key is bound to (default mrenclave)',
    parse: sealingKeyPolicy,
  },
  {
    key: 'requireEnclave',
    env: 'BASTION_REQUIRE_ENCLAVE',
    flag: '--require-enclave',
    description: 'refuse to start outside an SGX enclave',
    parse: boolean,
  },
  {
    key: 'adminTokenVerifier',
    env: 'BASTION_ADMIN_TOKEN_VERIFIER',
    flag: '--admin-token-verifier',
    valueName: 'bstv_…',
    description: "the first admin's token verifier (bastion token new); required in an enclave",
    parse: tokenVerifierText,
  },
  {
    key: 'maxJobsPerPrincipal',
    env: 'BASTION_MAX_JOBS_PER_PRINCIPAL',
    flag: '--max-jobs-per-principal',
    valueName: 'n',
    description: 'trainings one principal may have queued and running (default 4)',
    parse: integer(1, 10_000),
  },
  {
    key: 'maxUploadBytes',
    env: 'BASTION_MAX_UPLOAD_BYTES',
    flag: '--max-upload-bytes',
    valueName: 'bytes',
    description: 'largest accepted upload (default 4 GiB)',
    parse: integer(1, Number.MAX_SAFE_INTEGER),
  },
  {
    key: 'sandboxTimeoutMs',
    env: 'BASTION_SANDBOX_TIMEOUT_MS',
    flag: '--sandbox-timeout-ms',
    valueName: 'ms',
    description: 'time limit of the first load of an uploaded archive (default 60000)',
    parse: integer(1000, 3_600_000),
  },
  {
    key: 'sandboxMemoryBytes',
    env: 'BASTION_SANDBOX_MEMORY_BYTES',
    flag: '--sandbox-memory-bytes',
    valueName: 'bytes',
    description: 'memory limit of that load (default 4 GiB)',
    parse: integer(256 * 1024 ** 2, Number.MAX_SAFE_INTEGER),
  },
  {
    key: 'maxInflatedBytes',
    env: 'BASTION_MAX_INFLATED_BYTES',
    flag: '--max-inflated-bytes',
    valueName: 'bytes',
    description: "largest total an uploaded archive's deflated entries may inflate to (default 256 MiB)",
    parse: integer(1024 ** 2, Number.MAX_SAFE_INTEGER),
  },
  {
    key: 'checkpointEverySteps',
    env: 'BASTION_CHECKPOINT_EVERY_STEPS',
    flag: '--checkpoint-every-steps',
    valueName: 'n',
    description: 'training checkpoint interval in steps (default 500)',
    parse: integer(1, 100_000_000),
  },
  {
    key: 'checkpointEveryMs',
    env: 'BASTION_CHECKPOINT_EVERY_MS',
    flag: '--checkpoint-every-ms',
    valueName: 'ms',
    description: 'training checkpoint interval in milliseconds (default 60000)',
    parse: integer(1000, 86_400_000),
  },
  {
    key: 'metricsPort',
    env: 'BASTION_METRICS_PORT',
    flag: '--metrics-port',
    valueName: 'port',
    description: 'also serve GET /metrics without a token, plain HTTP, on this port (default off)',
    parse: integer(0, 65535),
  },
] as const satisfies readonly OptionSpec<keyof Config>[];

export function defaultConfig(cwd = process.cwd()): Config {
  return {
    dataDir: path.resolve(cwd, 'var'),
    host: '127.0.0.1',
    port: 8443,
    poolSize: cores,
    torchThreads: 1,
    tlsCertPath: null,
    tlsKeyPath: null,
    insecureHttp: false,
    logLevel: 'info',
    shutdownTimeoutMs: 10_000,
    maxConcurrentTrainings: Math.max(1, cores - 1),
    maxJobsPerPrincipal: DEFAULT_MAX_JOBS_PER_PRINCIPAL,
    attestationDir: '/dev/attestation',
    sealingKey: 'mrenclave',
    requireEnclave: false,
    adminTokenVerifier: null,
    maxUploadBytes: 4 * 1024 ** 3,
    sandboxTimeoutMs: 60_000,
    sandboxMemoryBytes: 4 * 1024 ** 3,
    maxInflatedBytes: 256 * 1024 ** 2,
    checkpointEverySteps: 500,
    checkpointEveryMs: 60_000,
    metricsPort: null,
  };
}

/**
 * Builds the configuration from environment variables, then flag values (already split by the CLI,
 * keyed by config key, as raw strings or `true` for switches). Throws ConfigError naming the source.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, flags: Partial<Record<keyof Config, string | boolean>> = {}): Config {
  const config: Record<string, unknown> = { ...defaultConfig() };
  const given = new Set<keyof Config>();
  for (const option of configOptions) {
    const fromEnv = env[option.env];
    if (fromEnv !== undefined && fromEnv !== '') {
      config[option.key] = option.parse(fromEnv, option.env);
      given.add(option.key);
    }
    const fromFlag = flags[option.key];
    if (fromFlag !== undefined) {
      config[option.key] = option.parse(fromFlag === true ? 'true' : String(fromFlag), option.flag);
      given.add(option.key);
    }
  }
  const result = config as unknown as Config;
  if (!given.has('torchThreads')) result.torchThreads = Math.max(1, Math.floor(cores / result.poolSize));
  if (!given.has('maxConcurrentTrainings')) result.maxConcurrentTrainings = Math.max(1, result.poolSize - 1);
  if ((result.tlsCertPath === null) !== (result.tlsKeyPath === null)) {
    throw new ConfigError('BASTION_TLS_CERT and BASTION_TLS_KEY (--tls-cert, --tls-key) must be given together');
  }
  return result;
}
