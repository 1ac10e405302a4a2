// The console state (SUSPEND TENANT, PAUSE) a worker is forked with, as an environment value (see worker.ts).
/**
 * Linux refuses a single environment string over 128 KiB (MAX_ARG_STRLEN) with E2BIG, and cluster.fork then
 * throws in the primary. The console allows far more suspended tenants than fit (MAX_SUSPENDED), so the state
 * goes with the fork only when it fits; otherwise the worker starts without it and gets it from the primary's
 * replay once it listens (as before PGTP_CONSOLE_STATE existed).
 */
export const MAX_CONSOLE_STATE_ENV = 96 * 1024;

/** The PGTP_CONSOLE_STATE value for a fork, or undefined if it is too large to pass in the environment. */
export function consoleStateEnv(state: { paused: boolean; suspended: Iterable<string> }): string | undefined {
  const raw = JSON.stringify({ paused: state.paused, suspended: [...state.suspended] });
  return Buffer.byteLength(raw, 'utf8') <= MAX_CONSOLE_STATE_ENV ? raw : undefined;
}
