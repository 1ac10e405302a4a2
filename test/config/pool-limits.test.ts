// The pool limits of issue 12: every key validated with a one-line error naming it, and their interplay.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/types.js';

const BASE = `
backend: { database: app, user: app_pool, password: pw }
auth: { jwt: { algorithms: [HS256], secret: "${'s'.repeat(40)}" } }
`;

function err(extra: string): ConfigError {
  try {
    parseConfig(BASE + extra, {});
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('pool limits', () => {
  it('accepts the worked 5 + 5 / 300 s / 80 % config', () => {
    const c = parseConfig(
      BASE +
        `pool: { size: 5, overflow: 5, overflow_idle_ms: 60000, min_idle: 2, pre_ping: true, pre_ping_after_ms: 1000, max_lifetime_ms: 300000, acquire_timeout_ms: 30000, tenant_max_backends: 4, fairness: fifo, alert_threshold: 0.8, query_timeout_ms: 30000, idle_in_transaction_timeout_ms: 10000 }
listen: { client_idle_timeout_ms: 600000 }
shutdown: { drain_timeout_ms: 20000 }
`,
      {},
    );
    expect(c.pool).toMatchObject({ size: 5, overflow: 5, min_idle: 2, pre_ping: true, max_lifetime_ms: 300_000, tenant_max_backends: 4, fairness: 'fifo', alert_threshold: 0.8 });
    expect(c.listen.client_idle_timeout_ms).toBe(600_000);
    expect(c.shutdown.drain_timeout_ms).toBe(20_000);
  });

  it.each([
    ['pool: { overflow: -1 }', 'pool.overflow', 'integer'],
    ['pool: { overflow_idle_ms: 0 }', 'pool.overflow_idle_ms', 'integer'],
    ['pool: { size: 3, min_idle: 4 }', 'pool.min_idle', 'at most pool.size (3)'],
    ['pool: { pre_ping: yes please }', 'pool.pre_ping', 'true or false'],
    ['pool: { pre_ping_after_ms: -5 }', 'pool.pre_ping_after_ms', 'integer'],
    ['pool: { max_lifetime_ms: 1.5 }', 'pool.max_lifetime_ms', 'integer'],
    ['pool: { size: 2, overflow: 1, tenant_max_backends: 4 }', 'pool.tenant_max_backends', 'pool.size + pool.overflow (3)'],
    ['pool: { fairness: random }', 'pool.fairness', 'fifo'],
    ['pool: { alert_threshold: 80 }', 'pool.alert_threshold', 'fraction'],
    ['pool: { alert_threshold: 0 }', 'pool.alert_threshold', 'fraction'],
    ['pool: { query_timeout_ms: "30s" }', 'pool.query_timeout_ms', 'integer'],
    ['pool: { idle_in_transaction_timeout_ms: -1 }', 'pool.idle_in_transaction_timeout_ms', 'integer'],
    ['listen: { client_idle_timeout_ms: -1 }', 'listen.client_idle_timeout_ms', 'integer'],
    ['shutdown: { drain_timeout_ms: -1 }', 'shutdown.drain_timeout_ms', 'integer'],
    ['shutdown: { drain_timout_ms: 5 }', 'shutdown.drain_timout_ms', 'unknown key'],
  ])('%s → %s', (extra, key, fragment) => {
    const e = err(extra);
    expect(e.key).toBe(key);
    expect(e.message).toContain(fragment);
    expect(e.message).not.toContain('\n');
  });
});
