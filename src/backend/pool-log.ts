// What the pool's limits tell an on-call engineer: saturation with hysteresis (POOL_SATURATED once,
// POOL_RECOVERED once), and the server's reachability once per change (not per reconnect attempt).
import type { Logger } from 'pino';
import type { PoolEvents } from './pool.js';

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
