// Operations under fault: what an on-call engineer meets when the database misbehaves, the pool runs dry,
// the config is reloaded, or the proxy is stopped. Each asserts the behaviour an SRE expects (PgBouncer's as
// the baseline): no client hangs, errors carry the SQLSTATE a driver expects and a message that says what is
// wrong, the backend count stays within the cap, and gauges come back to rest.
import net from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { backendCount, captureLogger, startTestProxy, type TestProxy } from '../support/proxy.js';
import { readyz, waitFor } from '../support/readiness.js';
import { fdsSettle, openFds } from '../support/fds.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
process.env.PGTP_ADMIN_EPHEMERAL = '1';

/** A TCP server that accepts connections and never answers (a hung backend); `delayMs` answers nothing either. */
async function blackHole(): Promise<{ port: number; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return {
    port: (srv.address() as net.AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; severity?: string; message: string } | null> {
  try {
    await p;
    return null;
  } catch (e) {
    return e as { code?: string; severity?: string; message: string };
  }
}

let t: TestProxy | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});
afterAll(async () => t?.close());

describe('hung backend (accepts TCP, never answers)', () => {
  it('a client that waits longer than acquire_timeout_ms for a backend still connecting is told the database is not answering, not to raise pool.size', async () => {
    const hole = await blackHole();
    try {
      t = await startTestProxy(primaryServer(), 'hunt_hung_acq', {
        pool: { size: 2, acquire_timeout_ms: 800 },
        backend: { port: hole.port, connect_timeout_ms: 3000 },
      });
      const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') });
      c.on('error', () => {});
      const started = Date.now();
      const e = await errorOf(c.connect());
      expect(e).not.toBeNull();
      expect(Date.now() - started).toBeLessThan(5000);
      // The message must point at the database, not at pool sizing: no backend was ever open.
      expect(e!.message).not.toMatch(/raise pool\.size/);
      expect(e!.message).toMatch(/slow to accept logins \(backend\.connect_timeout_ms 3000\)/);
    } finally {
      await hole.close();
    }
  });

  it('connect_timeout_ms bounds the login; /readyz turns 503; the hung sockets are closed', async () => {
    const hole = await blackHole();
    try {
      t = await startTestProxy(primaryServer(), 'hunt_hung', {
        pool: { size: 2, acquire_timeout_ms: 5000 },
        backend: { port: hole.port, connect_timeout_ms: 700 },
      });
      process.env.PGTP_ADMIN_EPHEMERAL = '1';
      const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') });
      c.on('error', () => {});
      const started = Date.now();
      const e = await errorOf(c.connect());
      expect(e?.code).toBe('08006');
      expect(e?.message).toMatch(/timed out/);
      expect(Date.now() - started).toBeLessThan(3000);
      // A database that does not answer is not ready (a refused login for a limit with backends open is: below).
      expect(await waitFor(async () => (await readyz(t!.proxy.adminPort!)) === 503, 3000)).toBe(true);
      await sleep(200);
      expect(hole.sockets.size).toBeLessThanOrEqual(1); // readiness probe at most
    } finally {
      await hole.close();
    }
  });
});

