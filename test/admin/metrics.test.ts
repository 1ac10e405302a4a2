// Metrics an SRE alerts on: per-tenant series stay at K+1 label values with 1,000 tenants; the acquire-wait
// histogram counts timed-out waits; errors by SQLSTATE class and source; durations; bytes; backends by state.
import type net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/admin/metrics.js';
import { Registry } from '../../src/admin/registry.js';
import type { ServerConn } from '../../src/backend/server.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

/** Label values of `label` in the samples of `metric` (exact name) in an exposition text. */
function labelValues(text: string, metric: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = new RegExp(`^${metric}\\{([^}]*)\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) {
    const v = new RegExp(`${label}="([^"]*)"`).exec(m[1])?.[1];
    if (v !== undefined) out.set(v, (out.get(v) ?? 0) + Number(m[2]));
  }
  return out;
}

/** Feeds a registry the way sessions do, without sockets or a database. */
function simulate(k: number, tenants: number): { metrics: Metrics; total: number } {
  const metrics = new Metrics(() => ({ stats: { size: 10, cap: 10, overflowOpen: 0, held: 0, open: 0, busy: 0, idle: 0, connecting: 0, waiting: 0 }, conns: [], params: null }), 'sim', k);
  const registry = new Registry(metrics.sink);
  metrics.watch(registry);
  const server = { pid: 1 } as ServerConn;
  let total = 0;
  for (let i = 0; i < tenants; i++) {
    const tenant = `t${String(i).padStart(4, '0')}`;
    const socket = { bytesRead: 100, bytesWritten: 200 } as net.Socket;
    const e = registry.add({ id: i + 1, user: 'app', tenant, socket, tls: false, applicationName: '', kill: () => {} });
    // Activity grows with i: the last tenants are the busiest.
    const n = 1 + Math.floor(i / 10);
    for (let j = 0; j < n; j++) {
      e.waiting();
      e.acquired(server);
      e.readyForQuery(true);
      e.released();
    }
    total += n;
  }
  return { metrics, total };
}

describe('per-tenant metrics have bounded cardinality', () => {
  it('1,000 tenants give exactly K+1 tenant label values (the top K by transactions, then "other")', async () => {
    for (const k of [20, 5]) {
      const { metrics, total } = simulate(k, 1000);
      const text = await metrics.registry.metrics();
      for (const name of ['pgtp_tenant_transactions_total', 'pgtp_tenant_transaction_seconds_total', 'pgtp_tenant_acquire_wait_seconds_total', 'pgtp_tenant_clients', 'pgtp_tenant_waiting', 'pgtp_tenant_backends_held']) {
        expect(labelValues(text, name, 'tenant').size, name).toBe(k + 1);
      }
      const tx = labelValues(text, 'pgtp_tenant_transactions_total', 'tenant');
      expect(tx.has('other')).toBe(true);
      expect(tx.has('t0999')).toBe(k >= 10); // among the busiest (t0990..t0999 tie; ties go by name)
      expect(tx.has('t0990')).toBe(true);
      expect(tx.has('t0000')).toBe(false); // quietest
      // Nothing is lost: the labelled tenants and "other" add up to all the work done.
      expect([...tx.values()].reduce((a, b) => a + b, 0)).toBe(total);
      expect(labelValues(text, 'pgtp_tenant_clients', 'tenant').get('other')).toBe(1000 - k);
      expect(Number(/^pgtp_transaction_duration_seconds_count (\d+)$/m.exec(text)?.[1])).toBe(total);
      expect(Number(/^pgtp_client_received_bytes_total (\d+)$/m.exec(text)?.[1])).toBe(100 * 1000);
    }
  });

  it('metrics.tenant_top_k: 0 puts every tenant under "other"', async () => {
    const { metrics } = simulate(0, 50);
    expect([...labelValues(await metrics.registry.metrics(), 'pgtp_tenant_transactions_total', 'tenant').keys()]).toEqual(['other']);
  });
});

describe('metrics through a running proxy', () => {
  let t: TestProxy;
  const scrape = () => t.proxy.metrics.registry.metrics();
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'admin_metrics', { pool: { size: 1, acquire_timeout_ms: 300 } });
  });
  afterAll(async () => t?.close());

  it('counts a timed-out acquire in the wait histogram, errors by class and source, durations, bytes, backends by state', async () => {
    const a = await t.pgClient('acme');
    const b = await t.pgClient('globex');
    await a.query('BEGIN');
    await a.query('SELECT 1');
    let text = await scrape();
    expect(text).toMatch(/^pgtp_backends\{state="active"\} 1$/m);
    expect(text).toMatch(/^pgtp_tenant_backends_held\{tenant="acme"\} 1$/m);
    expect(text).toMatch(/^pgtp_pool_utilization_ratio\{pool="[^"]+"\} 1$/m);
    const timeout = (await b.query('SELECT 1').catch((e: unknown) => e)) as { code?: string };
    expect(timeout.code).toBe('53300');
    await a.query('COMMIT');
    // No backend for a client is FATAL (the connection is closed, as the server does with 53300): a new client.
    const c = await t.pgClient('globex');
    const zero = (await c.query('SELECT 1/0').catch((e: unknown) => e)) as { code?: string };
    expect(zero.code).toBe('22012');
    text = await scrape();
    expect(text).toMatch(/^pgtp_pool_acquire_wait_seconds_count\{outcome="timeout"\} 1$/m);
    // The timed-out wait is in the histogram with its real length (about acquire_timeout_ms), not zero.
    expect(Number(/^pgtp_pool_acquire_wait_seconds_sum\{outcome="timeout"\} (\S+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(0.29);
    expect(text).toMatch(/^pgtp_errors_total\{class="53",source="proxy"\} 1$/m);
    expect(text).toMatch(/^pgtp_errors_total\{class="22",source="server"\} 1$/m);
    expect(Number(/^pgtp_transaction_duration_seconds_count (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(2);
    expect(Number(/^pgtp_query_duration_seconds_count (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(4);
    expect(Number(/^pgtp_client_received_bytes_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    expect(Number(/^pgtp_client_sent_bytes_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    expect(text).toMatch(/^pgtp_backend_reset_outcomes_total\{outcome="(ok|pipelined)"\} [1-9]/m);
    expect(labelValues(text, 'pgtp_tenant_transactions_total', 'tenant').get('acme')).toBeGreaterThanOrEqual(1);
    await Promise.all([a.end(), b.end().catch(() => {}), c.end()]);
  });

  it('a refused login is an error of class 28 from the proxy', async () => {
    const bad = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme', { expSeconds: -60 }) });
    await bad.connect().catch(() => {});
    expect(Number(/^pgtp_errors_total\{class="28",source="proxy"\} (\d+)$/m.exec(await scrape())?.[1])).toBeGreaterThanOrEqual(1);
  });
});
