// Tenant fairness against real PostgreSQL (issue 12 item 3): one tenant floods the pool with 200 clients in
// long transactions; a quiet tenant runs one client of short transactions. With fairness `tenant` its acquire
// wait stays within a few transaction lengths (p99); with `fifo` it queues behind the whole flood.
// pool.tenant_max_backends caps what the flooder holds, checked in pg_stat_activity.
// Prints the table the README's "Operating the pool" section shows.
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const FLOODERS = 200;
const FLOOD_TXN_S = 0.1;
const RUN_MS = 3000;

let t: TestProxy | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});

interface Run {
  p50: number;
  p99: number;
  quietTxns: number;
  floodTxns: number;
  floodMaxHeld: number;
}

async function run(name: string, pool: Record<string, unknown>): Promise<Run> {
  t = await startTestProxy(primaryServer(), name, { pool: { size: 4, acquire_timeout_ms: 60_000, ...pool }, listen: { max_client_conn: 400 } });
  const admin = await t.admin();
  const flood: pg.Client[] = [];
  for (let i = 0; i < FLOODERS; i += 25) flood.push(...(await Promise.all(Array.from({ length: 25 }, () => t!.pgClient('flood')))));
  const quiet = await t.pgClient('quiet');
  await quiet.query('SELECT 1');
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
}

describe('tenant fairness', () => {
  const rows: string[] = [];
  it('keeps the quiet tenant’s wait p99 within a few flood transaction lengths; fifo does not', async () => {
    const tenant = await run('fair_tenant', { fairness: 'tenant' });
    rows.push(`| fairness: tenant | ${tenant.p50} | ${tenant.p99} | ${tenant.quietTxns} | ${tenant.floodTxns} | ${tenant.floodMaxHeld} |`);
    await t?.close();
    t = null;
    const fifo = await run('fair_fifo', { fairness: 'fifo' });
    rows.push(`| fairness: fifo | ${fifo.p50} | ${fifo.p99} | ${fifo.quietTxns} | ${fifo.floodTxns} | ${fifo.floodMaxHeld} |`);
    // A flood transaction is ≥ 100 ms; "a few" of them, generous for a loaded box.
    expect(tenant.p99).toBeLessThan(1000);
    expect(tenant.quietTxns).toBeGreaterThan(10);
    // FIFO: the quiet client waits behind ~200 flood transactions on 4 backends (≈ 5 s): far worse.
    expect(fifo.p50).toBeGreaterThan(tenant.p99);
  }, 90_000);

  it('pool.tenant_max_backends caps the flooder’s backends and leaves the rest for others', async () => {
    const capped = await run('fair_capped', { fairness: 'tenant', tenant_max_backends: 2 });
    rows.push(`| fairness: tenant, tenant_max_backends: 2 | ${capped.p50} | ${capped.p99} | ${capped.quietTxns} | ${capped.floodTxns} | ${capped.floodMaxHeld} |`);
    expect(capped.floodMaxHeld).toBeGreaterThan(0);
    expect(capped.floodMaxHeld).toBeLessThanOrEqual(2);
    // The quiet tenant never waits for the flood: two backends are always out of its reach.
    expect(capped.p99).toBeLessThan(500);
    console.log(
      ['', `pool.size 4, ${FLOODERS} flood clients (BEGIN; pg_sleep(${FLOOD_TXN_S}); COMMIT), 1 quiet client (SELECT 1), ${RUN_MS} ms:`, '| config | quiet wait p50 ms | quiet wait p99 ms | quiet txns | flood txns | flood max held |', '|---|---|---|---|---|---|', ...rows].join('\n'),
    );
  }, 60_000);
});