describe('database full (53300 on backend login)', () => {
  it('with a connection limit reached while the pool already serves: a waiter timing out is told the server refuses, not to raise pool.size', async () => {
    process.env.PGTP_ADMIN_EPHEMERAL = '1';
    t = await startTestProxy(primaryServer(), 'hunt_full', { pool: { size: 4, acquire_timeout_ms: 1500 } });
    const admin = await t.admin();
    await admin.query(`ALTER ROLE ${t.poolUser} CONNECTION LIMIT 2`);
    try {
      const a = await t.pgClient('acme');
      const b = await t.pgClient('acme');
      await a.query('BEGIN');
      await b.query('BEGIN');
      expect(await backendCount(admin, t.poolUser)).toBe(2);
      const w = await t.pgClient('globex');
      const e = await errorOf(w.query('SELECT 1'));
      expect(e?.code).toBe('53300');
      // Server says "too many connections for role": the waiter must learn that the database refused, not "raise pool.size".
      expect(e!.message).toMatch(/opening a new backend connection failed: .*too many connections for role/);
      expect(e!.message).not.toMatch(/raise pool\.size/);
      await a.query('COMMIT');
      await b.query('COMMIT');
      expect((await a.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await admin.query(`ALTER ROLE ${t.poolUser} CONNECTION LIMIT -1`);
    }
  });
});

describe('wrong backend password', () => {
  it('clients get 08004 with the server reason; /readyz 503', async () => {
    process.env.PGTP_ADMIN_EPHEMERAL = '1';
    const lines: Array<Record<string, unknown>> = [];
    t = await startTestProxy(primaryServer(), 'hunt_badpw', { backend: { password: 'wrong-password' }, logger: captureLogger(lines) });
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') });
    c.on('error', () => {});
    const e = await errorOf(c.connect());
    expect(e?.code).toBe('08004');
    expect(e?.message).toMatch(/^the database refused a new backend connection: .*password authentication failed/);
    expect(await waitFor(async () => (await readyz(t!.proxy.adminPort!)) === 503, 3000)).toBe(true);
  });
});

describe('reload of keys that need a restart', () => {
  it('a changed tenant.search_path or tenant.proof_key is named in RELOAD_NEEDS_RESTART, and the merged config (SHOW CONFIG) keeps the running value', async () => {
    const lines: Array<Record<string, unknown>> = [];
    t = await startTestProxy(primaryServer(), 'hunt_reload_tenant', { logger: captureLogger(lines) });
    const next = {
      ...t.config,
      tenant: { ...t.config.tenant, search_path: 'other_{tenant}, public', proof_key: 'a-rotated-proof-key-that-is-at-least-32-bytes', deny: ['globex'] },
      log: { level: 'debug' as const },
    };
    await t.proxy.reload!(next);
    // tenant.deny applies live ...
    const g = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('globex') });
    g.on('error', () => {});
    expect((await errorOf(g.connect()))?.code).toBe('28000');
    // ... the others do not (logins use the start-up values), so the operator must be told so.
    const c = await t.pgClient('acme');
    expect((await c.query('SHOW search_path')).rows[0].search_path).toBe('"tenant_acme", public');
    const warn = lines.find((l) => l.event === 'RELOAD_NEEDS_RESTART');
    expect(warn?.keys).toEqual(expect.arrayContaining(['tenant.search_path', 'tenant.proof_key']));
    // SHOW CONFIG reads the merged config: it must show what runs, not what the file says.
    const { mergeReload } = await import('../../src/reload.js');
    expect(mergeReload(t.config, next).merged.tenant).toEqual({ ...t.config.tenant, deny: ['globex'] });
  });
});

describe('readiness while the database refuses new logins but the pool serves', () => {
  it('/readyz stays 200 while open backends serve clients (a failed overflow login must not pull every replica out of the load balancer)', async () => {
    process.env.PGTP_ADMIN_EPHEMERAL = '1';
    t = await startTestProxy(primaryServer(), 'hunt_full_ready', { pool: { size: 4, acquire_timeout_ms: 600 } });
    const admin = await t.admin();
    try {
      const a = await t.pgClient('acme');
      const b = await t.pgClient('acme');
      await a.query('BEGIN');
      await b.query('BEGIN');
      await admin.query(`ALTER ROLE ${t.poolUser} CONNECTION LIMIT 2`);
      const w = await t.pgClient('globex');
      await errorOf(w.query('SELECT 1'));
      await a.query('COMMIT');
      await b.query('COMMIT');
      // Traffic is served by the two backends.
      for (let i = 0; i < 5; i++) expect((await a.query('SELECT 1 AS one')).rows[0].one).toBe(1);
      expect(await readyz(t.proxy.adminPort!)).toBe(200);
    } finally {
      await admin.query(`ALTER ROLE ${t.poolUser} CONNECTION LIMIT -1`);
    }
  });
});

describe('a client that never reads a large result', () => {
  it('the proxy stops reading the backend: its memory stays bounded, the backend is released when the client goes', async () => {
    t = await startTestProxy(primaryServer(), 'hunt_slow_reader', { pool: { size: 2 } });
    const token = await t.token('acme');
    // A raw client: startup, password, then a query whose 200 MB answer it never reads.
    const s = net.connect(t.proxy.port, '127.0.0.1');
    await new Promise<void>((r) => s.once('connect', () => r()));
    const startup = (() => {
      const params = Buffer.from(`user\0app\0database\0${t!.database}\0\0`);
      const b = Buffer.alloc(8 + params.length);
      b.writeInt32BE(b.length, 0);
      b.writeInt32BE(196608, 4);
      params.copy(b, 8);
      return b;
    })();
    s.write(startup);
    let got = '';
    await new Promise<void>((r) => {
      const on = (d: Buffer) => {
        got += d.toString('latin1');
        if (d.includes(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]))) {
          const pw = Buffer.from(token + '\0');
          const m = Buffer.alloc(5 + pw.length);
          m[0] = 0x70;
          m.writeInt32BE(4 + pw.length, 1);
          pw.copy(m, 5);
          s.write(m);
        }
        if (got.includes('Z\0\0\0\x05I')) {
          s.off('data', on);
          r();
        }
      };
      s.on('data', on);
    });
    s.pause();
    const sql = Buffer.from("SELECT repeat('x', 1000000) FROM generate_series(1, 200)\0");
    const q = Buffer.alloc(5 + sql.length);
    q[0] = 0x51;
    q.writeInt32BE(4 + sql.length, 1);
    sql.copy(q, 5);
    global.gc?.();
    const before = process.memoryUsage();
    s.write(q);
    let peak = 0;
    for (let i = 0; i < 30; i++) {
      await sleep(100);
      const m = process.memoryUsage();
      peak = Math.max(peak, m.rss - before.rss, m.external + m.arrayBuffers - before.external - before.arrayBuffers);
    }
    expect(peak / 2 ** 20).toBeLessThan(60);
    expect(t.proxy.pool.stats().held).toBe(1);
    s.destroy();
    await waitFor(async () => t!.proxy.pool.stats().held === 0, 5000);
    expect(t.proxy.pool.stats().held).toBe(0);
  });
});

