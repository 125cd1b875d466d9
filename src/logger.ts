// The process logger: JSON lines (pino). Redaction is a second line of defence — code never passes
// tokens, keys, tensor values or dataset rows to the logger in the first place.
import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

export function createLogger(level: Config['logLevel'], destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: ['req.headers.authorization', 'headers.authorization', '*.token', 'token', '*.key', 'key'],
        censor: '[redacted]',
      },
    },
    destination ?? process.stdout,
  );
}
