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

/**
 * A child logger made on first use. pino serialises a child's bindings when it is made, which showed on the
 * connect path; a session that never logs above the configured level never pays it. The level is checked
 * on the parent first, so a disabled level costs one comparison.
 */
export function lazyChild(parent: Logger, bindings: () => pino.Bindings): Logger {
  let child: Logger | null = null;
  const real = (): Logger => (child ??= parent.child(bindings()));
  return new Proxy(parent, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in LEVEL_METHODS && !target.isLevelEnabled(prop)) return noop;
      const v = Reflect.get(real(), prop) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(real()) : v;
    },
  });
}
const LEVEL_METHODS = { trace: 1, debug: 1, info: 1, warn: 1, error: 1, fatal: 1 };
const noop = (): void => {};
