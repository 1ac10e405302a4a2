// The admin endpoint: /healthz, /readyz following the backend, and /metrics with the pool gauges,
// transaction counter, acquire-wait histogram and auth failures by reason.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin } from '../../src/admin/http.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

describe('admin endpoint', () => {
  let t: TestProxy;
  let base: string;
  let close: () => Promise<void>;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'admin', { pool: { size: 3 } });
    const admin = await startAdmin('127.0.0.1', 0, t.proxy.metrics, () => t.proxy.readiness.check());
    base = `http://127.0.0.1:${admin.port}`;
    close = admin.close;
  });
  afterAll(async () => {
    await close?.();
    await t?.close();
  });

  it('serves /healthz and /readyz while the backend is reachable', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it('/metrics reports pool gauges, transactions, acquire waits and auth failures by reason', async () => {
    const c = await t.pgClient('acme');
    await c.query('SELECT 1');
    await c.query('SELECT 2');
    const bad = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme', { expSeconds: -10 }) });
    await bad.connect().catch(() => {});
    const body = await (await fetch(`${base}/metrics`)).text();
    expect(body).toMatch(/pgtp_pool_size\{pool="[^"]+"\} 3/);
    expect(body).toMatch(/pgtp_pool_idle\{pool="[^"]+"\} \d/);
    expect(body).toMatch(/pgtp_pool_busy\{pool="[^"]+"\} \d/);
    expect(body).toMatch(/pgtp_pool_waiting\{pool="[^"]+"\} 0/);
    const tx = Number(/pgtp_transactions_total (\d+)/.exec(body)?.[1]);
    expect(tx).toBeGreaterThanOrEqual(2);
    expect(body).toMatch(/pgtp_pool_acquire_wait_seconds_count\{outcome="acquired"\} \d+/);
    expect(body).toMatch(/pgtp_auth_failures_total\{reason="expired"\} 1/);
  });

  it('/readyz turns 503 while the backend refuses the pool login (e.g. a wrong password)', async () => {
    const { Pool } = await import('../../src/backend/pool.js');
    const { connectBackend } = await import('../../src/backend/connect.js');
    const { Readiness } = await import('../../src/backend/probe.js');
    const badCfg = { ...t.config.backend, password: 'wrong-password', port: t.config.backend.port };
    const noop = () => {};
    const readiness = new Readiness(badCfg);
    const pool = new Pool('bad', t.config.pool, badCfg, connectBackend, { opened: () => readiness.succeeded(), closed: noop, acquired: noop, resetFailed: noop, reset: noop, connectFailed: (err) => readiness.failed(err.message) });
    const e = (await pool.acquire().catch((err: unknown) => err)) as Error;
    expect(e.message).toMatch(/password authentication failed/);
    // TCP answers (the server is up), but the pool's login fails: not ready.
    expect(await readiness.check()).toBe(false);
    readiness.close();
    await pool.close();
  });

  it('/readyz turns 503 when the backend is unreachable', async () => {
    const { Readiness } = await import('../../src/backend/probe.js');
    const deadCfg = { ...t.config.backend, port: 1 };
    const readiness = new Readiness(deadCfg);
    const dead = await startAdmin('127.0.0.1', 0, t.proxy.metrics, () => readiness.check());
    try {
      expect((await fetch(`http://127.0.0.1:${dead.port}/readyz`)).status).toBe(503);
    } finally {
      readiness.close();
      await dead.close();
    }
  });
});
