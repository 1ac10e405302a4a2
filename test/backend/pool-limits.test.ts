// The pool limits of issue 12 against real PostgreSQL: the size + overflow cap in pg_stat_activity under
// load and churn, overflow closing, min_idle warm-up, recycling by age (never mid-transaction), pre-ping
// and invisible replacement of terminated idle backends, and saturation logs.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { backendCount, captureLogger, startTestProxy, type TestProxy } from '../support/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

let t: TestProxy | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});
afterAll(async () => t?.close());

describe('pool.size + pool.overflow', () => {
  it('opens overflow backends under load, never more than the cap, and closes them after overflow_idle_ms', async () => {
    t = await startTestProxy(primaryServer(), 'pool_limits_cap', { pool: { size: 3, overflow: 2, overflow_idle_ms: 400, acquire_timeout_ms: 30_000, max_lifetime_ms: 700 } });
    const admin = await t.admin();
    const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => t!.pgClient(i % 2 ? 'acme' : 'globex')));
    let maxSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxSeen = Math.max(maxSeen, await backendCount(admin, t!.poolUser));
        await sleep(5);
      }
    })();
    // max_lifetime_ms 700 adds churn: backends are recycled and replaced while the load runs.
    const until = Date.now() + 2500;
    const results = await Promise.all(
      clients.map(async (c) => {
        let n = 0;
        while (Date.now() < until) {
          await c.query('BEGIN');
          await c.query('SELECT pg_sleep(0.02)');
          await c.query('COMMIT');
          n++;
        }
        return n;
      }),
    );
    sampling = false;
    await sampler;
    expect(results.every((n) => n > 0)).toBe(true);
    expect(maxSeen).toBeGreaterThan(3); // overflow was used
    expect(maxSeen).toBeLessThanOrEqual(5); // never past the cap
    // Idle again: overflow backends go after overflow_idle_ms; the steady ones stay (idle_timeout_ms is 0).
    await untilCount(admin, (n) => n <= 3, 'overflow backends to close');
    expect(t.proxy.pool.stats().overflowOpen).toBe(0);
  }, 60_000);
});

describe('the cap during backend failures', () => {
  it('never exceeds size + overflow in pg_stat_activity while backends are terminated under load', async () => {
    t = await startTestProxy(primaryServer(), 'pool_limits_failures', { pool: { size: 3, overflow: 1, acquire_timeout_ms: 30_000 } });
    const admin = await t.admin();
    const sampler = await t.admin();
    let stop = false;
    let maxSeen = 0;
    let done = 0;
    const sampling = (async () => {
      while (!stop) {
        maxSeen = Math.max(maxSeen, await backendCount(sampler, t!.poolUser));
        await sleep(5);
      }
    })();
    const killing = (async () => {
      while (!stop) {
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 ORDER BY random() LIMIT 1', [t!.poolUser]);
        await sleep(100);
      }
    })();
    // A client whose transaction is hit gets an error and is replaced, as an application pool would.
    const end = Date.now() + 3000;
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        while (Date.now() < end) {
          const c = await t!.pgClient('acme');
          try {
            while (Date.now() < end) {
              await c.query('BEGIN');
              await c.query('SELECT pg_sleep(0.02)');
              await c.query('COMMIT');
              done++;
            }
          } catch {
            // terminated mid-transaction: next client
          }
        }
      }),
    );
    stop = true;
    await Promise.all([sampling, killing]);
    expect(done).toBeGreaterThan(10);
    expect(maxSeen).toBeLessThanOrEqual(4);
  }, 60_000);
});

async function untilCount(admin: Awaited<ReturnType<TestProxy['admin']>>, ok: (n: number) => boolean, what: string): Promise<void> {
  await until(what, async () => ok(await backendCount(admin, t!.poolUser)));
}

describe('pool.min_idle', () => {
  it('opens min_idle backends ahead of any client and keeps them ready after one is terminated', async () => {
    t = await startTestProxy(primaryServer(), 'pool_limits_minidle', { pool: { size: 4, min_idle: 2 } });
    const admin = await t.admin();
    await untilCount(admin, (n) => n === 2, 'two warm backends');
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [t.poolUser]);
    await sleep(300);
    await untilCount(admin, (n) => n === 2, 'two warm backends again');
    expect(t.proxy.pool.stats().idle).toBe(2);
  });
});

