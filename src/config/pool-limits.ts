// Validates the pool limits an SRE tunes (issue 12): overflow, min_idle, pre-ping, lifetime, tenant fairness,
// saturation threshold, statement and idle timeouts, and their interplay. One-line errors naming the key.
import { ConfigError, type PoolLimits } from './types.js';
import { int, MAX_TIMER_MS, oneOf, show, type Raw } from './validate.js';
import { validateBool } from './tenant-extras.js';

export const POOL_LIMIT_KEYS = [
  'overflow',
  'overflow_idle_ms',
  'min_idle',
  'pre_ping',
  'pre_ping_after_ms',
  'max_lifetime_ms',
  'tenant_max_backends',
  'fairness',
  'alert_threshold',
  'alert_recovery_ms',
  'query_timeout_ms',
  'idle_in_transaction_timeout_ms',
] as const;
export const FAIRNESS = ['fifo', 'tenant'] as const;

/** The keys above from the `pool` section; `size` is the already validated pool.size. */
export function validatePoolLimits(p: Raw, size: number): PoolLimits {
  const overflow = int(p, 'pool', 'overflow', { min: 0, max: 10_000, def: 0 });
  const min_idle = int(p, 'pool', 'min_idle', { min: 0, max: 10_000, def: 0 });
  if (min_idle > size) throw new ConfigError('pool.min_idle', `must be at most pool.size (${size}): overflow backends are never kept ready, got ${min_idle}`);
  const tenantMax = int(p, 'pool', 'tenant_max_backends', { min: 0, max: 10_000, def: 0 });
  if (tenantMax > size + overflow) {
    throw new ConfigError('pool.tenant_max_backends', `must be at most pool.size + pool.overflow (${size + overflow}), or 0 for no cap, got ${tenantMax}`);
  }
  const alert = p.alert_threshold;
  let alert_threshold = 0.8;
  if (alert !== undefined && alert !== null) {
    if (typeof alert !== 'number' || !(alert > 0 && alert <= 1)) {
      throw new ConfigError('pool.alert_threshold', `must be a fraction of the cap above 0 and at most 1 (e.g. 0.8), got ${show(alert)}`);
    }
    alert_threshold = alert;
  }
  const pre_ping = validateBool(p.pre_ping, 'pool.pre_ping', false);
  return {
    overflow,
    // An overflow backend idle this long is closed; the steady ones stay (subject to idle_timeout_ms).
    overflow_idle_ms: int(p, 'pool', 'overflow_idle_ms', { min: 1, max: MAX_TIMER_MS, def: 30_000 }),
    min_idle,
    pre_ping,
    pre_ping_after_ms: int(p, 'pool', 'pre_ping_after_ms', { min: 0, max: MAX_TIMER_MS, def: 5_000 }),
    // 0: backends are never recycled by age.
    max_lifetime_ms: int(p, 'pool', 'max_lifetime_ms', { min: 0, max: MAX_TIMER_MS, def: 0 }),
    tenant_max_backends: tenantMax,
    fairness: oneOf(p, 'pool', 'fairness', FAIRNESS, 'tenant'),
    alert_threshold,
    alert_recovery_ms: int(p, 'pool', 'alert_recovery_ms', { min: 0, max: MAX_TIMER_MS, def: 5_000 }),
    // 0: off (the server's own statement_timeout still applies).
    query_timeout_ms: int(p, 'pool', 'query_timeout_ms', { min: 0, max: MAX_TIMER_MS, def: 0 }),
    idle_in_transaction_timeout_ms: int(p, 'pool', 'idle_in_transaction_timeout_ms', { min: 0, max: MAX_TIMER_MS, def: 0 }),
  };
}
