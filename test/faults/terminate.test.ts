// Fault suite: a random backend is pg_terminate_backend'ed every 50 ms while 20 clients run BEGIN/…/COMMIT
// through a small pool (so backends are handed straight from one client to the next, with a FATAL often
// in the same network read as the ReadyForQuery). Every client operation must succeed or fail within a
// bounded time: none may hang. PGTP_FAULT_SECONDS sets the run length (short by default, for npm test).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const SECONDS = Number(process.env.PGTP_FAULT_SECONDS ?? 4);
const CLIENTS = 20;
/** An operation not settled after this long is a hang (generous: the machine is shared and loaded). */
const HANG_MS = 15_000;

describe('fault: random pg_terminate_backend under load', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'fault_terminate', { pool: { size: 4, acquire_timeout_ms: 5000 } });
  });
  afterAll(async () => t?.close());

  it(`every client succeeds or gets an error within ${HANG_MS} ms; none hangs (${SECONDS} s, ${CLIENTS} clients)`, async () => {
    const admin = await t.admin();
    let running = true;
    let terminated = 0;
    const killer = (async () => {
      while (running) {
        const r = await admin.query(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid() ORDER BY random() LIMIT 1`,
          [t.poolUser],
        );
        terminated += r.rowCount ?? 0;
        await new Promise((res) => setTimeout(res, 50));
      }
    })();

    let ok = 0;
    let failed = 0;
    const hangs: string[] = [];
    /** Runs one client operation with a hang detector; resolves 'ok' | 'error' | 'hang'. */
    const bounded = <T>(p: Promise<T>, what: string): Promise<'ok' | 'error' | 'hang'> =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          hangs.push(what);
          resolve('hang');
        }, HANG_MS);
        p.then(
          () => {
            clearTimeout(timer);
            resolve('ok');
          },
          () => {
            clearTimeout(timer);
            resolve('error');
          },
        );
      });

    const deadline = Date.now() + SECONDS * 1000;
    const worker = async (i: number): Promise<void> => {
      const tenant = i % 2 ? 'acme' : 'globex';
      while (Date.now() < deadline) {
        const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token(tenant) });
        c.on('error', () => {});
        if ((await bounded(c.connect(), `connect ${i}`)) !== 'ok') {
          await c.end().catch(() => {});
          continue;
        }
        let broken = false;
        while (!broken && Date.now() < deadline) {
          for (const [sql, what] of [
            ['BEGIN', 'BEGIN'],
            ["SELECT current_setting('app.current_tenant') AS t, pg_sleep(0.002)", 'SELECT'],
            ['COMMIT', 'COMMIT'],
          ] as const) {
            const r = await bounded(c.query(sql), `${what} ${i}`);
            if (r === 'ok') continue;
            broken = true;
            break;
          }
          if (broken) failed++;
          else ok++;
        }
        c.connection.stream.destroy();
        await c.end().catch(() => {});
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => worker(i)));
    running = false;
    await killer;
    expect(terminated).toBeGreaterThan(0);
    expect(hangs).toEqual([]);
    expect(ok).toBeGreaterThan(0);
    if (process.env.PGTP_FAULT_DEBUG) console.log({ ok, failed, terminated });
    // The proxy still serves after the storm.
    const c = await t.pgClient('acme');
    expect((await c.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('acme');
  }, 60_000 + SECONDS * 1000 + HANG_MS);
});