describe('pool.max_lifetime_ms', () => {
  it('replaces a backend older than the limit at its release, never inside a transaction', async () => {
    t = await startTestProxy(primaryServer(), 'pool_limits_lifetime', { pool: { size: 1, max_lifetime_ms: 800 } });
    const c = await t.pgClient('acme');
    const pid = async () => (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
    await c.query('BEGIN');
    const first = await pid();
    await sleep(1200); // past the lifetime, inside a transaction: the backend stays
    expect(await pid()).toBe(first);
    await c.query('COMMIT');
    expect(await pid()).not.toBe(first);
  });
});

describe('pool.pre_ping and dead idle backends', () => {
  for (const prePing of [true, false]) {
    it(`pre_ping ${prePing}: terminated idle backends are replaced without a client error`, async () => {
      const lines: Array<Record<string, unknown>> = [];
      t = await startTestProxy(primaryServer(), `pool_limits_ping_${prePing}`, { pool: { size: 4, pre_ping: prePing, pre_ping_after_ms: 0 }, logger: captureLogger(lines) });
      const admin = await t.admin();
      const clients = await Promise.all(Array.from({ length: 4 }, () => t!.pgClient('acme')));
      let errors = 0;
      const msgs: string[] = [];
      for (let round = 0; round < 5; round++) {
        await Promise.all(clients.map((c) => c.query('SELECT 1').catch(() => errors++)));
        // Every backend back in the pool (its reset done, no connect still under way), so all are idle when terminated.
        await until('backends idle', () => t!.proxy.pool.stats().busy === 0 && t!.proxy.pool.stats().connecting === 0);
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [t.poolUser]);
        // With pre_ping, wait until the backends are really gone (the signal is asynchronous): the ping, not
        // a retry, must then find every one of them dead. Without it, go at once, racing the terminations.
        if (prePing) await untilCount(admin, (n) => n === 0, 'terminated backends to exit');
        await Promise.all(clients.map((c) => c.query("SELECT current_setting('app.current_tenant') AS t").then((r) => expect(r.rows[0].t).toBe('acme')).catch((e: Error) => { errors++; msgs.push(e.message); })));
      }
      expect(msgs).toEqual([]);
      expect(errors).toBe(0);
      // With pre_ping (and the backends gone) the check catches them before a client gets them. Without it,
      // whether a retry or the idle socket's close catches a terminated backend is a race; the retry itself is
      // tested deterministically below.
      if (prePing) expect(lines.filter((l) => l.event === 'BACKEND_RETRY').length).toBe(0);
    });
  }
});

describe('transparent retry', () => {
  it('replays a transaction start whose backend dies in the tenant context prefix (57P01): the client sees nothing', async () => {
    // Deterministic: the backend is stopped, then told to terminate; the client's statement is written to it
    // while it is stopped; on SIGCONT it dies (FATAL 57P01) while running the prefix, before reading the rest.
    const lines: Array<Record<string, unknown>> = [];
    t = await startTestProxy(primaryServer(), 'pool_limits_retry', { pool: { size: 2 }, logger: captureLogger(lines) });
    const admin = await t.admin();
    await admin.query('CREATE TABLE IF NOT EXISTS retry_probe (v int)');
    await admin.query('GRANT ALL ON retry_probe TO PUBLIC');
    const c = await t.pgClient('acme');
    const first = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
    await until('backend idle', () => t!.proxy.pool.stats().busy === 0);
    process.kill(first, 'SIGSTOP');
    try {
      await admin.query('SELECT pg_terminate_backend($1)', [first]);
      const insert = c.query("INSERT INTO retry_probe VALUES (1) RETURNING pg_backend_pid() AS p, current_setting('app.current_tenant') AS t");
      await sleep(300);
      process.kill(first, 'SIGCONT');
      const r = await insert;
      expect(r.rows[0].p).not.toBe(first);
      expect(r.rows[0].t).toBe('acme');
    } finally {
      try {
        process.kill(first, 'SIGCONT'); // (already gone when the test passed)
      } catch {
        /* ESRCH */
      }
    }
    // Ran exactly once: the dead backend never executed it.
    expect((await admin.query('SELECT count(*)::int AS n FROM retry_probe')).rows[0].n).toBe(1);
    expect(lines.filter((l) => l.event === 'BACKEND_RETRY')).toHaveLength(1);
  });
});

describe('pool.pre_ping and an unresponsive backend', () => {
  // A backend that is connected but does not answer (a hung server, a dropped network path): the proxy
  // cannot see it from the idle socket. SIGSTOP makes one. With pre_ping, the check times out and the
  // client gets a fresh backend; without it the client's statement would hang on the stopped one.
  // afterMs 0: the backend is taken while its reset is still deferred (pool.reset_delay_ms), so that reset is
  // the check. afterMs 300 with 400 ms idle: pre_ping_after_ms measures the idle time before the acquire.
  for (const [prePing, afterMs] of [[true, 0], [true, 300], [false, 0]] as const) {
    it(`pre_ping ${prePing}${afterMs ? `, pre_ping_after_ms ${afterMs}` : ''}: ${prePing ? 'replaced within the ping bound' : 'the client hangs (why pre_ping exists)'}`, async () => {
      t = await startTestProxy(primaryServer(), `pool_limits_stopped_${prePing}_${afterMs}`, { pool: { size: 2, pre_ping: prePing, pre_ping_after_ms: afterMs, reset_timeout_ms: 800 } });
      const c = await t.pgClient('acme');
      const before = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
      await until('backend idle', () => t!.proxy.pool.stats().busy === 0 && t!.proxy.pool.stats().idle === 1);
      if (afterMs > 0) await sleep(afterMs + 100);
      process.kill(before, 'SIGSTOP');
      try {
        const started = Date.now();
        const r = await Promise.race([c.query('SELECT pg_backend_pid() AS p'), sleep(4000).then(() => null)]);
        if (prePing) {
          expect(r).not.toBeNull();
          expect(r!.rows[0].p).not.toBe(before);
          expect(Date.now() - started).toBeLessThan(3500);
        } else expect(r).toBeNull();
      } finally {
        process.kill(before, 'SIGCONT');
      }
    });
  }
});

