// The pino logger. Tokens and passwords are never passed to it; the redact list is a second line of defence.
import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/types.js';

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'pg-tenant-proxy' },
      redact: { paths: ['password', 'token', 'secret', '*.password', '*.token', '*.secret'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