describe('workers: 2, signals', () => {
  it('a second SIGTERM stops at once: the primary exits 0 and takes its workers with it (none orphaned)', { timeout: 90_000 }, async () => {
    const { startClusterProxy } = await import('../support/cluster.js');
    const p = await startClusterProxy(primaryServer(), 'hunt_cluster_sig2', { workers: 2, shutdown: { drain_timeout_ms: 20_000 } });
    const workers = [p.workerPid(0)!, p.workerPid(1)!];
    const clients = await Promise.all(Array.from({ length: 2 }, () => p.client('acme')));
    for (const c of clients) await c.query('BEGIN');
    const exit = new Promise<{ code: number | null; signal: string | null }>((r) => p.child.once('exit', (code, signal) => r({ code, signal })));
    p.child.kill('SIGTERM');
    await sleep(500);
    const t0 = Date.now();
    p.child.kill('SIGTERM');
    const { code, signal } = await Promise.race([exit, sleep(10_000).then(() => ({ code: -1, signal: 'still running' }))]);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(5000);
    // The workers are gone too, not left draining for drain_timeout_ms without a supervisor.
    await sleep(1000);
    const alive = workers.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    for (const pid of alive) process.kill(pid, 'SIGKILL');
    expect(alive).toEqual([]);
    for (const c of clients) await c.end().catch(() => {});
  });
});

describe('workers: 2, reloaded drain timeout', () => {
  it('a shutdown.drain_timeout_ms raised by SIGHUP also moves the primary\'s SIGKILL deadline: a transaction may commit within the new one', { timeout: 90_000 }, async () => {
    const { startClusterProxy } = await import('../support/cluster.js');
    const p = await startClusterProxy(primaryServer(), 'hunt_cluster_drain', { workers: 2, shutdown: { drain_timeout_ms: 300 } });
    try {
      p.rewrite((tree) => {
        tree.shutdown.drain_timeout_ms = 15_000;
      });
      p.child.kill('SIGHUP');
      await waitFor(async () => p.logs.filter((l) => l.event === 'RELOAD' && typeof l.worker === 'number' && 'pool_size' in l).length >= 2, 10_000);
      const c = await p.client('acme');
      await c.query('BEGIN');
      await c.query('SELECT 1');
      const exit = new Promise<number | null>((r) => p.child.once('exit', (code) => r(code)));
      p.child.kill('SIGTERM');
      // Past the old deadline (300 ms + the primary's 5 s margin), well within the new 15 s.
      await sleep(7000);
      const e = await errorOf(c.query('COMMIT'));
      expect(e).toBeNull();
      expect(await exit).toBe(0);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});

/** A raw client: startup, cleartext password (the token); resolves once ReadyForQuery arrives. */
async function rawLogin(port: number, database: string, token: string): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await new Promise<void>((r, j) => {
    s.once('connect', () => r());
    s.once('error', j);
  });
  const params = Buffer.from(`user\0app\0database\0${database}\0\0`);
  const b = Buffer.alloc(8 + params.length);
  b.writeInt32BE(b.length, 0);
  b.writeInt32BE(196608, 4);
  params.copy(b, 8);
  s.write(b);
  let got = Buffer.alloc(0);
  await new Promise<void>((r, j) => {
    const on = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.includes(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])) && !(s as unknown as { pwSent?: boolean }).pwSent) {
        (s as unknown as { pwSent?: boolean }).pwSent = true;
        const pw = Buffer.from(token + '\0');
        const m = Buffer.alloc(5 + pw.length);
        m[0] = 0x70;
        m.writeInt32BE(4 + pw.length, 1);
        pw.copy(m, 5);
        s.write(m);
      }
      if (got.includes(Buffer.from('Z\0\0\0\x05I', 'latin1'))) {
        s.off('data', on);
        r();
      }
      if (got[0] === 0x45) j(new Error(got.toString('latin1')));
    };
    s.on('data', on);
    s.once('close', () => j(new Error('closed during login')));
  });
  return s;
}

