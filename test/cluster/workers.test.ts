// Two worker processes under one pool budget of 4: the budget holds in pg_stat_activity (under load and
// through a worker crash and its restart), every client sees its own tenant, cancels reach the right query
// whichever worker they land on, /metrics sums the workers, SIGHUP reloads and SIGTERM drains them all.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, primaryServer } from '../support/pg.js';
import { backendCount } from '../support/proxy.js';
import { metric, startClusterProxy, type ClusterProxy } from '../support/cluster.js';
import { sendCancel } from '../support/wire.js';

const TENANTS = ['acme', 'globex'];
const CHECK = "SELECT current_setting('app.current_tenant') AS t, (SELECT body FROM notes ORDER BY id LIMIT 1) AS note";
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
type Key = { processID: number; secretKey: number };
const key = (c: pg.Client): Key => c as unknown as Key;

/** Samples the pool user's backends in pg_stat_activity as fast as one connection allows, until stopped. */
function sampler(admin: pg.Client, poolUser: string): { stop(): Promise<{ max: number; samples: number }> } {
  let running = true;
  let max = 0;
  let samples = 0;
  let last = -1;
  const loop = (async () => {
    while (running) {
      const n = await backendCount(admin, poolUser);
      if (process.env.PGTP_SAMPLES && n !== last) console.log(Date.now(), n);
      last = n;
      max = Math.max(max, n);
      samples++;
      await sleep(2);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { max, samples };
    },
  };
}

describe('workers: 2 under pool.size 4', () => {
  let p: ClusterProxy;
  let admin: pg.Client;
  const clients: pg.Client[] = [];
  beforeAll(async () => {
    p = await startClusterProxy(primaryServer(), 'cluster_workers', { workers: 2, pool: { size: 4, acquire_timeout_ms: 20_000 } });
    admin = await adminClient(primaryServer(), p.database);
  });
  afterAll(async () => {
    if (process.env.PGTP_TEST_LOG) for (const l of p?.logs ?? []) if (!/CLIENT_|BACKEND_/.test(String(l.event))) console.log(JSON.stringify(l));
    await Promise.allSettled(clients.map((c) => c.end()));
    await admin?.end();
    await p?.stop('SIGKILL');
  });

  it('40 clients of two tenants: never more than 4 backends, every client sees its own tenant, /metrics sums the work', { timeout: 120_000 }, async () => {
    const before = (await p.http('/metrics')).body;
    const s = sampler(admin, p.poolUser);
    const wrong: string[] = [];
    const owners = new Set<number>();
    const ROUNDS = 15;
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const tenant = TENANTS[i % 2];
        const c = await p.client(tenant);
        clients.push(c);
        owners.add(key(c).processID % 2);
        for (let r = 0; r < ROUNDS; r++) {
          const row = (await c.query(`${CHECK}, pg_sleep(0.002)`)).rows[0];
          if (row.t !== tenant || row.note !== `${tenant} note`) wrong.push(`${tenant} saw ${JSON.stringify(row)}`);
        }
      }),
    );
    const { max, samples } = await s.stop();
    expect(wrong).toEqual([]);
    expect(owners).toEqual(new Set([0, 1])); // clients landed on both workers
    expect(samples).toBeGreaterThan(10);
    expect(max).toBeLessThanOrEqual(4);
    expect(max).toBeGreaterThanOrEqual(3); // the load did use the budget

    const after = (await p.http('/metrics')).body;
    expect(metric(after, 'pgtp_transactions_total') - metric(before, 'pgtp_transactions_total')).toBe(40 * ROUNDS);
    expect(metric(after, 'pgtp_client_logins_total') - metric(before, 'pgtp_client_logins_total')).toBe(40);
    expect(metric(after, 'pgtp_client_connections')).toBe(40);
    expect(metric(after, 'pgtp_pool_size')).toBe(4); // the shares 2 + 2
    expect(metric(after, 'pgtp_pool_open')).toBeLessThanOrEqual(4);
    expect(metric(after, 'pgtp_workers')).toBe(2);
    expect(after).toMatch(/pgtp_worker_up\{worker="0"\} 1/);
    expect(after).toMatch(/pgtp_worker_up\{worker="1"\} 1/);
    const health = await p.http('/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toBe('worker 0: ok\nworker 1: ok\n');
    await Promise.all(clients.splice(0).map((c) => c.end()));
  });

  it('a cancel from a fresh connection stops the right query whichever worker it lands on; a wrong key stops nothing', { timeout: 60_000 }, async () => {
    // Two clients owned by each worker (the key's pid says which: pid % workers).
    const byOwner: pg.Client[][] = [[], []];
    while (byOwner[0].length < 2 || byOwner[1].length < 2) {
      const c = await p.client('acme');
      clients.push(c);
      const o = key(c).processID % 2;
      if (byOwner[o].length < 2) byOwner[o].push(c);
    }
    const before = (await p.http('/metrics')).body;
    const all = [...byOwner[0], ...byOwner[1]];
    for (const [target, other] of [[0, 1], [1, 0]]) {
      const t0 = Date.now();
      const runs = all.map((c) => c.query('SELECT pg_sleep(3) AS slept').then(() => 'done', (e: { code?: string }) => e.code ?? 'error'));
      for (let i = 0; i < 200; i++) {
        const r = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND query LIKE 'SELECT pg_sleep(3)%' AND state = 'active'", [p.poolUser]);
        if (r.rows[0].n === 4) break;
        await sleep(25);
      }
      // Wrong secrets for the other worker's two clients, each sent twice (so to both workers).
      for (const c of byOwner[other]) {
        await sendCancel(p.port, key(c).processID, key(c).secretKey ^ 0x5a5a);
        await sendCancel(p.port, key(c).processID, key(c).secretKey ^ 0x5a5a);
      }
      // The right keys for one worker's two clients, once each, back to back: the cluster hands consecutive
      // connections to different workers, so one of the two lands on the worker that does not own it.
      for (const c of byOwner[target]) await sendCancel(p.port, key(c).processID, key(c).secretKey);
      const outcomes = await Promise.all(runs);
      const expected = all.map((c) => (byOwner[target].includes(c) ? '57014' : 'done'));
      expect(outcomes).toEqual(expected);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(2900); // the others really ran to the end
    }
    const after = (await p.http('/metrics')).body;
    const delta = (label: string): number => metric(after, `pgtp_cancel_requests_total{outcome="${label}"}`) - metric(before, `pgtp_cancel_requests_total{outcome="${label}"}`);
    expect(delta('routed_to_worker')).toBeGreaterThanOrEqual(2);
    expect(delta('forwarded')).toBe(4);
    expect(delta('unknown_key')).toBe(8);
    await Promise.all(clients.splice(0).map((c) => c.end()));
  });

  it('killing one worker mid-load loses only its clients; the budget holds while it restarts', { timeout: 120_000 }, async () => {
    const victim = 0;
    const victimPid = p.workerPid(victim)!;
    expect(victimPid).toBeGreaterThan(0);
    const s = sampler(admin, p.poolUser);
    let stopLoad = false;
    const errorsByOwner = [0, 0];
    const wrong: string[] = [];
    let doneAfterRestart = 0;
    let restarted = false;
    // Long statements on the victim's share: after the kill these backends would outlive the worker
    // (PostgreSQL notices a closed socket only when it next reads or writes it).
    const longOnVictim: pg.Client[] = [];
    while (longOnVictim.length < 2) {
      const c = await p.client('acme');
      clients.push(c);
      if (key(c).processID % 2 === victim) longOnVictim.push(c);
      else await c.end();
    }
    const longRuns = longOnVictim.map((c) => c.query('SELECT pg_sleep(8)').catch(() => 'lost'));
    await sleep(300);
    const loop = async (i: number): Promise<void> => {
      const tenant = TENANTS[i % 2];
      let c = await p.client(tenant);
      while (!stopLoad) {
        try {
          const row = (await c.query(`${CHECK}, pg_sleep(0.01)`)).rows[0];
          if (row.t !== tenant || row.note !== `${tenant} note`) wrong.push(`${tenant} saw ${JSON.stringify(row)}`);
          if (restarted) doneAfterRestart++;
        } catch {
          errorsByOwner[key(c).processID % 2]++;
          await c.end().catch(() => {});
          for (;;) {
            try {
              c = await p.client(tenant);
              break;
            } catch {
              await sleep(50);
            }
          }
        }
      }
      await c.end().catch(() => {});
    };
    const loops = Array.from({ length: 20 }, (_, i) => loop(i));
    await sleep(1000);
    process.kill(victimPid, 'SIGKILL');
    if (process.env.PGTP_SAMPLES) console.log('killed', Date.now());
    // /readyz reflects every worker: not ready while one is down. Then wait for the replacement.
    const down = await p.http('/readyz');
    expect(down.status).toBe(503);
    // Right after SIGKILL the primary may not have seen the exit yet: it then asks the dead worker, which
    // does not answer. Either way the worker is reported down.
    expect(down.body).toMatch(/worker 0: (not running|worker 0 did not answer within \d+ ms)/);
    for (let i = 0; i < 600 && !(p.workerPid(victim) !== victimPid && (await p.http('/readyz')).status === 200); i++) await sleep(100);
    expect(p.workerPid(victim)).not.toBe(victimPid);
    restarted = true;
    // Fresh clients: the cluster spreads them over both workers, so the replacement opens its own backends
    // now, while the dead worker's long statements would still be running had nobody ended them.
    loops.push(...Array.from({ length: 10 }, (_, i) => loop(i)));
    await sleep(3000);
    stopLoad = true;
    await Promise.all(loops);
    expect(await Promise.all(longRuns)).toEqual(['lost', 'lost']);
    const { max } = await s.stop();
    expect(wrong).toEqual([]);
    expect(errorsByOwner[1 - victim]).toBe(0); // the other worker's clients lost nothing
    expect(errorsByOwner[victim]).toBeGreaterThan(0);
    expect(doneAfterRestart).toBeGreaterThan(50);
    expect(max).toBeLessThanOrEqual(4);
    const m = (await p.http('/metrics')).body;
    expect(metric(m, `pgtp_worker_restarts_total{worker="${victim}"}`)).toBe(1);
    expect(p.logs.some((l) => l.event === 'WORKER_EXIT' && l.worker === 'primary' && l.dead_worker === victim)).toBe(true);
  });

  it('a worker that keeps dying is restarted with growing backoff', { timeout: 120_000 }, async () => {
    const delays: number[] = [];
    for (let round = 0; round < 3; round++) {
      const pid = p.workerPid(1)!;
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 600 && p.workerPid(1) === pid; i++) await sleep(50);
      expect(p.workerPid(1)).not.toBe(pid);
      delays.push(p.logs.filter((l) => l.event === 'WORKER_EXIT' && l.dead_worker === 1).pop()!.restart_in_ms as number);
    }
    // Deaths within 30 s of the start back off from 250 ms, doubling (the first of these restarted at once
    // if worker 1 had run for 30 s before, else it already counted as a quick death).
    expect(delays[1]).toBeGreaterThanOrEqual(250);
    expect(delays[0]).toBeLessThan(delays[1]);
    expect(delays[2]).toBe(2 * delays[1]);
    for (let i = 0; i < 600 && (await p.http('/readyz')).status !== 200; i++) await sleep(100);
    expect((await p.http('/readyz')).status).toBe(200);
  });

  it('SIGHUP reloads every worker (tenant.deny), SIGTERM drains them all and the primary exits 0', { timeout: 60_000 }, async () => {
    p.rewrite((tree) => {
      tree.tenant.deny = ['globex'];
    });
    p.child.kill('SIGHUP');
    // Four logins in a row land on both workers; once both have reloaded, all four are refused.
    let refused: string[] = [];
    for (let i = 0; i < 100; i++) {
      refused = await Promise.all(Array.from({ length: 4 }, () => p.client('globex').then((c) => (clients.push(c), 'in'), (e: Error) => e.message)));
      if (refused.every((r) => /suspended/.test(r))) break;
      await sleep(200);
    }
    expect(refused.every((r) => /suspended/.test(r))).toBe(true);
    expect(p.logs.filter((l) => l.event === 'RELOAD' && typeof l.worker === 'number' && Array.isArray(l.deny)).length).toBeGreaterThanOrEqual(2);
    const acme = await Promise.all(Array.from({ length: 4 }, () => p.client('acme')));
    clients.push(...acme);
    expect(new Set(acme.map((c) => key(c).processID % 2))).toEqual(new Set([0, 1]));
    const workers = [p.workerPid(0)!, p.workerPid(1)!];
    expect(await p.stop('SIGTERM')).toBe(0);
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
    expect(p.logs.filter((l) => l.event === 'SHUTDOWN' && typeof l.worker === 'number').length).toBe(2);
  });
});
