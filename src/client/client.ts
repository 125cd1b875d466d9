// The typed HTTP client (openapi-fetch over the types generated from openapi.yaml) with the server's
// TLS trust set up: the CA file of the connection, else the system's roots; verification off only when
// asked for. A request that gets no HTTP answer throws a ConnectionError saying what was tried; a
// problem answer becomes an ApiError carrying the problem document (a 401 also says which token the
// server refused, by where it came from).
import createClient, { type Client } from 'openapi-fetch';
// openapi-fetch's own companion package: its Readable<T> is how the client types response bodies.
import type { Readable } from 'openapi-typescript-helpers';
import { Agent, type Dispatcher, Request as UndiciRequest, fetch as undiciFetch } from 'undici';
import type { components, paths } from '../generated/openapi.js';
import {
  type Connection,
  type ConnectionFlags,
  explainConnectionFailure,
  explainUnauthorized,
  readCa,
  requireToken,
  resolveConnection,
} from './connection.js';

/** The API's schemas as the client's responses carry them (tuples read back as arrays, for one). */
export type Schemas = { [K in keyof components['schemas']]: Readable<components['schemas'][K]> };
export type Problem = Schemas['Problem'];

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
    /** What to do about it, when the client knows more than the server said (e.g. which token it sent). */
    readonly hint: string | null = null,
  ) {
    const parts = [problem?.title ?? `HTTP ${status}`, problem?.detail].filter(Boolean);
    super(parts.join(': ') + (hint ? ` (${hint})` : ''));
  }
}

export interface BastionClient extends Client<paths> {
  /** How this client connects, and where each setting came from. */
  readonly connection: Connection;
  /** The undici dispatcher with the TLS trust set up (streamed uploads use it directly; see transfer.ts). */
  readonly dispatcher: Dispatcher;
}

/**
 * A client for `connection` (see resolveConnection). Throws ConnectionError at once when there is no
 * token or the CA file cannot be read; requests that get no answer throw ConnectionError too.
 */
export function createBastionClient(connection: Connection): BastionClient {
  const token = requireToken(connection);
  const ca = readCa(connection);
  // Security: the CA given replaces the system's roots (a development certificate is its own CA);
  // rejectUnauthorized is false only for --insecure, which has no environment variable.
  const dispatcher = new Agent({ connect: { ...(ca !== null ? { ca } : {}), rejectUnauthorized: !connection.insecure } });
  const fetchWithExplanations = async (request: Request): Promise<Response> => {
    try {
      return (await undiciFetch(request as unknown as UndiciRequest, { dispatcher })) as unknown as Response;
    } catch (err) {
      if (err instanceof Error && err.name === 'AbortError') throw err;
      throw explainConnectionFailure(err, connection);
    }
  };
  const client = createClient<paths>({
    baseUrl: connection.url,
    headers: { authorization: `Bearer ${token}` },
    fetch: fetchWithExplanations,
    Request: UndiciRequest as unknown as typeof Request,
  });
  client.use({
    async onResponse({ response }) {
      if (response.status !== 401) return undefined;
      throw new ApiError(401, await problemOf(response), explainUnauthorized(connection));
    },
  });
  return Object.assign(client, { connection, dispatcher });
}

/** Resolves the connection from flags and BASTION_* variables (resolveConnection) and creates its client. */
export function connect(flags: ConnectionFlags = {}, env: NodeJS.ProcessEnv = process.env): BastionClient {
  return createBastionClient(resolveConnection(flags, env));
}

async function problemOf(response: Response): Promise<Problem | null> {
  return parseProblem(await response.clone().text());
}

/** The problem document in a response body, or null when it is not one. */
export function parseProblem(text: string): Problem | null {
  try {
    const body = JSON.parse(text) as unknown;
    return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Problem) : null;
  } catch {
    return null;
  }
}

/** The response's data, or an ApiError carrying the server's problem document. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    const problem = typeof result.error === 'object' && result.error !== null ? (result.error as Problem) : null;
    throw new ApiError(result.response.status, problem);
  }
  return result.data as T;
}
