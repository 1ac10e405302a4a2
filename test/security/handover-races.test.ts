// Races at the hand-over and holds a client can stretch: cancels during the previous tenant's read-back, disconnects at every point,
// COPY sync counting, holds without a Sync, clients that always keep a query in flight, the local DEALLOCATE answer.
// Each test asserts the SAFE behaviour.
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { RawClient, errorFields, startupPacket, summarise, type Message, copyData, copyDone } from '../guard/raw-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const rawClient = async (t: TestProxy, tenant: string) => RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token(tenant));

/** Whether another tenant gets a backend now: null if it does, else its error. */
async function globexGetsBackend(t: TestProxy): Promise<string | null> {
  const g = await t.pgClient('globex');
  try {
    await g.query('SELECT 1');
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await g.end().catch(() => {});
  }
}

/** A RawClient that also keeps the BackendKeyData the proxy issued. */
async function rawWithKey(port: number, params: Record<string, string>, password: string): Promise<{ c: RawClient; pid: number; secret: Buffer }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.setNoDelay(true);
  const c = new (RawClient as unknown as new (s: net.Socket) => RawClient)(socket);
  socket.write(startupPacket(params));
  let pid = 0;
  let secret = Buffer.alloc(0);
  for (;;) {
    const m = await c.next();
    if (m.type === 'R' && m.body.readUInt32BE(0) === 3) socket.write(serialize.password(password));
    else if (m.type === 'K') {
      pid = m.body.readUInt32BE(0);
      secret = Buffer.from(m.body.subarray(4, 8));
    } else if (m.type === 'E') throw Object.assign(new Error(errorFields(m.body).M), { code: errorFields(m.body).C });
    else if (m.type === 'Z') return { c, pid, secret };
  }
}

/** Sends a CancelRequest to `port`; resolves when the proxy closes it. */
function sendCancel(port: number, pid: number, secret: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const msg = Buffer.alloc(16);
    msg.writeUInt32BE(16, 0);
    msg.writeUInt32BE(80877102, 4);
    msg.writeUInt32BE(pid, 8);
    secret.copy(msg, 12, 0, 4);
    s.on('connect', () => s.write(msg));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

async function untilReadyOrClose(c: RawClient, timeoutMs = 10_000): Promise<{ msgs: Message[]; closed: boolean }> {
  const msgs: Message[] = [];
  for (;;) {
    try {
      const m = await c.next(timeoutMs);
      msgs.push(m);
      if (m.type === 'Z') return { msgs, closed: false };
    } catch {
      return { msgs, closed: c.closed };
    }
  }
}

describe('cancel at the hand-over', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'hunt2_cancel', { pool: { size: 1, acquire_timeout_ms: 5000, reset_delay_ms: 0 } });
  });
  afterAll(async () => t?.close());

  const params = () => ({ user: 'app', database: t.database });

  it("a tenant's cancel during the pipelined hand-over does not strike the previous tenant's read-back (no false READBACK_FAILED on another client)", async () => {
    const admin = await t.admin();
    // A fresh backend: the read-back's lookup of current_setting is a catalog-cache miss on it.
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [t.poolUser]);
    await sleep(200);
    const a = await rawWithKey(t.proxy.port, params(), await t.token('acme'));
    const b = await rawWithKey(t.proxy.port, params(), await t.token('globex'));
    try {
      expect((await a.c.query('BEGIN')).status).toBe('T');
      // globex waits for the only backend.
      const started = Date.now();
      await b.c.write(serialize.query('SELECT pg_sleep(5)'));
      await sleep(100);
      // Something slows the read-back (here: a catalog lock; in production: load). acme commits, the backend is
      // handed to globex with acme's read-back pipelined in front.
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE pg_catalog.pg_proc IN ACCESS EXCLUSIVE MODE');
      await a.c.write(serialize.query('COMMIT'));
      const ra = summarise(await a.c.untilReady());
      expect(ra.status).toBe('I');
      await sleep(150);
      // globex cancels "its own query".
      await sendCancel(t.proxy.port, b.pid, b.secret);
      await sleep(300);
      await admin.query('ROLLBACK');
      const rb = await untilReadyOrClose(b.c);
      // globex's cancel still reaches its own statement, once the hand-over is answered.
      expect(rb.closed).toBe(false);
      expect(summarise(rb.msgs).error?.C).toBe('57014');
      expect(Date.now() - started).toBeLessThan(4000);
      // acme did nothing wrong: it must still be connected and usable (it was told FATAL 42501 "could not be verified").
      expect(a.c.closed).toBe(false);
      await Promise.race([a.c.write(serialize.query('SELECT 1')), sleep(500)]);
      const after = summarise((await untilReadyOrClose(a.c, 5000)).msgs);
      expect(after.error).toBeNull();
      expect(after.rows).toEqual(['1']);
    } finally {
      await admin.query('ROLLBACK').catch(() => {});
      a.c.end();
      b.c.end();
    }
  });
});