describe('many idle and silent clients', () => {
  it('3,000 logged-in idle clients cost little memory each, hold no backend, and their fds come back', { timeout: 120_000 }, async () => {
    t = await startTestProxy(primaryServer(), 'hunt_idle_many', { pool: { size: 2 }, listen: { max_client_conn: 5000 } });
    const token = await t.token('acme');
    const fds0 = openFds();
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    const socks: net.Socket[] = [];
    for (let i = 0; i < 30; i++) socks.push(...(await Promise.all(Array.from({ length: 100 }, () => rawLogin(t!.proxy.port, t!.database, token)))));
    await sleep(500);
    const perClientKb = (process.memoryUsage().rss - rss0) / socks.length / 1024;
    if (process.env.PGTP_HUNT_DEBUG) console.log({ perClientKb });
    expect(t.proxy.pool.stats().open).toBeLessThanOrEqual(2);
    expect(perClientKb).toBeLessThan(64);
    const m = await t.proxy.metrics.registry.metrics();
    expect(m).toMatch(/pgtp_client_connections 3000\n/);
    for (const s of socks) s.destroy();
    expect(await fdsSettle(fds0 + 5)).toBeLessThanOrEqual(fds0 + 5);
    await waitFor(async () => /pgtp_client_connections 0\n/.test(await t!.proxy.metrics.registry.metrics()), 5000);
    expect(await t.proxy.metrics.registry.metrics()).toMatch(/pgtp_client_connections 0\n/);
  });

  it('500 connections that send nothing are cut at listen.startup_timeout_ms with 08P01 and their slots and fds come back', { timeout: 60_000 }, async () => {
    t = await startTestProxy(primaryServer(), 'hunt_silent', { listen: { startup_timeout_ms: 800, max_client_conn: 600 } });
    const fds0 = openFds();
    const socks = await Promise.all(
      Array.from({ length: 500 }, () => new Promise<net.Socket>((r) => {
        const s = net.connect(t!.proxy.port, '127.0.0.1');
        s.on('error', () => {});
        s.once('connect', () => r(s));
      })),
    );
    const answers = socks.map((s) => new Promise<string>((r) => {
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      s.once('close', () => r(got));
    }));
    const t0 = Date.now();
    const all = await Promise.race([Promise.all(answers), sleep(5000).then(() => null)]);
    expect(all, 'every silent connection closed within 5 s').not.toBeNull();
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(all!.every((a) => a.includes('08P01'))).toBe(true);
    expect(await fdsSettle(fds0 + 5)).toBeLessThanOrEqual(fds0 + 5);
    // The slots came back: a real client logs in.
    const c = await t.pgClient('acme');
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });
});

describe('pool.max_waiting edges', () => {
  it('max_waiting 0 ("a client never waits") still lets the pool open backends below the cap', async () => {
    t = await startTestProxy(primaryServer(), 'hunt_maxwait0', { pool: { size: 2, max_waiting: 0 } });
    const c = await t.pgClient('acme');
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    const d = await t.pgClient('globex');
    await c.query('BEGIN');
    expect((await d.query('SELECT 2 AS two')).rows[0].two).toBe(2);
  });

  it('past max_waiting a client gets 53300 at once with a message naming the key; gauges return to rest', async () => {
    t = await startTestProxy(primaryServer(), 'hunt_maxwait', { pool: { size: 1, max_waiting: 2, acquire_timeout_ms: 10_000 } });
    const holder = await t.pgClient('acme');
    await holder.query('BEGIN');
    const waiters = await Promise.all([1, 2].map(() => t!.pgClient('globex')));
    const runs = waiters.map((w) => w.query('SELECT 1'));
    await sleep(100);
    const third = await t.pgClient('globex');
    const t0 = Date.now();
    const e = await errorOf(third.query('SELECT 1'));
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(e?.code).toBe('53300');
    expect(e?.message).toMatch(/pool\.max_waiting/);
    await holder.query('COMMIT');
    await Promise.all(runs);
    const m = await t.proxy.metrics.registry.metrics();
    expect(m).toMatch(/pgtp_pool_waiting\{[^}]*\} 0\n/);
    expect(m).toMatch(/pgtp_pool_busy\{[^}]*\} 0\n/);
  });
});

