import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, configOptions, loadConfig } from '../../src/config.js';
import { parseServeArgs } from '../../src/serve-options.js';

test('defaults run on a laptop: ./var, 127.0.0.1:8443, HTTPS, a worker per core', () => {
  const config = loadConfig({});
  assert.equal(config.dataDir, path.resolve('var'));
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.port, 8443);
  assert.equal(config.insecureHttp, false);
  assert.ok(config.poolSize >= 1);
  assert.ok(config.torchThreads >= 1);
  assert.equal(config.tlsCertPath, null);
});

test('trainings leave a pool worker free for uploads and evaluations unless told otherwise', () => {
  assert.equal(loadConfig({ BASTION_POOL_SIZE: '4' }).maxConcurrentTrainings, 3);
  assert.equal(loadConfig({ BASTION_POOL_SIZE: '1' }).maxConcurrentTrainings, 1);
  assert.equal(loadConfig({ BASTION_POOL_SIZE: '4', BASTION_MAX_CONCURRENT_TRAININGS: '4' }).maxConcurrentTrainings, 4);
});

test('environment variables set every option and a flag wins over its variable', () => {
  const config = loadConfig(
    { BASTION_DATA_DIR: '/tmp/x', BASTION_PORT: '9000', BASTION_POOL_SIZE: '3', BASTION_TORCH_THREADS: '2', BASTION_INSECURE_HTTP: 'true' },
    { port: '9001' },
  );
  assert.equal(config.dataDir, '/tmp/x');
  assert.equal(config.port, 9001);
  assert.equal(config.poolSize, 3);
  assert.equal(config.torchThreads, 2);
  assert.equal(config.insecureHttp, true);
});

test('--tls-cert and --tls-key reach the configuration (their config keys are not their flag names)', () => {
  const flags = parseServeArgs(['--tls-cert', '/tmp/c.pem', '--tls-key', '/tmp/k.pem']);
  assert.deepEqual(flags, { tlsCertPath: '/tmp/c.pem', tlsKeyPath: '/tmp/k.pem' });
  const config = loadConfig({}, flags);
  assert.equal(config.tlsCertPath, '/tmp/c.pem');
  assert.equal(config.tlsKeyPath, '/tmp/k.pem');
});

test('every option has a BASTION_ variable and a matching --flag', () => {
  for (const option of configOptions) {
    assert.match(option.env, /^BASTION_[A-Z_]+$/);
    assert.equal(option.flag, `--${option.env.slice('BASTION_'.length).toLowerCase().replaceAll('_', '-')}`);
  }
});

test('refuses a port that is not an integer in range, naming the variable', () => {
  assert.throws(
    () => loadConfig({ BASTION_PORT: 'http' }),
    (err: unknown) => err instanceof ConfigError && /BASTION_PORT/.test(err.message) && /'http'/.test(err.message),
  );
  assert.throws(() => loadConfig({ BASTION_PORT: '70000' }), ConfigError);
  assert.throws(() => loadConfig({}, { poolSize: '0' }), /--pool-size/);
});

test('the tokenless metrics listener is off unless a port is given', () => {
  assert.equal(loadConfig({}).metricsPort, null);
  assert.equal(loadConfig({ BASTION_METRICS_PORT: '9464' }).metricsPort, 9464);
  assert.equal(loadConfig({}, { metricsPort: '0' }).metricsPort, 0);
  assert.throws(() => loadConfig({ BASTION_METRICS_PORT: 'on' }), /BASTION_METRICS_PORT/);
});

test('refuses a TLS certificate without its key', () => {
  assert.throws(() => loadConfig({ BASTION_TLS_CERT: '/tmp/cert.pem' }), /must be given together/);
});

test('parses server flags from argv as npm start receives them', () => {
  const flags = parseServeArgs(['--port', '0', '--insecure-http', '--data-dir', '/tmp/d']);
  assert.deepEqual(flags, { port: '0', insecureHttp: true, dataDir: '/tmp/d' });
  const config = loadConfig({}, flags);
  assert.equal(config.port, 0);
  assert.equal(config.insecureHttp, true);
});

test('--tls-cert and --tls-key reach the configuration (their config keys are not their flag names)', () => {
  const flags = parseServeArgs(['--tls-cert', '/tmp/c.pem', '--tls-key', '/tmp/k.pem']);
  assert.deepEqual(flags, { tlsCertPath: '/tmp/c.pem', tlsKeyPath: '/tmp/k.pem' });
  const config = loadConfig({}, flags);
  assert.equal(config.tlsCertPath, '/tmp/c.pem');
  assert.equal(config.tlsKeyPath, '/tmp/k.pem');
});
