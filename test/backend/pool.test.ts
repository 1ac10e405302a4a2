// The pool's promises, checked in pg_stat_activity: a hard bound under load, FIFO waiting with a clear
// FATAL 53300 on timeout, and nothing left behind by a client that vanishes mid-transaction.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { backendCount, startTestProxy, type TestProxy } from '../support/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('backend pool bound', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'pool_bound', { pool: { size: 5, acquire_timeout_ms: 20_000 } });
  });
  afterAll(async () => t?.close());

  it('never opens more than pool.size backends for 50 concurrent clients', async () => {
    const admin = await t.admin();
    const clients = await Promise.all(Array.from({ length: 50 }, (_, i) => t.pgClient(i % 2 ? 'acme' : 'globex')));
    let maxSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxSeen = Math.max(maxSeen, await backendCount(admin, t.poolUser));
        await sleep(5);
      }
    })();
    const results = await Promise.all(
      clients.map(async (c, i) => {
        const tenant = i % 2 ? 'acme' : 'globex';
        for (let k = 0; k < 5; k++) {
          const r = await c.query("SELECT current_setting('app.current_tenant') AS t, pg_sleep(0.01)");
          if (r.rows[0].t !== tenant) return false;
        }
        return true;
      }),
    );
    sampling = false;
    await sampler;
    expect(results.every(Boolean)).toBe(true);
    expect(maxSeen).toBeGreaterThan(0);
    expect(maxSeen).toBeLessThanOrEqual(5);
    expect(t.proxy.pool.stats().open).toBeLessThanOrEqual(5);
  });
});

describe('acquire timeout', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'pool_timeout', { pool: { size: 1, acquire_timeout_ms: 300 } });
  });
  afterAll(async () => t?.close());

  it('gives a waiting client FATAL 53300 naming the pool and the wait; a new connection works once a backend is free', async () => {
    const holder = await t.pgClient('acme');
    const waiter = await t.pgClient('globex');
    await holder.query('BEGIN');
    const started = Date.now();
    const err = (await waiter.query('SELECT 1').catch((e: unknown) => e)) as { code?: string; message: string };
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(err.code).toBe('53300');
    expect(err.message).toMatch(/pool ".*" after waiting 300 ms/);
    const failures = await t.proxy.metrics.acquireTimeouts.get();
    expect(failures.values.find((v) => v.labels.sqlstate === '53300')?.value).toBe(1);
    await holder.query('COMMIT');
    // The connection was closed (see test/backend/acquire-errors.test.ts for why); a new one is served.
    const next = await t.pgClient('globex');
    const r = await next.query("SELECT current_setting('app.current_tenant') AS t");
    expect(r.rows[0].t).toBe('globex');
  });

  it('serves waiters in FIFO order', async () => {
    const holder = await t.pgClient('acme');
    const waiters = await Promise.all([1, 2, 3].map(() => t.pgClient('globex')));
    await holder.query('BEGIN');
    const order: number[] = [];
    const runs = waiters.map((w, i) => w.query('SELECT 1').then(() => order.push(i)));
    await sleep(100);
    await holder.query('COMMIT');
    await Promise.all(runs);
    expect(order).toEqual([0, 1, 2]);
  });
});

describe('client killed mid-transaction', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'pool_kill', { pool: { size: 1, acquire_timeout_ms: 5000 } });
  });
  afterAll(async () => t?.close());

  it('idle in a transaction: rolled back and reset; the lock and temp state are gone', async () => {
    const victim = await t.pgClient('acme');
    await victim.query('BEGIN');
    await victim.query('CREATE TEMP TABLE victim_tmp(x int)');
    await victim.query("INSERT INTO orders (tenant_id, item) VALUES ('acme', 'uncommitted')");
    await victim.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
    // Kill the TCP connection without a Terminate message.
    (victim as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    const next = await t.pgClient('globex');
    const r = await next.query("SELECT to_regclass('pg_temp.victim_tmp') IS NULL AS clean, (SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND relation = 'orders'::regclass AND mode = 'AccessExclusiveLock' AND granted)::int AS locks");
    expect(r.rows[0]).toEqual({ clean: true, locks: 0 });
    const admin = await t.admin();
    expect((await admin.query("SELECT count(*)::int AS n FROM orders WHERE item = 'uncommitted'")).rows[0].n).toBe(0);
  });

  it('mid-query: the query is cancelled and the backend closed, never reused', async () => {
    const admin = await t.admin();
    const victim = await t.pgClient('acme');
    const pid = (await victim.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    void victim.query('SELECT pg_sleep(30)').catch(() => {});
    await sleep(200);
    (victim as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    // The sleeping backend must disappear promptly (cancelled + closed), not run 30 s.
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      await sleep(100);
      gone = (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0].n === 0;
    }
    expect(gone).toBe(true);
    const next = await t.pgClient('globex');
    const r = await next.query('SELECT pg_backend_pid() AS pid');
    expect(r.rows[0].pid).not.toBe(pid);
  });
});

describe('backends that die while pooled', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'pool_terminated', { pool: { size: 2 } });
  });
  afterAll(async () => t?.close());

  it('pg_terminate_backend on idle pooled backends: dropped from the pool, the next client gets a fresh one', async () => {
    const c = await t.pgClient('acme');
    const before = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    const admin = await t.admin();
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [t.poolUser]);
    await sleep(200);
    expect(t.proxy.pool.stats().open).toBe(0);
    const r = await c.query("SELECT pg_backend_pid() AS p, current_setting('app.current_tenant') AS t");
    expect(r.rows[0].t).toBe('acme');
    expect(r.rows[0].p).not.toBe(before);
  });

  it('a backend terminated mid-transaction: the client gets FATAL 08006 (or the server own 57P01), never a silent retry', async () => {
    const c = await t.pgClient('globex');
    await c.query('BEGIN');
    const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    const admin = await t.admin();
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    const e = (await c.query('SELECT 1').catch((err: unknown) => err)) as { code?: string; message: string };
    expect(e).toBeInstanceOf(Error);
    expect(['57P01', '08006', undefined]).toContain(e.code);
    const next = await t.pgClient('globex');
    expect((await next.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('globex');
  });
});