describe('PostgreSQL restart under load: gauges and fds come back to rest', () => {
  it('after an immediate restart under load and a quiet period, waiting/busy/held/connecting are 0, backends ≤ size, fds at baseline', { timeout: 120_000 }, async () => {
    const { startOwnPostgres } = await import('../support/own-pg.js');
    const pgs = await startOwnPostgres('hunt_restart');
    try {
      t = await startTestProxy(pgs.server, 'hunt_restart', { pool: { size: 3, acquire_timeout_ms: 1500 }, backend: { connect_timeout_ms: 1000 } });
      const token = await t.token('acme');
      const fds0 = openFds();
      let run = true;
      const hangs: string[] = [];
      const loop = async (i: number) => {
        while (run) {
          const c = new pg.Client({ host: '127.0.0.1', port: t!.proxy.port, database: t!.database, user: 'app', password: token });
          c.on('error', () => {});
          const op = (async () => {
            await c.connect();
            for (let k = 0; k < 5 && run; k++) {
              await c.query('BEGIN');
              await c.query('SELECT pg_sleep(0.01)');
              await c.query('COMMIT');
            }
          })();
          const r = await Promise.race([op.then(() => 'ok', () => 'err'), sleep(15_000).then(() => 'hang')]);
          if (r === 'hang') hangs.push(`client ${i}`);
          await c.end().catch(() => {});
          if (r !== 'ok') await sleep(50);
        }
      };
      const loops = Array.from({ length: 10 }, (_, i) => loop(i));
      await sleep(800);
      await pgs.stop('immediate');
      await sleep(1500);
      await pgs.start();
      await sleep(2500);
      run = false;
      await Promise.all(loops);
      expect(hangs).toEqual([]);
      await sleep(500);
      const s = t.proxy.pool.stats();
      expect({ waiting: s.waiting, busy: s.busy, held: s.held, connecting: s.connecting }).toEqual({ waiting: 0, busy: 0, held: 0, connecting: 0 });
      expect(s.open).toBeLessThanOrEqual(3);
      const m = await t.proxy.metrics.registry.metrics();
      expect(m).toMatch(/pgtp_client_connections 0\n/);
      expect(m).toMatch(/pgtp_backends\{state="connecting"\} 0\n/);
      expect(m).toMatch(/pgtp_backends\{state="active"\} 0\n/);
      expect(await fdsSettle(fds0 + 3)).toBeLessThanOrEqual(fds0 + 3);
      const admin = await t.admin();
      expect(await backendCount(admin, t.poolUser)).toBeLessThanOrEqual(3);
    } finally {
      await t?.close();
      t = null;
      await pgs.destroy();
    }
  });
});

describe('workers: 2, console RELOAD', () => {
  it('RELOAD in the console reloads every worker, as SIGHUP does (a tenant added to tenant.deny is refused on both; SHOW WORKERS shows the new shares)', { timeout: 90_000 }, async () => {
    const { startClusterProxy, metric } = await import('../support/cluster.js');
    const { makeVerifier } = await import('../../src/auth/scram.js');
    const p = await startClusterProxy(primaryServer(), 'hunt_cluster_reload', {
      workers: 2,
      users: [{ name: 'sre', scram: await makeVerifier('sre-password-123'), tenant: 'none', admin: true }],
    });
    const opened: pg.Client[] = [];
    try {
      p.rewrite((tree) => {
        tree.tenant.deny = ['globex'];
        tree.pool.size = 6;
      });
      const con = new pg.Client({ host: '127.0.0.1', port: p.port, database: 'pgtenantproxy', user: 'sre', password: 'sre-password-123' });
      await con.connect();
      opened.push(con);
      await con.query('RELOAD');
      await sleep(500);
      // Eight logins land on both workers: every one must be refused.
      const outcomes = await Promise.all(
        Array.from({ length: 8 }, () =>
          p.client('globex').then(
            (c) => (opened.push(c), 'admitted'),
            (e: Error) => (/suspended/.test(e.message) ? 'refused' : e.message),
          ),
        ),
      );
      expect(outcomes.filter((o) => o === 'admitted')).toEqual([]);
      // SHOW WORKERS shows each worker's share of the reloaded pool.size (6 over 2), as /metrics does.
      const shares = (await con.query('SHOW WORKERS')).rows.map((r: { pool_share: number }) => Number(r.pool_share));
      expect(shares).toEqual([3, 3]);
      expect(metric((await p.http('/metrics')).body, 'pgtp_pool_size')).toBe(6);
    } finally {
      for (const c of opened) await c.end().catch(() => {});
      await p.stop('SIGKILL');
    }
  });
});

