// The session clocks of issue 12 against real PostgreSQL: query_timeout_ms cancels (57014 naming the key),
// idle_in_transaction_timeout_ms ends the client's transaction (FATAL 25P03; the backend rolled back and
// reused), client_idle_timeout_ms disconnects an idle client (FATAL 57P05).
import { afterEach, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let t: TestProxy | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});

type PgErr = { code?: string; message: string; severity?: string };

describe('pool.query_timeout_ms', () => {
  it('cancels a query running longer with 57014 naming the key; the connection and backend stay usable', async () => {
    t = await startTestProxy(primaryServer(), 'timeouts_query', { pool: { size: 1, query_timeout_ms: 300 } });
    const c = await t.pgClient('acme');
    const admin = await t.admin();
    const started = Date.now();
    const err = (await c.query('SELECT pg_sleep(10)').catch((e: unknown) => e)) as PgErr;
    expect(err.code).toBe('57014');
    expect(err.message).toContain('pool.query_timeout_ms');
    expect(Date.now() - started).toBeLessThan(5000);
    const running = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(10)%' AND state = 'active'");
    expect(running.rows[0].n).toBe(0);
    // Short queries, and the next transaction, run fine.
    expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await c.query('BEGIN');
    await c.query('SELECT pg_sleep(0.05)');
    await c.query('COMMIT');
  });
});

describe('pool.idle_in_transaction_timeout_ms', () => {
  it('ends a client idle inside a transaction with FATAL 25P03; its work is rolled back and the backend reused', async () => {
    t = await startTestProxy(primaryServer(), 'timeouts_idle_tx', { pool: { size: 1, idle_in_transaction_timeout_ms: 300 } });
    const admin = await t.admin();
    await admin.query('CREATE TABLE IF NOT EXISTS idle_tx_probe (v int)');
    await admin.query('GRANT ALL ON idle_tx_probe TO PUBLIC');
    const c = await t.pgClient('acme');
    const errors: PgErr[] = [];
    c.on('error', (e: PgErr) => errors.push(e));
    const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
    await c.query('BEGIN');
    await c.query('INSERT INTO idle_tx_probe VALUES (1)');
    await sleep(1200);
    const after = (await c.query('SELECT 1').catch((e: unknown) => e)) as PgErr;
    const seen = [...errors, after];
    expect(seen.some((e) => e?.code === '25P03')).toBe(true);
    expect((await admin.query('SELECT count(*)::int AS n FROM idle_tx_probe')).rows[0].n).toBe(0);
    // The backend was rolled back and reset, not closed: the next client gets the same one.
    const d = await t.pgClient('globex');
    expect((await d.query('SELECT pg_backend_pid() AS p')).rows[0].p).toBe(pid);
  });
});

describe('listen.client_idle_timeout_ms', () => {
  it('disconnects a client idle outside a transaction with FATAL 57P05; a busy one stays', async () => {
    t = await startTestProxy(primaryServer(), 'timeouts_client_idle', { listen: { client_idle_timeout_ms: 400 } });
    const idle = await t.pgClient('acme');
    const busy = await t.pgClient('acme');
    const errors: PgErr[] = [];
    idle.on('error', (e: PgErr) => errors.push(e));
    let ended = false;
    idle.on('end', () => (ended = true));
    await idle.query('SELECT 1');
    for (let i = 0; i < 8; i++) {
      await busy.query('SELECT 1');
      await sleep(150);
    }
    expect(ended).toBe(true);
    expect(errors.some((e) => e.code === '57P05')).toBe(true);
    expect((await busy.query('SELECT 2 AS x')).rows[0].x).toBe(2);
  });
});
