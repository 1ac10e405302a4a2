// Workers and issue 12's reload and drain: SIGHUP applies pool keys live in every worker (each on its share),
// and SIGTERM drains every worker (transactions in flight on both may commit, /readyz turns 503 at once)
// before the primary exits 0.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startClusterProxy, type ClusterProxy } from '../support/cluster.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('workers: 2, reload and drain', () => {
  let p: ClusterProxy | undefined;
  const clients: pg.Client[] = [];
  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.end()));
    await p?.stop('SIGKILL');
  });

  it('SIGHUP gives each worker its share of a new pool.overflow; SIGTERM lets transactions on both workers commit, then exit 0', { timeout: 90_000 }, async () => {
    p = await startClusterProxy(primaryServer(), 'cluster_drain_reload', { workers: 2, pool: { size: 4 }, shutdown: { drain_timeout_ms: 10_000 } });
    p.rewrite((tree) => {
      tree.pool.overflow = 2;
    });
    p.child.kill('SIGHUP');
    const reloads = (): Array<Record<string, unknown>> => p!.logs.filter((l) => l.event === 'RELOAD' && typeof l.worker === 'number' && l.pool_overflow !== undefined);
    for (let i = 0; i < 100 && reloads().length < 2; i++) await sleep(100);
    // share(2, 2, i) = 1 each: the workers together never exceed size + overflow.
    expect(reloads().map((l) => [l.worker, l.pool_size, l.pool_overflow]).sort()).toEqual([
      [0, 2, 1],
      [1, 2, 1],
    ]);

    // Transactions open on both workers (cancel-key pids name the worker: pid % 2).
    for (let i = 0; i < 6; i++) clients.push(await p.client('acme'));
    const pidOf = (c: pg.Client): number => (c as unknown as { processID: number }).processID;
    expect(new Set(clients.map((c) => pidOf(c) % 2))).toEqual(new Set([0, 1]));
    const open = [clients.find((c) => pidOf(c) % 2 === 0)!, clients.find((c) => pidOf(c) % 2 === 1)!];
    for (const c of open) await c.query('BEGIN; SELECT 1');

    const exit = p.stop('SIGTERM');
    let ready = 200;
    for (let i = 0; i < 50 && ready === 200; i++) {
      ready = (await p.http('/readyz').catch(() => ({ status: 0 }))).status;
      if (ready === 200) await sleep(50);
    }
    expect(ready).toBe(503);
    await sleep(500); // well inside drain_timeout_ms: the workers are draining, not stopped
    for (const c of open) expect((await c.query('SELECT 2 AS n')).rows[0].n).toBe(2);
    for (const c of open) await c.query('COMMIT');
    expect(await exit).toBe(0);
    expect(p.logs.filter((l) => l.event === 'DRAIN' && typeof l.worker === 'number').length).toBe(2);
  });
});