describe('workers: 2, console state across a worker restart', () => {
  it('a tenant suspended with SUSPEND TENANT stays suspended on a worker restarted after kill -9, and PAUSE holds the replacement', { timeout: 120_000 }, async () => {
    const { startClusterProxy } = await import('../support/cluster.js');
    const { makeVerifier } = await import('../../src/auth/scram.js');
    const p = await startClusterProxy(primaryServer(), 'hunt_cluster_state', {
      workers: 2,
      users: [{ name: 'sre', scram: await makeVerifier('sre-password-123'), tenant: 'none', admin: true }],
    });
    const opened: pg.Client[] = [];
    try {
      const con = new pg.Client({ host: '127.0.0.1', port: p.port, database: 'pgtenantproxy', user: 'sre', password: 'sre-password-123' });
      await con.connect();
      opened.push(con);
      await con.query('SUSPEND TENANT globex');
      const selfRow = (await con.query('SHOW WORKERS')).rows.find((r: { self: string }) => r.self === 'yes') as { worker: number };
      // Kill the worker the console is not on, and wait for its replacement.
      const victim = 1 - Number(selfRow.worker);
      const pid = p.workerPid(victim)!;
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 300 && !(p.workerPid(victim) !== pid && (await p.http('/readyz')).status === 200); i++) await sleep(100);
      expect(p.workerPid(victim)).not.toBe(pid);
      const outcomes = await Promise.all(
        Array.from({ length: 8 }, () =>
          p.client('globex').then(
            async (c) => {
              opened.push(c);
              return c.query('SELECT 1').then(() => 'served', (e: Error) => (/suspended/.test(e.message) ? 'refused' : e.message));
            },
            (e: Error) => (/suspended/.test(e.message) ? 'refused' : e.message),
          ),
        ),
      );
      expect(outcomes.filter((o) => o !== 'refused')).toEqual([]);

      // PAUSE (for a failover) and a worker crash: the replacement holds new transactions too.
      await con.query('PAUSE');
      const pid2 = p.workerPid(victim)!;
      process.kill(pid2, 'SIGKILL');
      for (let i = 0; i < 300 && p.workerPid(victim) === pid2; i++) await sleep(100);
      await sleep(1500);
      const acme = await Promise.all(Array.from({ length: 6 }, () => p.client('acme')));
      opened.push(...acme);
      const runs = acme.map((c) => c.query('SELECT 1').then(() => 'ran', () => 'error'));
      const early = await Promise.race([Promise.any(runs), sleep(1500).then(() => 'held')]);
      expect(early).toBe('held');
      await con.query('RESUME');
      expect(await Promise.all(runs)).toEqual(Array(6).fill('ran'));
    } finally {
      for (const c of opened) await c.end().catch(() => {});
      await p.stop('SIGKILL');
    }
  });
});

describe('console: KILL and PAUSE meet waiting clients and a drain', () => {
  it('KILL CLIENT on a client waiting for a backend frees its place (waiting 0); SIGTERM during PAUSE ends held clients at once with 57P01', async () => {
    const { makeVerifier } = await import('../../src/auth/scram.js');
    t = await startTestProxy(primaryServer(), 'hunt_console_wait', {
      pool: { size: 1, acquire_timeout_ms: 30_000 },
      users: [{ name: 'sre', scram: await makeVerifier('sre-password-123'), tenant: 'none', admin: true }],
      shutdown: { drain_timeout_ms: 20_000 },
    });
    const con = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: 'pgtenantproxy', user: 'sre', password: 'sre-password-123' });
    con.on('error', () => {});
    await con.connect();
    const holder = await t.pgClient('acme');
    await holder.query('BEGIN');
    const waiter = await t.pgClient('globex');
    const waiting = waiter.query('SELECT 1').catch((e: { code?: string }) => e.code);
    await sleep(150);
    expect(t.proxy.pool.stats().waiting).toBe(1);
    const rows = (await con.query('SHOW CLIENTS')).rows as Array<{ id: string | number; state: string }>;
    const w = rows.find((r) => r.state === 'waiting')!;
    await con.query(`KILL CLIENT ${w.id}`);
    expect(await waiting).toBe('57P01');
    expect(t.proxy.pool.stats().waiting).toBe(0);
    await holder.query('COMMIT');

    // PAUSE, a client held at the gate, then SIGTERM: the held client is outside any transaction.
    await con.query('PAUSE');
    const held = await t.pgClient('globex');
    const heldRun = held.query('SELECT 1').then(() => 'ran', (e: { code?: string }) => e.code);
    await sleep(150);
    const t0 = Date.now();
    const drained = t.proxy.drain();
    const r = await Promise.race([heldRun, sleep(3000).then(() => 'still held')]);
    expect(r).toBe('57P01');
    expect(Date.now() - t0).toBeLessThan(1000);
    await drained;
    t = null;
  });
});