describe('holds without a Sync (idle-in-transaction clock)', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'hunt2_idle', {
      pool: { size: 1, acquire_timeout_ms: 1500, idle_in_transaction_timeout_ms: 1000, reset_delay_ms: 0 },
    });
    const admin = await t.admin();
    await admin.query(`CREATE TABLE IF NOT EXISTS public.cp_target (a int); GRANT INSERT, SELECT ON public.cp_target TO ${t.poolUser}`);
  });
  afterAll(async () => t?.close());

  const raw = (tenant: string) => rawClient(t, tenant);
  const otherGetsBackend = () => globexGetsBackend(t);

  it('a Parse sent in the same write as a Query (held past the idle ReadyForQuery) is bound by idle_in_transaction_timeout_ms', async () => {
    const c = await raw('acme');
    try {
      await c.write(Buffer.concat([serialize.query('SELECT 1'), serialize.parse({ text: 'SELECT 2' })]));
      expect(summarise(await c.untilReady()).rows).toEqual(['1']);
      await sleep(2000);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });

  it('a Parse trailing an extended Sync in the same write is bound by idle_in_transaction_timeout_ms', async () => {
    const c = await raw('acme');
    try {
      await c.write(Buffer.concat([serialize.parse({ text: 'SELECT 1' }), serialize.bind({}), serialize.execute({}), serialize.sync(), serialize.parse({ name: 'x', text: 'SELECT 2' })]));
      expect(summarise(await c.untilReady()).rows).toEqual(['1']);
      await sleep(2000);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });
});


