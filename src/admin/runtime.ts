// The operator side of a running proxy, assembled in one place: the registry (live view), the PAUSE gate,
// the tables for the console and the JSON endpoints, and what the console's commands act on.
import type { Logger } from 'pino';
import type { Pool } from '../backend/pool.js';
import { ConfigError, type ProxyConfig } from '../config/types.js';
import type { ApplyAction } from './console/actions.js';
import type { ConsoleDeps } from './console/commands.js';
import type { Metrics } from './metrics.js';
import { PauseGate } from './pause-gate.js';
import { Registry } from './registry.js';
import { type AdminState, showClients, showPools, showServers, showStats, showTenants, type Table } from './views.js';

export interface AdminRuntime {
  registry: Registry;
  gate: PauseGate;
  /** What the console's commands read and act on. */
  console: ConsoleDeps;
  /** The JSON endpoints of the admin HTTP port (read-only). */
  tables: Record<string, () => Table>;
  /** The configuration now in effect (after a reload), for SHOW CONFIG and SHOW TENANTS. */
  setConfig(next: ProxyConfig): void;
}

export interface AdminRuntimeOptions {
  pool: Pool;
  metrics: Metrics;
  config: ProxyConfig;
  log: Logger;
  /** Reads the config file again (absent: RELOAD re-reads keys and certificates only). */
  loadConfig?: () => ProxyConfig;
  /** Applies a reload, as SIGHUP does. */
  reload(next: ProxyConfig | undefined): Promise<void>;
  /** With workers: applies console actions on every worker (src/cluster). */
  cluster?: ApplyAction;
}

export function createAdminRuntime(o: AdminRuntimeOptions): AdminRuntime {
  const registry = new Registry(o.metrics.sink);
  o.metrics.watch(registry);
  const gate = new PauseGate();
  let current = o.config;
  const state: AdminState = { registry, pool: o.pool, gate, config: () => current };
  return {
    registry,
    gate,
    console: {
      ...state,
      log: o.log,
      ...(o.cluster ? { cluster: o.cluster } : {}),
      reload: async () => {
        let next: ProxyConfig | undefined;
        try {
          next = o.loadConfig?.();
        } catch (e) {
          const key = e instanceof ConfigError ? e.key : null;
          o.log.error({ event: 'RELOAD_FAILED', key, err: (e as Error).message }, `config file not reloaded${key ? ` (${key})` : ''}; previous settings kept`);
          throw e;
        }
        await o.reload(next);
      },
    },
    tables: {
      '/pools': () => showPools(state),
      '/clients': () => showClients(state),
      '/servers': () => showServers(state),
      '/tenants': () => showTenants(state),
      '/stats': () => showStats(state),
    },
    setConfig: (next) => {
      current = next;
    },
  };
}
