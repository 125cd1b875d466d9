// The process logger: JSON lines (pino). Redaction is a second line of defence — code never passes
// tokens, keys, tensor values or dataset rows to the logger in the first place. The one thing a client
// controls that reaches every request's log line is the URL, so its query values never do: a client
// that puts a token in `?access_token=…` (as some tools do) would otherwise write it to the log.
import { type Logger, pino } from 'pino';
import type { Config } from './config.js';

const REDACTED = '[redacted]';
/** A query parameter name kept in the log: short and plain, so it is a name and not a credential. */
const PLAIN_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/;

/**
 * `url` (a request target: path and optional query) with every query value replaced by [redacted], and
 * every name too unless it is short and plain: `/v1/audit?after=[redacted]&limit=[redacted]`.
 */
export function redactQuery(url: string): string {
  const start = url.indexOf('?');
  if (start < 0) return url;
  const params = url
    .slice(start + 1)
    .split('&')
    .filter((param) => param !== '')
    .map((param) => {
      const equals = param.indexOf('=');
      const name = equals < 0 ? param : param.slice(0, equals);
      return PLAIN_NAME.test(name) && equals >= 0 ? `${name}=${REDACTED}` : REDACTED;
    });
  return `${url.slice(0, start)}?${params.join('&')}`;
}

/** What a logged request (Fastify's `{ req: request }`) shows: Fastify's own fields, the URL redacted. */
interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

function requestSerializer(req: LoggedRequest) {
  return {
    method: req.method,
    url: typeof req.url === 'string' ? redactQuery(req.url) : undefined,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

export function createLogger(level: Config['logLevel'], destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      // Fastify lets a logger instance's own serializers win over its defaults (which log req.url whole).
      serializers: { req: requestSerializer },
      redact: {
        paths: ['req.headers.authorization', 'headers.authorization', '*.token', 'token', '*.key', 'key'],
        censor: REDACTED,
      },
    },
    destination ?? process.stdout,
  );
}
