// A deferred reset: with nobody waiting, a released backend's hand-over waits up to pool.reset_delay_ms to
// be pipelined in front of the next client (one round trip saved), but the session-level state a client
// left (advisory locks, LISTEN, temp tables) is released within that bound even if no client comes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each([
  { delay: 50, name: 'default' },
  { delay: 400, name: 'longer' },
])('deferred reset ($name: reset_delay_ms $delay)', ({ delay }) => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), `deferred_reset_${delay}`, { pool: { size: 1, ...(delay === 50 ? {} : { reset_delay_ms: delay }) } });
  });
  afterAll(async () => t?.close());

  const resets = async (mode: string) => (await t.proxy.metrics.resets.get()).values.find((v) => v.labels.mode === mode)?.value ?? 0;

  it('session-level advisory locks and temp tables are gone within the bound, with no other client', async () => {
    const admin = await t.admin();
    const c = await t.pgClient('acme');
    const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
    // One transaction (every new transaction would pipeline the pending reset in front of itself).
    await c.query('SELECT pg_advisory_lock(4242); CREATE TEMP TABLE left_behind (x int)');
    const released = Date.now();
    const state = async () =>
      (
        await admin.query(
          `SELECT (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND pid = $1) AS locks,
                  (SELECT count(*)::int FROM pg_class WHERE relname = 'left_behind' AND relpersistence = 't') AS temps`,
          [pid],
        )
      ).rows[0] as { locks: number; temps: number };
    // Still held right after the transaction: the reset is deferred (it would be pipelined if a client came).
    const early = await state();
    if (Date.now() - released < delay / 2) expect(early.locks).toBe(1);
    let s = early;
    while ((s.locks > 0 || s.temps > 0) && Date.now() - released < 5000) {
      await sleep(10);
      s = await state();
    }
    const took = Date.now() - released;
    expect(s).toEqual({ locks: 0, temps: 0 });
    expect(took).toBeGreaterThanOrEqual(delay - 20);
    expect(took).toBeLessThan(delay + 1500); // generous: a loaded, shared machine
  });

  it('a client that comes within the bound takes the backend with the reset pipelined (no extra round trip)', async () => {
    const c = await t.pgClient('acme');
    await c.query('SELECT pg_advisory_lock(4343)');
    const eager = await resets('eager');
    const pipelined = await resets('pipelined');
    const r = await c.query("SELECT (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND objid = 4343) AS locks, current_setting('app.current_tenant') AS t");
    expect(r.rows[0]).toEqual({ locks: 0, t: 'acme' });
    expect(await resets('pipelined')).toBe(pipelined + 1);
    expect(await resets('eager')).toBe(eager);
  });
});