describe('COPY FROM STDIN sync counting', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'hunt2_copy', {
      pool: { size: 1, acquire_timeout_ms: 1500, idle_in_transaction_timeout_ms: 1000, query_timeout_ms: 1000, reset_delay_ms: 0 },
    });
  });
  afterAll(async () => t?.close());

  const raw = (tenant: string) => rawClient(t, tenant);
  const otherGetsBackend = () => globexGetsBackend(t);

  it('a Sync sent during the second COPY of one Query does not pin the backend past the documented timeouts', async () => {
    const c = await raw('acme');
    try {
      await c.write(serialize.query('CREATE TEMP TABLE cp2 (a int); COPY cp2 FROM STDIN; COPY cp2 FROM STDIN'));
      await sleep(200);
      await c.write(Buffer.concat([copyData('1\n'), copyDone]));
      await sleep(200);
      await c.write(Buffer.concat([serialize.sync(), copyData('2\n'), copyDone]));
      const r = summarise(await c.untilReady());
      expect(r.error).toBeNull();
      await sleep(2500);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });

  it('a Sync sent during an extended-protocol COPY that follows a simple-Query COPY in the same hold does not pin the backend', async () => {
    const c = await raw('acme');
    try {
      // The Query's COPY completes; its CopyDone comes after the Query's own sync point, and the next COPY after it.
      await c.write(Buffer.concat([serialize.query('CREATE TEMP TABLE cp4 (a int); COPY cp4 FROM STDIN')]));
      await sleep(200);
      const copy = Buffer.concat([serialize.parse({ text: 'COPY cp4 FROM STDIN' }), serialize.bind({}), serialize.execute({})]);
      await c.write(Buffer.concat([copyData('1\n'), copyDone, copy, serialize.flush()]));
      expect(summarise(await c.untilReady()).error).toBeNull();
      await sleep(200);
      await c.write(Buffer.concat([serialize.sync(), copyData('2\n'), copyDone, serialize.sync()]));
      const r = summarise(await c.untilReady());
      expect(r.error?.M ?? null).toBeNull();
      await sleep(2500);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });

  it('a Sync sent during the second COPY of one extended-protocol segment does not pin the backend past the documented timeouts', async () => {
    const c = await raw('acme');
    try {
      const create = Buffer.concat([serialize.parse({ text: 'CREATE TEMP TABLE cp3 (a int)' }), serialize.bind({}), serialize.execute({})]);
      const copy = Buffer.concat([serialize.parse({ text: 'COPY cp3 FROM STDIN' }), serialize.bind({}), serialize.execute({})]);
      await c.write(Buffer.concat([create, copy, serialize.flush()]));
      await sleep(200);
      await c.write(Buffer.concat([copyData('1\n'), copyDone, copy, serialize.flush()]));
      await sleep(200);
      await c.write(Buffer.concat([serialize.sync(), copyData('2\n'), copyDone, serialize.sync()]));
      const r = summarise(await c.untilReady());
      expect(r.error?.M ?? null).toBeNull();
      await sleep(2500);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });
});

// ---- random disconnects under load --------------------------------------------------------------------
// Attackers (raw sockets, two tenants) send every shape of traffic (session state, temp tables, pipelines,
// COPY simple and extended, Syncs inside COPY, trailing Parses, their own cancels) and vanish at a random
// byte, after a random pause, or with a FIN. Verifiers (node-postgres) check every row they get: their own
// tenant, schema, notes, no foreign rows, no state left by anyone, their own nonce. Attackers check that every
// row they read is tagged with their own tenant. Nothing of an attacker's may reach anyone else, and no
// innocent client may be disconnected as a context tamperer.
import pg from 'pg';
import { ISOLATION_CHECK, rng } from '../support/stress.js';

const STRESS_MS = Number(process.env.PGTP_DISCONNECT_STRESS_MS ?? 8_000);

describe('random disconnects at every point, under load', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'hunt2_stress', {
      pool: { size: 3, acquire_timeout_ms: 20_000, partial_message_timeout_ms: 400, idle_in_transaction_timeout_ms: 1500, query_timeout_ms: 3000 },
    });
  });
  afterAll(async () => t?.close());

  it(`random disconnects for ${STRESS_MS} ms: no row crosses tenants, no state survives, no innocent client is disconnected`, { timeout: STRESS_MS + 120_000 }, async () => {
    const mismatches: string[] = [];
    const unexpected = new Map<string, number>();
    const note = (k: string) => unexpected.set(k, (unexpected.get(k) ?? 0) + 1);
    const stopAt = Date.now() + STRESS_MS;
    let verified = 0;
    let attacks = 0;

    const q = (sql: string) => serialize.query(sql);
    const peb = (text: string, name = '') => Buffer.concat([serialize.parse({ name, text }), serialize.bind({ statement: name }), serialize.execute({})]);
    const tag = "SELECT 'ATK:' || current_setting('app.current_tenant', true) || ':' || current_setting('search_path') || ':' || (SELECT body FROM notes ORDER BY id LIMIT 1)";
    const scenarios: Array<(r: () => number) => Buffer[]> = [
      // session state and temp tables, then a check of its own
      () => [q("SET work_mem = '64MB'"), q('CREATE TEMP TABLE leak_probe (x int)'), q(`SELECT set_config('work_mem', '32MB', false); ${tag}`), q(tag)],
      // an explicit transaction left open
      () => [q('BEGIN'), q("SET LOCAL work_mem = '48MB'"), q('CREATE TEMP TABLE leak_probe (x int) ON COMMIT DROP'), q(`${tag}; SELECT pg_sleep(0.02)`)],
      // a pipeline of sync segments
      (r) => Array.from({ length: 2 + Math.floor(r() * 6) }, (_, i) => Buffer.concat([peb(i % 2 ? `${tag}, pg_sleep(0.005)::text` : tag), serialize.sync()])),
      // COPY, simple protocol, with a Sync inside, and a second COPY
      () => [q('CREATE TEMP TABLE leak_probe (x int); COPY leak_probe FROM STDIN; COPY leak_probe FROM STDIN'), copyData('1\n'), serialize.sync(), copyDone, serialize.sync(), copyData('2\n'), copyDone, q(tag)],
      // COPY, extended protocol, libpq-style Syncs
      () => [Buffer.concat([peb('CREATE TEMP TABLE leak_probe (x int)'), peb('COPY leak_probe FROM STDIN'), serialize.sync()]), copyData('3\n'), copyDone, serialize.sync(), q(tag)],
      // a failing COPY with data still in flight
      () => [q('CREATE TEMP TABLE leak_probe (x int); COPY leak_probe FROM STDIN'), copyData('not a number\n'), copyData('4\n'), copyDone, q(tag)],
      // a Parse trailing each Sync (keeps the backend past idle)
      () => [Buffer.concat([peb(tag), serialize.sync(), serialize.parse({ name: 'trail', text: tag })]), Buffer.concat([serialize.bind({ statement: 'trail' }), serialize.execute({}), serialize.sync(), serialize.parse({ text: 'SELECT 1' })])],
      // a long query (its own cancel may strike it)
      () => [q(`${tag}; SELECT pg_sleep(0.05)`), q(tag)],
      // a prepared statement and SQL DEALLOCATE between transactions
      () => [Buffer.concat([serialize.parse({ name: 'p1', text: tag }), serialize.bind({ statement: 'p1' }), serialize.execute({}), serialize.sync()]), q('DEALLOCATE p1'), Buffer.concat([serialize.bind({ statement: 'p1' }), serialize.execute({}), serialize.sync()]), q(tag)],
    ];

    async function attacker(id: number): Promise<void> {
      const r = rng(7000 + id);
      while (Date.now() < stopAt) {
        const tenant = r() < 0.5 ? 'acme' : 'globex';
        let conn: Awaited<ReturnType<typeof rawWithKey>>;
        try {
          conn = await rawWithKey(t.proxy.port, { user: 'app', database: t.database }, await t.token(tenant));
        } catch (e) {
          note(`attacker login: ${(e as Error).message.slice(0, 60)}`);
          continue;
        }
        attacks++;
        const { c, pid, secret } = conn;
        // Every row the attacker reads must be its own.
        const reader = (async () => {
          for (;;) {
            let m: Message;
            try {
              m = await c.next(30_000);
            } catch {
              return;
            }
            if (m.type === 'D' && m.body.readInt16BE(0) > 0) {
              const len = m.body.readInt32BE(2);
              const v = len < 0 ? '' : m.body.toString('utf8', 6, 6 + len);
              if (v.startsWith('ATK:') && v !== `ATK:${tenant}:"tenant_${tenant}", public:${tenant} note`) mismatches.push(`attacker ${tenant} read ${v}`);
            }
          }
        })();
        const parts = scenarios[Math.floor(r() * scenarios.length)](r);
        const all = Buffer.concat(parts);
        const cut = r() < 0.3 ? all.length : Math.floor(r() * (all.length + 1));
        let sent = 0;
        for (const p of parts) {
          if (sent >= cut || c.closed) break;
          const piece = p.subarray(0, Math.min(p.length, cut - sent));
          c.socket.write(piece);
          sent += piece.length;
          if (r() < 0.4) await sleep(r() * 15);
          if (r() < 0.1) void sendCancel(t.proxy.port, pid, secret);
        }
        const how = r();
        if (how < 0.4) c.socket.destroy();
        else {
          await sleep(r() * 40);
          if (how < 0.7) c.socket.destroy();
          else c.socket.end();
        }
        await Promise.race([reader, sleep(50)]);
      }
    }

    async function verifier(id: number): Promise<void> {
      const r = rng(9000 + id);
      const tenant = id % 2 ? 'acme' : 'globex';
      const connect = async (): Promise<pg.Client> => {
        const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token(tenant) });
        c.on('error', () => {});
        await c.connect();
        return c;
      };
      let c = await connect();
      while (Date.now() < stopAt) {
        const nonce = Math.floor(r() * 1e9);
        const check = (row: Record<string, unknown>, where: string) => {
          const ok =
            row.t === tenant && row.p === `"tenant_${tenant}", public` && row.note === `${tenant} note` && row.foreign_rows === 0 && row.wm === '4MB' && row.clean === true && Number(row.n) === nonce;
          if (!ok) mismatches.push(`verifier ${tenant} ${where}: ${JSON.stringify(row)} (nonce ${nonce})`);
          verified++;
        };
        try {
          const k = Math.floor(r() * 4);
          if (k === 0) check((await c.query(`${ISOLATION_CHECK}, ${nonce} AS n`)).rows[0], 'simple');
          else if (k === 1) check((await c.query({ name: 'v', text: `${ISOLATION_CHECK}, $1::int AS n`, values: [nonce] })).rows[0], 'named');
          else if (k === 2) {
            await c.query('BEGIN');
            check((await c.query({ text: `${ISOLATION_CHECK}, $1::int AS n`, values: [nonce] })).rows[0], 'explicit');
            await c.query('COMMIT');
          } else {
            await sleep(r() * 10);
            check((await c.query(`${ISOLATION_CHECK}, ${nonce} AS n`)).rows[0], 'after-lull');
          }
        } catch (e) {
          note(`verifier ${tenant}: ${(e as { code?: string }).code ?? ''} ${(e as Error).message.slice(0, 80)}`);
          await c.end().catch(() => {});
          c = await connect();
        }
      }
      await c.end().catch(() => {});
    }

    await Promise.all([...Array.from({ length: 4 }, (_, i) => attacker(i)), ...Array.from({ length: 4 }, (_, i) => verifier(i))]);
    const readbacks = (await t.proxy.metrics.readbackChecks.get()).values;
    const events = (await t.proxy.metrics.securityEvents.get()).values;
    console.log('hunt2 stress', { verified, attacks, unexpected: [...unexpected], readbacks: readbacks.map((v) => `${v.labels.outcome}=${v.value}`), events: events.map((v) => `${v.labels.event}=${v.value}`), stats: t.proxy.pool.stats() });
    expect(mismatches.slice(0, 20)).toEqual([]);
    expect([...unexpected].filter(([k]) => k.startsWith('verifier'))).toEqual([]);
    // Attackers never tamper: a tampered or failed read-back here disconnected someone who did nothing.
    expect(readbacks.filter((v) => (v.labels.outcome === 'tampered' || v.labels.outcome === 'failed') && v.value > 0)).toEqual([]);
    expect(verified).toBeGreaterThan(100);
    // Everything given back once the clients are gone.
    await sleep(3000);
    expect(t.proxy.pool.stats().held).toBe(0);
  });
});

