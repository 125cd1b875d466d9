// The CLI's typed HTTP client (openapi-fetch over the types generated from openapi.yaml), with the
// server's TLS trust set up: an explicit CA file, else the development certificate in the data
// folder, else the system roots. Problems from the server become ApiError with the problem document.
import createClient, { type Client } from 'openapi-fetch';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, fetch as undiciFetch, Request as UndiciRequest } from 'undici';
import type { paths } from '../generated/openapi.js';
import { dataLayout } from '../config.js';

export type ApiClient = Client<paths>;

export interface ClientSettings {
  /** Base URL, e.g. https://127.0.0.1:8443. */
  url: string;
  token: string | null;
  /** PEM file of the certificate (or CA) to trust; null for the system roots. */
  caPath: string | null;
  /** Skip certificate verification (development only). */
  insecure: boolean;
}

export interface ClientOptionValues {
  url?: string;
  token?: string;
  ca?: string;
  insecure?: boolean;
  dataDir?: string;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly problem: { type?: string; title?: string; detail?: string; errors?: { detail: string; pointer?: string; parameter?: string }[] } | null,
  ) {
    const parts = [problem?.title ?? `HTTP ${status}`, problem?.detail].filter(Boolean);
    super(parts.join(': '));
  }
}

/** Settings from flags, then BASTION_* variables, then the local data folder's files. */
export function resolveClientSettings(values: ClientOptionValues, env: NodeJS.ProcessEnv = process.env): ClientSettings {
  const dataDir = path.resolve(values.dataDir ?? env.BASTION_DATA_DIR ?? 'var');
  const host = env.BASTION_HOST ?? '127.0.0.1';
  const insecureHttp = ['1', 'true', 'yes', 'on'].includes((env.BASTION_INSECURE_HTTP ?? '').toLowerCase());
  const url = values.url ?? env.BASTION_URL ?? `${insecureHttp ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${env.BASTION_PORT ?? '8443'}`;
  let token = values.token ?? env.BASTION_TOKEN ?? null;
  const layout = dataLayout(dataDir);
  const tokenFile = layout.adminToken;
  if (token === null && fs.existsSync(tokenFile)) token = fs.readFileSync(tokenFile, 'utf8').trim();
  let caPath = values.ca ?? env.BASTION_CA ?? null;
  const devCert = layout.tlsCert;
  if (caPath === null && fs.existsSync(devCert)) caPath = devCert;
  return { url: url.replace(/\/+$/, ''), token, caPath, insecure: values.insecure === true };
}

export function createApiClient(settings: ClientSettings): ApiClient {
  const ca = settings.caPath ? fs.readFileSync(settings.caPath, 'utf8') : undefined;
  const dispatcher = new Agent({ connect: { ...(ca ? { ca } : {}), rejectUnauthorized: !settings.insecure } });
  return createClient<paths>({
    baseUrl: settings.url,
    headers: settings.token ? { authorization: `Bearer ${settings.token}` } : {},
    fetch: undiciFetch as unknown as (input: Request) => Promise<Response>,
    Request: UndiciRequest as unknown as typeof Request,
    requestInitExt: { dispatcher },
  });
}

/** The response's data, or an ApiError carrying the server's problem document. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    const problem = (result.error ?? null) as ConstructorParameters<typeof ApiError>[1];
    throw new ApiError(result.response.status, typeof problem === 'object' ? problem : null);
  }
  return result.data as T;
}
