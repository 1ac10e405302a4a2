// Fault suite: PostgreSQL restarted (fast and immediate shutdown) under load. Service resumes by itself,
// no client operation hangs (each completes or fails within a bound), and /readyz recovers with no traffic.
// Bounded for CI; PGTP_FAULT_SECONDS=N keeps restarting for about N seconds (long runs).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOwnPostgres, type OwnPostgres } from '../support/own-pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { readyz, waitFor } from '../support/readiness.js';

const FAULT_SECONDS = Number(process.env.PGTP_FAULT_SECONDS ?? 0);
const CLIENTS = 12;
/** No client operation (connect or query) may take longer than this, database down or not. */
const OP_BOUND_MS = 20_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Stats {
  ok: number;
  errors: Map<string, number>;
  hangs: string[];
  /** Per client: when its last successful transaction finished. */
  lastOk: number[];
}

/** Runs `op` with a deadline; a miss is recorded as a hang (the operation is then abandoned). */
async function bounded<T>(stats: Stats, what: string, op: Promise<T>): Promise<T> {
  let timer!: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      stats.hangs.push(what);
      reject(new Error(`${what} did not settle within ${OP_BOUND_MS} ms`));
    }, OP_BOUND_MS);
  });
  try {
    return await Promise.race([op, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** One client: connects, runs small transactions, reconnects after any error, until `running()` is false. */
async function clientLoop(t: TestProxy, token: string, id: number, stats: Stats, running: () => boolean): Promise<void> {
  let c: pg.Client | null = null;
  while (running()) {
    try {
      if (!c) {
        const fresh = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: token });
        fresh.on('error', () => {});
        c = fresh;
        await bounded(stats, `client ${id} connect`, fresh.connect());
      }
      const conn = c;
      await bounded(stats, `client ${id} BEGIN`, conn.query('BEGIN'));
      await bounded(stats, `client ${id} SELECT`, conn.query('SELECT count(*) FROM orders'));
      await bounded(stats, `client ${id} COMMIT`, conn.query('COMMIT'));
      stats.ok++;
      stats.lastOk[id] = Date.now();
    } catch (e) {
      const code = (e as { code?: string }).code ?? (e as Error).message.slice(0, 40);
      stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1);
      const dead = c;
      c = null;
      void dead?.end().catch(() => {});
      await sleep(50);
    }
  }
  await c?.end().catch(() => {});
}

describe('PostgreSQL restarts under load', () => {
  let pgs: OwnPostgres;
  let t: TestProxy;
  beforeAll(async () => {
    process.env.PGTP_ADMIN_EPHEMERAL = '1';
    pgs = await startOwnPostgres('fault_restart');
    t = await startTestProxy(pgs.server, 'fault_restart', {
      pool: { size: 4, acquire_timeout_ms: 3000 },
      backend: { connect_timeout_ms: 2000 },
    });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await pgs?.destroy();
  });

  it(
    'fast and immediate restarts: every operation settles within the bound, all clients resume, /readyz recovers with no traffic',
    async () => {
      const token = await t.token('acme');
      const stats: Stats = { ok: 0, errors: new Map(), hangs: [], lastOk: Array(CLIENTS).fill(0) };
      let run = true;
      const loops = Array.from({ length: CLIENTS }, (_, i) => clientLoop(t, token, i, stats, () => run));

      const until = Date.now() + FAULT_SECONDS * 1000;
      let cycle = 0;
      do {
        for (const mode of ['fast', 'immediate'] as const) {
          await waitFor(async () => stats.ok > 0, 10_000);
          const before = stats.ok;
          await sleep(300);
          expect(stats.ok, 'load is flowing before the restart').toBeGreaterThan(before);
          await pgs.stop(mode);
          await sleep(500);
          await pgs.start();
          // Service resumes by itself: every client completes a transaction after the restart.
          const restarted = Date.now();
          const resumed = await waitFor(async () => stats.lastOk.every((at) => at > restarted), 30_000);
          expect(resumed, `all clients resume after the ${mode} restart (cycle ${cycle}); errors ${JSON.stringify([...stats.errors])}`).toBe(true);
        }
        cycle++;
      } while (Date.now() < until);

      run = false;
      await Promise.all(loops);
      expect(stats.hangs, 'client operations that did not settle within the bound').toEqual([]);
      expect(stats.ok).toBeGreaterThan(0);

      // An outage during which one client fails to get a backend; then no traffic at all: recovery by itself.
      const admin = t.proxy.adminPort!;
      expect(await readyz(admin)).toBe(200);
      await pgs.stop('immediate');
      const failing = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: token });
      failing.on('error', () => {});
      const failed = await bounded(stats, 'login during the outage', failing.connect().then(() => failing.query('SELECT 1'))).then(
        () => false,
        () => true,
      );
      await failing.end().catch(() => {});
      expect(failed, 'a query while the database is down fails (within the bound)').toBe(true);
      expect(await waitFor(async () => (await readyz(admin)) === 503, 10_000)).toBe(true);
      await pgs.start();
      expect(await waitFor(async () => (await readyz(admin)) === 200, 15_000)).toBe(true);
      // And a client gets served right away.
      const c = await t.pgClient('acme');
      expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    },
    180_000 + FAULT_SECONDS * 1000,
  );
});
