// Live reload (SIGHUP; issue 12 item 5): re-reads the config file and applies what can change without
// dropping anyone. Every pool key applies at once (pool.reconfigure: growing now, shrinking idle-first and
// never mid-transaction, timeouts from the next transaction), as do tenant.deny, listen.client_idle_timeout_ms,
// shutdown.drain_timeout_ms, the listen.tls files and the JWT keys. Keys that need a restart (listen address,
// backend, pool.mode, every tenant key but deny) keep their old value and say so. A file that does not validate changes nothing and logs
// RELOAD_FAILED naming the key.
import type { Logger } from 'pino';
import type { Pool } from './backend/pool.js';
import { loadConfigFile } from './config/load.js';
import { ConfigError, type ProxyConfig } from './config/types.js';

/** A comparable string for a config value (a RegExp by its source, a Map by its entries). */
const stable = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (x instanceof RegExp ? x.source : x instanceof Map ? [...x] : x)) ?? 'undefined';

/**
 * The tenant keys a login reads from the configuration the proxy started with (server.ts): only tenant.deny
 * is re-read live. A changed value here (a rotated tenant.proof_key, a new search_path) needs a restart.
 */
const TENANT_AT_START: Array<keyof ProxyConfig['tenant']> = [
  'setting',
  'search_path',
  'id_pattern',
  'schema_map',
  'readback_check',
  'guard',
  'protected_settings',
  'guard_allow',
  'proof_key',
  'proof_setting',
  'proof_max_ttl_s',
  'function_call_allow',
];

/** Keys whose change needs a restart; a reload keeps their running value. */
const RESTART_ONLY: Array<[string, (c: ProxyConfig) => unknown]> = [
  ['listen.host', (c) => c.listen.host],
  ['listen.port', (c) => c.listen.port],
  ['listen.max_client_conn', (c) => c.listen.max_client_conn],
  // Admission arms its startup timer from the config it was built with.
  ['listen.startup_timeout_ms', (c) => c.listen.startup_timeout_ms],
  // The client TLS context re-reads its files on reload, but from the paths (and min_version) it started with.
  ['listen.tls', (c) => stable(c.listen.tls)],
  ['listen.plaintext_tokens', (c) => c.listen.plaintext_tokens],
  ...TENANT_AT_START.map((k): [string, (c: ProxyConfig) => unknown] => [`tenant.${k}`, (c) => stable(c.tenant[k])]),
  ['admin', (c) => JSON.stringify(c.admin)],
  ['backend', (c) => JSON.stringify(c.backend)],
  ['pool.mode', (c) => c.pool.mode],
  ['auth', (c) => JSON.stringify(c.auth)],
  ['users', (c) => JSON.stringify(c.users)],
  ['workers', (c) => c.workers],
  ['metrics', (c) => JSON.stringify(c.metrics)],
];

/** The running config with every reloadable key taken from `next`; lists the restart-only keys that differ. */
export function mergeReload(running: ProxyConfig, next: ProxyConfig): { merged: ProxyConfig; needRestart: string[] } {
  const needRestart = RESTART_ONLY.filter(([, pick]) => pick(running) !== pick(next)).map(([k]) => k);
  const merged: ProxyConfig = {
    ...running,
    pool: { ...next.pool, mode: running.pool.mode },
    // Only tenant.deny is live; the other tenant keys stay as running (named in needRestart when changed).
    tenant: { ...running.tenant, deny: next.tenant.deny },
    listen: { ...running.listen, client_idle_timeout_ms: next.listen.client_idle_timeout_ms },
    shutdown: next.shutdown,
    log: next.log,
  };
  return { merged, needRestart };
}

/** Reads the file; on an invalid file logs RELOAD_FAILED with the key and returns null (old config kept). */
export function readForReload(path: string, log: Logger): ProxyConfig | null {
  try {
    return loadConfigFile(path);
  } catch (e) {
    const key = e instanceof ConfigError ? e.key : null;
    log.error({ event: 'RELOAD_FAILED', key, err: (e as Error).message }, `config file not reloaded${key ? ` (${key})` : ''}; previous settings kept`);
    return null;
  }
}

export interface Reloadable {
  live(): ProxyConfig;
  /** Makes `c` the running config (the server re-reads tenant.deny and the timeouts from it). */
  setLive(c: ProxyConfig): void;
  pool: Pool;
  clientTls: { reload(): void } | null;
  verify: { reload(): Promise<void> };
  log: Logger;
}

/** Applies `next` (if the file validated) and re-reads the reloadable files: TLS certificate and JWT keys. */
export async function applyReload(next: ProxyConfig | undefined, r: Reloadable): Promise<void> {
  if (next) {
    const before = new Set(r.live().tenant.deny);
    const { merged, needRestart } = mergeReload(r.live(), next);
    r.setLive(merged);
    r.pool.reconfigure(merged.pool);
    r.log.level = merged.log.level;
    if (needRestart.length > 0) {
      r.log.warn({ event: 'RELOAD_NEEDS_RESTART', keys: needRestart }, `changed keys that only apply after a restart (kept as running): ${needRestart.join(', ')}`);
    }
    const deny = merged.tenant.deny;
    r.log.info(
      { event: 'RELOAD', deny, newly_suspended: deny.filter((t) => !before.has(t)), pool_size: merged.pool.size, pool_overflow: merged.pool.overflow },
      'configuration reloaded',
    );
  }
  r.clientTls?.reload();
  // JWT key files (public_key_file, jwks_file) or the remote JWKS; on failure the old keys stay in use.
  await r.verify.reload().catch((e: Error) => r.log.error({ event: 'RELOAD_FAILED', what: 'auth.jwt keys', err: e.message }, 'JWT key reload failed; old keys kept'));
}