describe('PostgreSQL goes down with clients holding and waiting, and is down at start', () => {
  it('holders get 57P01/08006, waiters get 08006 at once (not after acquire_timeout_ms); min_idle refills by itself when it is back', { timeout: 120_000 }, async () => {
    const { startOwnPostgres } = await import('../support/own-pg.js');
    const pgs = await startOwnPostgres('hunt_down');
    try {
      t = await startTestProxy(pgs.server, 'hunt_down', { pool: { size: 2, min_idle: 2, acquire_timeout_ms: 20_000 }, backend: { connect_timeout_ms: 1000 } });
      await waitFor(async () => t!.proxy.pool.stats().idle === 2, 5000);
      const holders = await Promise.all([1, 2].map(() => t!.pgClient('acme')));
      for (const h of holders) await h.query('BEGIN');
      const waiters = await Promise.all([1, 2, 3].map(() => t!.pgClient('globex')));
      const waits = waiters.map((w) => w.query('SELECT 1').then(() => 'ok', (e: { code?: string; message: string }) => `${e.code}: ${e.message}`));
      const holds = holders.map((h) => h.query('SELECT 1').then(() => 'ok', (e: { code?: string }) => e.code ?? 'no code'));
      await sleep(200);
      const t0 = Date.now();
      await pgs.stop('fast');
      const results = await Promise.race([Promise.all(waits), sleep(8000).then(() => null)]);
      expect(results, 'waiters settle well before acquire_timeout_ms').not.toBeNull();
      expect(Date.now() - t0).toBeLessThan(8000);
      // ECONNREFUSED, or the server's own "shutting down" while it stops: either way 08006, worded for on-call.
      for (const r of results!) expect(r).toMatch(/^08006: (cannot reach the database|the database refused a new backend connection: .*shutting down)/);
      for (const r of await Promise.all(holds)) expect(['57P01', '08006', 'no code', 'ok']).toContain(r);
      // Back up: min_idle refills with no client traffic, and /readyz recovers.
      await pgs.start();
      expect(await waitFor(async () => t!.proxy.pool.stats().idle === 2, 15_000)).toBe(true);
      expect(await waitFor(async () => (await readyz(t!.proxy.adminPort!)) === 200, 10_000)).toBe(true);
    } finally {
      await t?.close();
      t = null;
      await pgs.destroy();
    }
  });
});

describe('reload of acquire_timeout_ms while clients wait', () => {
  it('a waiter that arrives after acquire_timeout_ms was lowered by reload times out at the new value, not at an older waiter\'s deadline', async () => {
    t = await startTestProxy(primaryServer(), 'hunt_reload_acq', { pool: { size: 1, acquire_timeout_ms: 10_000 } });
    const holder = await t.pgClient('acme');
    await holder.query('BEGIN');
    const early = await t.pgClient('acme');
    const earlyRun = early.query('SELECT 1').catch(() => {});
    await sleep(100);
    await t.proxy.reload!({ ...t.config, pool: { ...t.config.pool, acquire_timeout_ms: 500 } });
    const late = await t.pgClient('globex');
    const t0 = Date.now();
    const e = await errorOf(late.query('SELECT 1'));
    expect(e?.code).toBe('53300');
    expect(Date.now() - t0).toBeLessThan(2000);
    await holder.query('COMMIT');
    await earlyRun;
  });
});

describe('database full with no backend open', () => {
  it('a client is told the database refuses connections (its own reason), not that it cannot be reached', async () => {
    t = await startTestProxy(primaryServer(), 'hunt_full_cold', { pool: { size: 2 } });
    const admin = await t.admin();
    await admin.query(`ALTER ROLE ${t.poolUser} CONNECTION LIMIT 0`);
    try {
      const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') });
      c.on('error', () => {});
      const e = await errorOf(c.connect());
      expect(e?.message).toMatch(/^the database refused a new backend connection: .*too many connections for role/);
      expect(e?.code).toBe('53300');
    } finally {
      await admin.query(`ALTER ROLE ${t.poolUser} CONNECTION LIMIT -1`);
    }
  });
});

