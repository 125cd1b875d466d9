// Where a client finds its server, its token and the certificate to trust: one table of settings (a
// row per setting with its flag, its variable, its description and its parser, as in config.ts), and
// one resolver that also remembers where each value came from. It protects one invariant: every
// message about a connection names the sources it tried and never the token itself.
import fs from 'node:fs';
import path from 'node:path';
import { dataLayout } from '../config.js';

/** Raw values as a command line gives them (flag values), keyed like the table. */
export interface ConnectionFlags {
  url?: string;
  token?: string;
  ca?: string;
  dataDir?: string;
  insecure?: boolean;
}

export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
}

type Parser<T> = (raw: string, name: string) => T;

interface ConnectionOptionSpec<K extends keyof ConnectionFlags> {
  key: K;
  /** The variable read when the flag is absent; null where a variable would be a trap (see --insecure). */
  env: string | null;
  flag: string;
  /** Placeholder for the flag's value in help; absent for switches. */
  valueName?: string;
  description: string;
  parse: Parser<NonNullable<ConnectionFlags[K]>>;
}

const text: Parser<string> = (raw, name) => {
  if (raw.trim() === '') throw new ConnectionError(`Expected a non-empty value for ${name}`);
  return raw.trim();
};

const url: Parser<string> = (raw, name) => {
  let parsed: URL;
  try {
    parsed = new URL(text(raw, name));
  } catch {
    throw new ConnectionError(`Expected a URL such as https://127.0.0.1:8443 for ${name} but received '${raw}'`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new ConnectionError(`Expected an https:// (or http://) URL for ${name} but received '${raw}'`);
  }
  return parsed.href.replace(/\/+$/, '');
};

const filePath: Parser<string> = (raw, name) => path.resolve(text(raw, name));

const on: Parser<boolean> = () => true;

/** The connection table: the CLI adds a flag per row (src/cli/common.ts), the resolver reads them. */
export const connectionOptions = [
  {
    key: 'url',
    env: 'BASTION_URL',
    flag: '--url',
    valueName: 'url',
    description: 'server URL (default https://127.0.0.1:8443, or BASTION_HOST and BASTION_PORT)',
    parse: url,
  },
  {
    key: 'token',
    env: 'BASTION_TOKEN',
    flag: '--token',
    valueName: 'token',
    description: 'bearer token (default: <data dir>/admin-token)',
    parse: text,
  },
  {
    key: 'ca',
    env: 'BASTION_CA',
    flag: '--ca',
    valueName: 'file',
    description: "PEM certificate to trust (default: <data dir>/tls/server-cert.pem if present, else the system's roots)",
    parse: filePath,
  },
  {
    key: 'dataDir',
    env: 'BASTION_DATA_DIR',
    flag: '--data-dir',
    valueName: 'dir',
    description: "the server's local data folder, for its admin token and certificate (default ./var)",
    parse: filePath,
  },
  // No variable on purpose: turning verification off must be visible on the command line that does it,
  // not inherited silently from a shell profile.
  { key: 'insecure', env: null, flag: '--insecure', description: 'do not verify the server certificate (development only)', parse: on },
] as const satisfies readonly ConnectionOptionSpec<keyof ConnectionFlags>[];

/** A resolved connection: the values, and for messages where each came from (e.g. "BASTION_TOKEN"). */
export interface Connection {
  url: string;
  urlSource: string;
  /** The token; never print it. */
  token: string | null;
  /** Where the token came from ("--token", "BASTION_TOKEN", "./var/admin-token"); null without a token. */
  tokenSource: string | null;
  /** What was looked at for a token, in order, for the message when there is none. */
  tokenSearched: string[];
  /** PEM file to trust; null: the system's roots. */
  caPath: string | null;
  /** "--ca", "BASTION_CA", or how the data folder was chosen ("--data-dir default ./var"). */
  caSource: string;
  dataDir: string;
  /** "--data-dir", "BASTION_DATA_DIR" or "--data-dir default ./var". */
  dataDirSource: string;
  insecure: boolean;
}

/** `file` as the user would write it: relative to the working folder when inside it, else absolute. */
export function displayPath(file: string, cwd = process.cwd()): string {
  const relative = path.relative(cwd, file);
  if (relative === '') return '.';
  if (relative.startsWith('..') || path.isAbsolute(relative)) return file;
  return `.${path.sep}${relative}`;
}

/** The server's default URL from its own settings (BASTION_HOST, BASTION_PORT, BASTION_INSECURE_HTTP). */
function defaultUrl(env: NodeJS.ProcessEnv): { url: string; source: string } {
  const host = env.BASTION_HOST || '127.0.0.1';
  const port = env.BASTION_PORT || '8443';
  const insecureHttp = ['1', 'true', 'yes', 'on'].includes((env.BASTION_INSECURE_HTTP ?? '').trim().toLowerCase());
  const from = ['BASTION_HOST', 'BASTION_PORT', 'BASTION_INSECURE_HTTP'].filter((name) => env[name]);
  return {
    url: `${insecureHttp ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    source: from.length ? `the server's ${from.join(', ')}` : 'default',
  };
}

/**
 * Resolves the connection: a flag wins over its variable; the data folder (default ./var) supplies the
 * admin token and the development certificate when neither is given. Throws ConnectionError naming
 * the flag or variable of a malformed value; a missing token is not an error here (see requireToken).
 */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Connection {
  const given: Partial<Record<keyof ConnectionFlags, { value: string | boolean; source: string }>> = {};
  for (const option of connectionOptions) {
    const fromFlag = flags[option.key];
    if (fromFlag !== undefined && fromFlag !== false) {
      given[option.key] = { value: option.parse(fromFlag === true ? 'true' : fromFlag, option.flag), source: option.flag };
      continue;
    }
    const fromEnv = option.env === null ? undefined : env[option.env];
    if (option.env !== null && fromEnv !== undefined && fromEnv !== '') {
      given[option.key] = { value: option.parse(fromEnv, option.env), source: option.env };
    }
  }
  const dataDir = (given.dataDir?.value as string | undefined) ?? path.resolve(cwd, 'var');
  const dataDirSource = given.dataDir?.source ?? `--data-dir default ${displayPath(path.resolve(cwd, 'var'), cwd)}`;
  const layout = dataLayout(dataDir);

  const urlFrom = given.url ? { url: given.url.value as string, source: given.url.source } : defaultUrl(env);

  const tokenFile = displayPath(layout.adminToken, cwd);
  const tokenSearched = ['--token', 'BASTION_TOKEN', tokenFile];
  let token = (given.token?.value as string | undefined) ?? null;
  let tokenSource = given.token?.source ?? null;
  if (token === null) {
    const fromFile = readIfPresent(layout.adminToken);
    if (fromFile) {
      token = fromFile;
      tokenSource = tokenFile;
    }
  }

  let caPath = (given.ca?.value as string | undefined) ?? null;
  let caSource = given.ca?.source ?? 'none';
  if (caPath === null && fs.existsSync(layout.tlsCert)) {
    caPath = layout.tlsCert;
    caSource = dataDirSource;
  }
  return {
    url: urlFrom.url,
    urlSource: urlFrom.source,
    token,
    tokenSource,
    tokenSearched,
    caPath,
    caSource,
    dataDir,
    dataDirSource,
    insecure: given.insecure?.value === true,
  };
}

function readIfPresent(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/** The token, or a ConnectionError saying where it looked and what to do. */
export function requireToken(connection: Connection): string {
  if (connection.token !== null) return connection.token;
  return fail(
    `no token: looked for ${connection.tokenSearched.join(', ')}; pass --token <token>, set BASTION_TOKEN, ` +
      `or --data-dir <dir> of a server whose admin token you may use`,
  );
}

/** The PEM text of the CA file, or a ConnectionError naming the file and where it was chosen. */
export function readCa(connection: Connection): string | null {
  if (connection.caPath === null) return null;
  try {
    return fs.readFileSync(connection.caPath, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    const file = displayPath(connection.caPath);
    return fail(`could not read CA file ${file} (from ${connection.caSource}): ${reason}; pass --ca <file> or --data-dir <dir>`);
  }
}

function fail(message: string): never {
  throw new ConnectionError(message);
}

/** Codes Node and undici give a failed certificate check. */
const certificateCodes = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

/** The innermost error with a `code` (undici wraps socket errors as fetch's `cause`). */
function rootCause(err: unknown): { code?: string; message: string } {
  let current: unknown = err;
  let best: { code?: string; message: string } = { message: err instanceof Error ? err.message : String(err) };
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (code) best = { code, message: current.message };
    else if (depth > 0) best = { ...best, message: current.message };
    current = current.cause;
  }
  return best;
}

/**
 * Explains a failed request (fetch threw: no HTTP answer at all) in terms of what was tried and what
 * to do. `err` is what fetch threw; the result is a ConnectionError with the original as its cause.
 */
export function explainConnectionFailure(err: unknown, connection: Connection): ConnectionError {
  const cause = rootCause(err);
  const code = cause.code ?? '';
  const where = `${connection.url}${connection.urlSource === 'default' ? ' (the default)' : ` (from ${connection.urlSource})`}`;
  let message: string;
  if (certificateCodes.has(code)) {
    const devCert = displayPath(dataLayout(connection.dataDir).tlsCert);
    const trust =
      connection.caPath === null
        ? `the system's trusted roots (no --ca, BASTION_CA, or ${devCert} from ${connection.dataDirSource})`
        : `CA file ${displayPath(connection.caPath)} (from ${connection.caSource})`;
    message = `could not verify the server's certificate using ${trust}: ${code}; pass --ca <file> or --data-dir <dir>`;
  } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    message = `the certificate of ${where} does not name that host (${cause.message}); connect by a name it lists, or pass --url`;
  } else if (code === 'ECONNREFUSED') {
    message = `could not connect to ${where}: connection refused; is the server running? pass --url <url> or set BASTION_URL`;
  } else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    message = `could not resolve the host of ${where}; pass --url <url> or set BASTION_URL`;
  } else if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'EPROTO' || /wrong version number/i.test(cause.message)) {
    message = `${where} did not answer TLS (a plain HTTP server?); use an http:// URL only for a server started with --insecure-http`;
  } else if (connection.url.startsWith('http:') && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) {
    message =
      `${where} closed the connection (an HTTPS server? Bastion serves https:// unless started with --insecure-http); ` +
      'pass an https:// URL';
  } else {
    message = `request to ${where} failed: ${code ? `${code}: ` : ''}${cause.message}`;
  }
  return new ConnectionError(message, { cause: err });
}

/** The sentence added to a 401: which token the server refused (by its source, never its value). */
export function explainUnauthorized(connection: Connection): string {
  const source = connection.tokenSource ?? 'nowhere';
  return `the server refused the token from ${source}; check it, or pass another with --token or BASTION_TOKEN`;
}