describe('transaction-start checks for a client that always has a query in flight', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'hunt2_pipe', { pool: { size: 2, acquire_timeout_ms: 1500 } });
  });
  afterAll(async () => t?.close());

  it('a client that keeps one query always in flight (pipeline depth 2) is refused once its tenant is suspended', async () => {
    const c = await RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token('acme'));
    const q = serialize.query("SELECT string_agg(item, ',' ORDER BY item) FROM orders, pg_sleep(0.05)");
    let refused = false;
    try {
      await c.write(Buffer.concat([q, q]));
      for (let i = 0; i < 40; i++) {
        if (i === 5) await t.proxy.reload!({ ...t.config, tenant: { ...t.config.tenant, deny: ['acme'] } });
        let r: ReturnType<typeof summarise>;
        try {
          r = summarise(await c.untilReady());
        } catch {
          refused = true;
          break;
        }
        if (r.error) {
          refused = true;
          break;
        }
        // One more query goes out before the next answer: the server says idle between them, the proxy never.
        // (queries sent before the suspension, two in flight, may still answer)
        if (i >= 7) expect(r.rows, `transaction ${i} ran after the suspension`).toEqual([]);
        if (c.closed) {
          refused = true;
          break;
        }
        c.socket.write(q);
      }
    } finally {
      c.end();
      await t.proxy.reload!({ ...t.config, tenant: { ...t.config.tenant, deny: [] } });
    }
    expect(refused).toBe(true);
  });
  it('a client that keeps one query always in flight is refused once its token expires', async () => {
    const c = await RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token('acme', { expSeconds: 2 }));
    const q = serialize.query('SELECT pg_sleep(0.05)');
    const started = Date.now();
    let refused = false;
    try {
      c.socket.write(Buffer.concat([q, q]));
      while (Date.now() - started < 6000) {
        try {
          const r = summarise(await c.untilReady());
          if (r.error) {
            refused = true;
            break;
          }
        } catch {
          refused = true;
          break;
        }
        if (c.closed) {
          refused = true;
          break;
        }
        c.socket.write(q);
      }
    } finally {
      c.end();
    }
    expect(refused).toBe(true);
    expect(Date.now() - started).toBeLessThan(4500);
  });
});

