// Tenant fairness against real PostgreSQL (issue 12 item 3): one tenant floods the pool with 200 clients in
// long transactions; a quiet tenant runs one client of short transactions. With fairness `tenant` its acquire
// wait stays within a few transaction lengths (p99); with `fifo` it queues behind the whole flood.
// pool.tenant_max_backends caps what the flooder holds, checked in pg_stat_activity. One proxy and one set of
// logins: the three configurations are switched by live reload (which is also tested by this).
// Prints the table docs/operations.md "Operating the pool" shows.
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const FLOODERS = 200;
const FLOOD_TXN_S = 0.1;
const RUN_MS = 3000;

let t: TestProxy | null = null;
afterAll(async () => t?.close());

interface Run {
  p50: number;
  p99: number;
  quietTxns: number;
  floodTxns: number;
  floodMaxHeld: number;
}

describe('tenant fairness', () => {
  it('quiet tenant: p99 wait within a few flood transactions with fairness tenant, not with fifo; tenant_max_backends caps the flooder', async () => {
    t = await startTestProxy(primaryServer(), 'fairness', { pool: { size: 4, acquire_timeout_ms: 60_000, fairness: 'tenant' }, listen: { max_client_conn: 400 } });
    const admin = await t.admin();
    const flood: pg.Client[] = [];
    for (let i = 0; i < FLOODERS; i += 25) flood.push(...(await Promise.all(Array.from({ length: 25 }, () => t!.pgClient('flood')))));
    const quiet = await t.pgClient('quiet');
    await quiet.query('SELECT 1');

    const run = async (pool: Record<string, unknown>): Promise<Run> => {
      await t!.proxy.reload!({ ...t!.config, pool: { ...t!.config.pool, ...pool } });
      let stop = false;
      let floodTxns = 0;
      const flooding = flood.map(async (c) => {
        while (!stop) {
          await c.query('BEGIN');
          await c.query(`SELECT pg_sleep(${FLOOD_TXN_S}) /*flood*/`);
          await c.query('COMMIT');
          floodTxns++;
        }
      });
      let floodMaxHeld = 0;
      const sampler = (async () => {
        while (!stop) {
          // A flooder holds its backend from BEGIN to COMMIT: count backends whose last statement is the flood's.
          const r = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND state IN ('active', 'idle in transaction') AND query LIKE '%/*flood*/%'", [t!.poolUser]);
          floodMaxHeld = Math.max(floodMaxHeld, r.rows[0].n as number);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await new Promise((r) => setTimeout(r, 500)); // the flood fills the pool and the queue first
      const waits: number[] = [];
      const end = Date.now() + RUN_MS;
      while (Date.now() < end) {
        const started = performance.now();
        await quiet.query('SELECT 1');
        waits.push(performance.now() - started);
      }
      stop = true;
      await Promise.all([...flooding, sampler]);
      waits.sort((a, b) => a - b);
      const pct = (p: number) => Math.round(waits[Math.min(waits.length - 1, Math.floor((waits.length * p) / 100))]);
      return { p50: pct(50), p99: pct(99), quietTxns: waits.length, floodTxns, floodMaxHeld };
    };

    const tenant = await run({ fairness: 'tenant' });
    const fifo = await run({ fairness: 'fifo' });
    const capped = await run({ fairness: 'tenant', tenant_max_backends: 2 });
    const row = (name: string, r: Run) => `| ${name} | ${r.p50} | ${r.p99} | ${r.quietTxns} | ${r.floodTxns} | ${r.floodMaxHeld} |`;
    console.log(
      [
        '',
        `pool.size 4, ${FLOODERS} flood clients (BEGIN; pg_sleep(${FLOOD_TXN_S}); COMMIT), 1 quiet client (SELECT 1), ${RUN_MS} ms each:`,
        '| config | quiet wait p50 ms | quiet wait p99 ms | quiet txns | flood txns | flood max held |',
        '|---|---|---|---|---|---|',
        row('fairness: tenant', tenant),
        row('fairness: fifo', fifo),
        row('fairness: tenant, tenant_max_backends: 2', capped),
      ].join('\n'),
    );
    // A flood transaction is ≥ 100 ms; "a few" of them, generous for a loaded box.
    expect(tenant.p99).toBeLessThan(1000);
    expect(tenant.quietTxns).toBeGreaterThan(10);
    // FIFO: the quiet client waits behind ~200 flood transactions on 4 backends (≈ 5 s): far worse.
    expect(fifo.p50).toBeGreaterThan(tenant.p99);
    // The cap: the flooder never holds more than 2; the quiet tenant never waits for the flood.
    expect(capped.floodMaxHeld).toBeGreaterThan(0);
    expect(capped.floodMaxHeld).toBeLessThanOrEqual(2);
    expect(capped.p99).toBeLessThan(500);
  }, 90_000);
});