describe('saturation', () => {
  it('logs POOL_SATURATED once above alert_threshold (cap and overflow) and POOL_RECOVERED once below; gauges show it', async () => {
    const lines: Array<Record<string, unknown>> = [];
    t = await startTestProxy(primaryServer(), 'pool_limits_saturation', { pool: { size: 2, overflow: 2, alert_threshold: 0.75, alert_recovery_ms: 150, overflow_idle_ms: 1500 }, logger: captureLogger(lines) });
    const events = () => lines.filter((l) => l.event === 'POOL_SATURATED' || l.event === 'POOL_RECOVERED').map((l) => `${l.event}:${l.kind}`);
    const clients = await Promise.all(Array.from({ length: 4 }, () => t!.pgClient('acme')));
    for (let round = 0; round < 3; round++) {
      await Promise.all(clients.map((c) => c.query('BEGIN')));
      expect(t.proxy.pool.stats().held).toBe(4);
      const metrics = await t.proxy.metrics.registry.metrics();
      expect(metrics).toMatch(/pgtp_pool_utilisation\{pool="[^"]+"\} 1\n/);
      expect(metrics).toMatch(/pgtp_pool_overflow_utilisation\{pool="[^"]+"\} 1\n/);
      await Promise.all(clients.map((c) => c.query('COMMIT')));
      // A dip shorter than alert_recovery_ms is no recovery (see the flapping test below); an idle gap is.
      await until(`round ${round} to recover`, () => events().filter((e) => e === 'POOL_RECOVERED:cap').length === round + 1);
    }
    // Each busy round saturates the cap and each idle gap recovers it (utilisation really drops to 0); the
    // overflow backends stay open across the rounds, so overflow saturates once and recovers once they close.
    expect(events().filter((e) => e.endsWith(':cap'))).toEqual(['POOL_SATURATED:cap', 'POOL_RECOVERED:cap', 'POOL_SATURATED:cap', 'POOL_RECOVERED:cap', 'POOL_SATURATED:cap', 'POOL_RECOVERED:cap']);
    expect(events().filter((e) => e === 'POOL_SATURATED:overflow')).toHaveLength(1);
    await until('overflow to recover', () => events().includes('POOL_RECOVERED:overflow'));
    expect(events().filter((e) => e === 'POOL_RECOVERED:overflow')).toHaveLength(1);
  });

  it('does not flap under a steady overload: one POOL_SATURATED while clients queue, however often backends change hands', async () => {
    const lines: Array<Record<string, unknown>> = [];
    t = await startTestProxy(primaryServer(), 'pool_limits_flapping', { pool: { size: 2, alert_threshold: 0.75, alert_recovery_ms: 2000 }, logger: captureLogger(lines) });
    const events = () => lines.filter((l) => l.event === 'POOL_SATURATED' || l.event === 'POOL_RECOVERED').map((l) => `${l.event}:${l.kind}`);
    const clients = await Promise.all(Array.from({ length: 6 }, () => t!.pgClient('acme')));
    // 6 clients on 2 backends, 100 short transactions each: the held count drops to 1 and 0 at each release.
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < 100; i++) await c.query('SELECT 1');
    }));
    expect(events()).toEqual(['POOL_SATURATED:cap']);
    await until('recovery once quiet', () => events().includes('POOL_RECOVERED:cap'), 10_000);
    expect(events()).toEqual(['POOL_SATURATED:cap', 'POOL_RECOVERED:cap']);
  });
});

describe('reconnect back-off', () => {
  it('logs BACKEND_UNREACHABLE once for repeated failed attempts, backing off between them', async () => {
    const lines: Array<Record<string, unknown>> = [];
    // Port 1 on loopback: connection refused at once.
    t = await startTestProxy(primaryServer(), 'pool_limits_backoff', { backend: { port: 1 }, logger: captureLogger(lines) });
    const attempts = async () => {
      for (let i = 0; i < 6; i++) {
        await t!.pgClient('acme').then(
          () => {},
          () => {},
        );
      }
    };
    const started = Date.now();
    await attempts();
    const failed = lines.filter((l) => l.event === 'BACKEND_CONNECT_FAILED').length;
    expect(failed).toBeGreaterThanOrEqual(3);
    expect(lines.filter((l) => l.event === 'BACKEND_UNREACHABLE')).toHaveLength(1);
    // Back-off: 6 attempts cannot all connect at once; at least 50 + 100 + 200 ms (half-jittered) were waited.
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });
});
