// What the pool tells an on-call engineer and the metrics: backends opened and closed, resets, read-back
// outcomes, saturation with hysteresis (POOL_SATURATED once, POOL_RECOVERED once), and the server's
// reachability once per change (not per reconnect attempt).
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import type { PoolEvents } from './pool-types.js';
import type { ProxyHooks } from '../cluster/hooks.js';
import type { Readiness } from './probe.js';

/**
 * The pool's events wired to logs, metrics, readiness and the worker hooks (the cluster's budget fence);
 * `m` is read late: metrics need the pool first.
 */
export function poolEvents(log: Logger, m: () => Metrics, readiness: Readiness, hooks: ProxyHooks = {}): PoolEvents {
  return {
    opened: (c) => {
      m().backendOpened.inc();
      hooks.backendOpened?.(c.pid, c.secret);
      readiness.succeeded();
      log.info({ event: 'BACKEND_OPEN', backend_pid: c.pid, conn: c.id }, 'backend connection opened');
    },
    closed: (c, reason) => {
      m().backendClosed.inc();
      hooks.backendClosed?.(c.pid);
      log.info({ event: 'BACKEND_CLOSE', backend_pid: c.pid, conn: c.id, reason }, 'backend connection closed');
    },
    acquired: () => {}, // observed per client, with the outcome (admin/registry.ts)
    reset: (mode) => {
      m().resets.inc(mode);
      m().resetOutcomes.inc(mode === 'eager' ? 'ok' : 'pipelined');
    },
    resetFailed: (c, reason) => {
      m().resetFailures.inc();
      m().resetOutcomes.inc('failed');
      m().securityEvents.inc({ event: 'RESET_FAILED' });
      log.error({ event: 'RESET_FAILED', backend_pid: c.pid, conn: c.id, reason }, 'backend reset failed; connection closed');
    },
    readback: (outcome, reason) => {
      m().readbackChecks.inc(outcome);
      if (outcome === 'failed') {
        m().securityEvents.inc({ event: 'READBACK_FAILED' });
        log.error({ event: 'READBACK_FAILED', reason }, 'the tenant context could not be read back; client disconnected');
      } else if (outcome === 'skipped') {
        log.info({ event: 'READBACK_SKIPPED', reason }, 'read-back not run: the backend was closed, so no session state of the client survives');
      }
    },
    connectFailed: (e) => {
      m().backendConnectFailures.inc();
      readiness.failed(e.message, (e as { sqlstate?: string }).sqlstate);
      log.debug({ event: 'BACKEND_CONNECT_FAILED', err: e.message }, 'could not open a backend connection');
    },
    ...poolLimitEvents(log),
  };
}

export function poolLimitEvents(log: Logger): Pick<PoolEvents, 'saturation' | 'reachability'> {
  return {
    saturation: (kind, saturated, utilisation) => {
      const what = kind === 'cap' ? 'checked-out backends of the cap (pool.size + pool.overflow)' : 'overflow backends of pool.overflow';
      const pct = Math.round(utilisation * 100);
      if (saturated) {
        log.warn(
          { event: 'POOL_SATURATED', kind, utilisation },
          `pool saturated: ${pct} % ${what}, at or above pool.alert_threshold; clients will soon wait (raise pool.size/pool.overflow, shorten transactions, or set pool.tenant_max_backends)`,
        );
      } else log.info({ event: 'POOL_RECOVERED', kind, utilisation }, `pool recovered: ${pct} % ${what}`);
    },
    reachability: (reachable, err, retryInMs) => {
      if (reachable) log.info({ event: 'BACKEND_REACHABLE' }, 'database reachable again; backend connections open');
      else
        log.error(
          { event: 'BACKEND_UNREACHABLE', err, retry_in_ms: retryInMs },
          `cannot open backend connections: ${err}; retrying with exponential back-off (logged again only when it recovers)`,
        );
    },
  };
}