describe('workers: 2, /metrics ratios', () => {
  it('pgtp_pool_utilisation on the primary is held / cap of the whole proxy, not the sum of the workers\' ratios', { timeout: 90_000 }, async () => {
    const { startClusterProxy, metric } = await import('../support/cluster.js');
    const p = await startClusterProxy(primaryServer(), 'hunt_cluster_ratio', { workers: 2, pool: { size: 4 } });
    const opened: pg.Client[] = [];
    try {
      // One transaction open on each worker (client pids are sharded by worker: pid % 2).
      const onWorker = new Map<number, pg.Client>();
      while (onWorker.size < 2) {
        const c = await p.client('acme');
        opened.push(c);
        const w = (c as unknown as { processID: number }).processID % 2;
        if (!onWorker.has(w)) onWorker.set(w, c);
      }
      for (const c of onWorker.values()) await c.query('BEGIN');
      const m = (await p.http('/metrics')).body;
      const held = metric(m, 'pgtp_pool_held');
      const cap = metric(m, 'pgtp_pool_cap');
      expect({ held, cap }).toEqual({ held: 2, cap: 4 });
      expect(metric(m, 'pgtp_pool_utilisation')).toBeCloseTo(0.5);
      expect(metric(m, 'pgtp_pool_utilization_ratio')).toBeCloseTo(0.5);
      for (const c of onWorker.values()) await c.query('COMMIT');
    } finally {
      for (const c of opened) await c.end().catch(() => {});
      await p.stop('SIGKILL');
    }
  });
});

describe('one process, signals', () => {
  it('a second SIGTERM during a drain stops at once: exit 0, the open transaction\'s backend gone from pg_stat_activity', { timeout: 60_000 }, async () => {
    const { spawn } = await import('node:child_process');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { createFixtureDatabase } = await import('../support/pg.js');
    const { JWT_SECRET } = await import('../support/proxy.js');
    const { SignJWT } = await import('jose');
    const server = primaryServer();
    const fx = await createFixtureDatabase(server, 'hunt_sig2_single');
    const file = join(mkdtempSync(join(tmpdir(), 'pgtp-hunt-')), 'proxy.yaml');
    writeFileSync(file, [
      'listen: { port: 0, plaintext_tokens: loopback }',
      `backend: { host: ${server.host}, port: ${server.port}, database: ${fx.database}, user: ${fx.poolUser}, password: "${fx.poolPassword}" }`,
      'pool: { size: 2 }',
      `auth: { jwt: { algorithms: [HS256], secret: "${JWT_SECRET}" } }`,
      'shutdown: { drain_timeout_ms: 30000 }',
      'log: { level: info }',
    ].join('\n'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', file], { env: { ...process.env, PGTP_ADMIN_EPHEMERAL: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let port = 0;
    for (let i = 0; i < 600 && !port; i++) {
      const line = out.split('\n').find((l) => l.includes('"LISTENING"'));
      if (line) port = (JSON.parse(line) as { port: number }).port;
      else await sleep(50);
    }
    const admin = new pg.Client({ host: server.host, port: server.port, database: fx.database, user: server.user, password: server.password });
    await admin.connect();
    try {
      const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(JWT_SECRET));
      const c = new pg.Client({ host: '127.0.0.1', port, database: fx.database, user: 'app', password: token });
      c.on('error', () => {});
      await c.connect();
      await c.query('BEGIN');
      void c.query('SELECT pg_sleep(60)').catch(() => {});
      await sleep(200);
      child.kill('SIGTERM');
      await sleep(500);
      const t0 = Date.now();
      child.kill('SIGTERM');
      const r = await Promise.race([exited, sleep(10_000).then(() => ({ code: -1, signal: 'still running' }))]);
      expect(r, out.slice(-2000)).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(await waitFor(async () => (await backendCount(admin, fx.poolUser)) === 0, 3000)).toBe(true);
    } finally {
      child.kill('SIGKILL');
      await admin.end();
    }
  });
});

describe('reload of acquire_timeout_ms and static users', () => {
  it('a static user waiting for its users[].pool_size slot times out at the reloaded acquire_timeout_ms', async () => {
    const { makeVerifier } = await import('../../src/auth/scram.js');
    t = await startTestProxy(primaryServer(), 'hunt_user_slots', {
      pool: { size: 4, acquire_timeout_ms: 10_000 },
      users: [{ name: 'job', scram: await makeVerifier('job-password-123'), tenant: 'none', pool_size: 1 }],
    });
    const job = () => {
      const c = new pg.Client({ host: '127.0.0.1', port: t!.proxy.port, database: t!.database, user: 'job', password: 'job-password-123' });
      c.on('error', () => {});
      return c.connect().then(() => c);
    };
    const a = await job();
    await a.query('BEGIN');
    await t.proxy.reload!({ ...t.config, pool: { ...t.config.pool, acquire_timeout_ms: 400 } });
    const b = await job();
    const t0 = Date.now();
    const e = await errorOf(b.query('SELECT 1'));
    expect(e?.code).toBe('53300');
    expect(e?.message).toMatch(/users\[\]\.pool_size/);
    expect(Date.now() - t0).toBeLessThan(2000);
    await a.query('COMMIT');
    await a.end();
  });
});