describe('the read-back of a client whose backend went to a client that vanished', () => {
  let t: TestProxy;
  beforeAll(async () => {
    // The guard off stands for any route to the context the guard misses (the read-back is what catches it).
    t = await startTestProxy(primaryServer(), 'hunt2_skip', { pool: { size: 1, acquire_timeout_ms: 5000, reset_delay_ms: 0 }, tenant: { guard: false }, protection: 'raw' });
  });
  afterAll(async () => t?.close());

  it('a tampered context is still caught when the next client (an accomplice) vanishes during the pipelined hand-over', async () => {
    const admin = await t.admin();
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [t.poolUser]);
    await sleep(200);
    const params = { user: 'app', database: t.database };
    const a = await rawWithKey(t.proxy.port, params, await t.token('acme'));
    const b = await rawWithKey(t.proxy.port, params, await t.token('acme'));
    try {
      expect((await a.c.query('BEGIN')).status).toBe('T');
      expect((await a.c.query("SET app.current_tenant = 'globex'")).error).toBeNull();
      await b.c.write(serialize.query('SELECT 1'));
      await sleep(100);
      // The read-back is slow (a catalog lock here; load in production), and the accomplice hangs up meanwhile.
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE pg_catalog.pg_proc IN ACCESS EXCLUSIVE MODE');
      await a.c.write(serialize.query('COMMIT'));
      expect(summarise(await a.c.untilReady()).status).toBe('I');
      await sleep(100);
      b.c.end();
      await sleep(200);
      await admin.query('ROLLBACK');
      await sleep(300);
      // The tamperer must have been caught: disconnected with 42501 (not left connected with a READBACK_SKIPPED).
      expect(a.c.closed).toBe(true);
    } finally {
      await admin.query('ROLLBACK').catch(() => {});
      a.c.end();
      b.c.end();
    }
  });
});

describe('the local answer to SQL DEALLOCATE', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'hunt2_dealloc', { pool: { size: 1, acquire_timeout_ms: 1500 } });
  });
  afterAll(async () => t?.close());

  it('is not given to a client whose tenant is suspended or whose token expired: it is refused like any transaction start', async () => {
    const params = { user: 'app', database: t.database };
    const s = await RawClient.connect(t.proxy.port, params, await t.token('acme'));
    const e = await RawClient.connect(t.proxy.port, params, await t.token('globex', { expSeconds: 1 }));
    try {
      await sleep(1200);
      await t.proxy.reload!({ ...t.config, tenant: { ...t.config.tenant, deny: ['acme'] } });
      for (const c of [s, e]) {
        c.socket.write(serialize.query('DEALLOCATE ALL'));
        const r = await untilReadyOrClose(c, 3000);
        expect(r.msgs.map((m) => m.type)).not.toContain('C');
        expect(c.closed).toBe(true);
      }
    } finally {
      s.end();
      e.end();
      await t.proxy.reload!({ ...t.config, tenant: { ...t.config.tenant, deny: [] } });
    }
  });
});
