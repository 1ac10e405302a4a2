// Prepared statements under transaction pooling: the cache's bookkeeping, and against a real server,
// statements that survive DISCARD ALL with the semantics of a direct connection.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frame } from '../../src/protocol/encode.js';
import { StatementCache } from '../../src/session/statements.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const body = (name: string, text: string) => frame(0x50, Buffer.from(`${name}\0${text}\0\0\0`));

describe('StatementCache', () => {
  it('keeps no more than the global budget across clients (pool.max_prepared_statement_bytes_total), and gives it back on dispose', () => {
    const budget = { used: 0, limit: 100 };
    const a = new StatementCache({ maxCount: 10, maxBytes: 1 << 20 }, budget);
    const b = new StatementCache({ maxCount: 10, maxBytes: 1 << 20 }, budget);
    a.clientParse('s', body('s', 'SELECT ' + 'x'.repeat(50)), 0);
    a.parseComplete();
    expect(a.size).toBe(1);
    b.clientParse('s', body('s', 'SELECT ' + 'y'.repeat(50)), 0);
    b.parseComplete();
    expect(b.size).toBe(0); // over the global budget: not kept (usable in its transaction only)
    expect(budget.used).toBeLessThanOrEqual(100);
    a.dispose();
    expect(budget.used).toBe(0);
    b.clientParse('s', body('s', 'SELECT ' + 'y'.repeat(50)), 0);
    b.parseComplete();
    expect(b.size).toBe(1);
  });

  it('re-prepares a remembered statement once per backend and hides that ParseComplete', () => {
    const c = new StatementCache({ maxCount: 10, maxBytes: 1 << 20 }, { used: 0, limit: 1 << 30 });
    c.newBackend();
    expect(c.clientParse('s1', body('s1', 'SELECT 1'), 0)).toBeNull();
    expect(c.parseComplete()).toBe(true); // the client's own: shown
    c.newBackend(); // next transaction, next backend
    const inject = c.clientUses('s1', 0);
    expect(inject?.toString('latin1', 5)).toContain('SELECT 1');
    expect(c.clientUses('s1', 0)).toBeNull(); // already on its way
    expect(c.parseComplete()).toBe(false); // the proxy's: hidden
  });

  it('forgets pending parses of a segment the server skipped after an error', () => {
    const c = new StatementCache({ maxCount: 10, maxBytes: 1 << 20 }, { used: 0, limit: 1 << 30 });
    c.newBackend();
    c.clientParse('a', body('a', 'SELECT 1'), 0);
    c.clientParse('b', body('b', 'SELECT 2'), 1);
    c.error(0); // 'a' was skipped in segment 0
    expect(c.parseComplete()).toBe(true); // this one is 'b'
    c.newBackend();
    expect(c.clientUses('a', 0)).toBeNull(); // never accepted by the server: nothing to re-prepare
    expect(c.clientUses('b', 0)).not.toBeNull();
  });

  it('is bounded by count and bytes, least recently used first', () => {
    const c = new StatementCache({ maxCount: 2, maxBytes: 1 << 20 }, { used: 0, limit: 1 << 30 });
    c.newBackend();
    for (const n of ['a', 'b', 'c']) {
      c.clientParse(n, body(n, `SELECT '${n}'`), 0);
      c.parseComplete();
    }
    expect(c.size).toBe(2);
    c.newBackend();
    expect(c.clientUses('a', 0)).toBeNull(); // evicted
    expect(c.clientUses('c', 0)).not.toBeNull();
    const small = new StatementCache({ maxCount: 100, maxBytes: 30 }, { used: 0, limit: 1 << 30 });
    small.newBackend();
    small.clientParse('big', body('big', 'SELECT ' + 'x'.repeat(100)), 0);
    small.parseComplete();
    expect(small.size).toBe(0);
  });
});

describe('prepared statements through the proxy', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'stmts', { pool: { size: 2 } });
  });
  afterAll(async () => t?.close());

  const direct = async () => {
    const c = new pg.Client({ host: t.server.host, port: t.server.port, database: t.database, user: t.poolUser, password: t.poolPassword });
    await c.connect();
    await c.query("SELECT set_config('app.current_tenant', 'acme', false)");
    return c;
  };

  it('node-postgres named queries work across 100 transactions with two tenants interleaved on a pool of 2', async () => {
    const a = await t.pgClient('acme');
    const g = await t.pgClient('globex');
    const q = { name: 'orders_count', text: "SELECT current_setting('app.current_tenant') AS t, (SELECT count(*) FROM orders)::int AS n, (SELECT body FROM notes LIMIT 1) AS note, $1::int AS i" };
    for (let i = 0; i < 100; i++) {
      const [ra, rg] = await Promise.all([a.query({ ...q, values: [i] }), g.query({ ...q, values: [i] })]);
      expect(ra.rows[0]).toEqual({ t: 'acme', n: 2, note: 'acme note', i });
      expect(rg.rows[0]).toEqual({ t: 'globex', n: 1, note: 'globex note', i });
    }
  });

  it('postgres.js with its default prepare: true, 1,000 pipelined queries and then one by one', async () => {
    const sql = await t.sql('globex');
    const all = await Promise.all(Array.from({ length: 1000 }, (_, i) => sql`SELECT ${i}::int AS n, current_setting('app.current_tenant') AS t`));
    all.forEach((r, i) => expect(r[0]).toEqual({ n: i, t: 'globex' }));
    for (let i = 0; i < 20; i++) expect((await sql`SELECT ${i}::int AS n`)[0].n).toBe(i);
  });

  it('a statement prepared for one tenant never plans against another tenant schema', async () => {
    const a = await t.pgClient('acme');
    const g = await t.pgClient('globex');
    const q = { name: 'notes_body', text: 'SELECT body FROM notes' };
    for (let i = 0; i < 10; i++) {
      expect((await a.query(q)).rows).toEqual([{ body: 'acme note' }]);
      expect((await g.query(q)).rows).toEqual([{ body: 'globex note' }]);
    }
  });

  it('redefining a name without Close fails exactly as on a direct connection', async () => {
    const viaProxy = await t.pgClient('acme');
    const straight = await direct();
    for (const c of [viaProxy, straight]) {
      await c.query({ name: 'dup', text: 'SELECT 1 AS x' });
      const e = (await c.query({ name: 'dup', text: 'SELECT 2 AS y' }).catch((err: unknown) => err)) as { code?: string; message: string };
      // node-postgres reuses the cached definition when the text differs only client-side; raw check below.
      void e;
    }
    // Raw protocol: Parse "dup2" twice in separate transactions.
    const raw = async (c: pg.Client) => {
      await c.query({ name: 'dup2', text: 'SELECT 1' });
      (c as unknown as { connection: { parse(o: object): void; sync(): void } }).connection.parse({ name: 'dup2', text: 'SELECT 2', types: [] });
      return new Promise<string>((resolve) => {
        c.once('error', (err: { code?: string }) => resolve(err.code ?? 'error'));
        (c as unknown as { connection: { once(e: string, f: (m: { code?: string }) => void): void; sync(): void } }).connection.once('errorMessage', (m) => resolve(m.code ?? 'error'));
        (c as unknown as { connection: { sync(): void } }).connection.sync();
      });
    };
    const p1 = await t.pgClient('acme');
    const d1 = await direct();
    expect(await raw(p1)).toBe('42P05');
    expect(await raw(d1)).toBe('42P05');
    await straight.end();
    await d1.end();
  });

  it('SQL PREPARE lasts for its transaction; EXECUTE later gets 26000 with a hint that explains why', async () => {
    const c = await t.pgClient('acme');
    await c.query('BEGIN');
    await c.query('PREPARE sqlp AS SELECT 42 AS v');
    expect((await c.query('EXECUTE sqlp')).rows[0].v).toBe(42);
    await c.query('COMMIT');
    const e = (await c.query('EXECUTE sqlp').catch((err: unknown) => err)) as { code: string; hint?: string };
    expect(e.code).toBe('26000');
    expect(e.hint).toMatch(/per transaction/);
  });

  it('a session SET of a reported setting carries into later transactions, and ParameterStatus agrees', async () => {
    const c = await t.pgClient('acme');
    const shown: Record<string, string> = {};
    (c as unknown as { connection: { on(e: string, f: (m: { parameterName: string; parameterValue: string }) => void): void } }).connection.on(
      'parameterStatus',
      (m) => (shown[m.parameterName] = m.parameterValue),
    );
    await c.query("SET TimeZone = 'America/New_York'");
    for (let i = 0; i < 5; i++) {
      expect((await c.query("SELECT current_setting('TimeZone') AS tz")).rows[0].tz).toBe('America/New_York');
      // Another tenant uses the backends in between; it keeps its own time zone.
      const g = await t.pgClient('globex');
      expect((await g.query("SELECT current_setting('TimeZone') AS tz")).rows[0].tz).not.toBe('America/New_York');
      await g.end();
    }
    expect(shown.TimeZone).toBe('America/New_York');
    await c.query('RESET TimeZone');
    expect((await c.query("SELECT current_setting('TimeZone') AS tz")).rows[0].tz).not.toBe('America/New_York');
  });

  it('startup options: allowlisted -c pairs are applied, others refused', async () => {
    const ok = await t.sql('acme', { connection: { options: '-c statement_timeout=4321 --datestyle=SQL,\\ DMY' }, fetch_types: false });
    const [r] = await ok`SELECT current_setting('statement_timeout') AS st, current_setting('DateStyle') AS ds`;
    expect(r).toEqual({ st: '4321ms', ds: 'SQL, DMY' });
    const bad = await t.sql('acme', { connection: { options: '-c work_mem=1GB' }, fetch_types: false });
    const e = (await bad`SELECT 1`.catch((err: unknown) => err)) as { code: string; message: string };
    expect(e.code).toBe('08P01');
    expect(e.message).toMatch(/work_mem is not allowed/);
  });
});

describe('session pool mode', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'session_mode', { pool: { size: 2, mode: 'session' } });
  });
  afterAll(async () => t?.close());

  it('keeps one backend per client: temp tables, LISTEN/NOTIFY and SQL PREPARE span transactions; reset on disconnect', async () => {
    const c = await t.pgClient('acme');
    const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    await c.query('CREATE TEMP TABLE keep(x int)');
    await c.query('PREPARE keep_stmt AS SELECT 7 AS v');
    await c.query('LISTEN chan');
    const note = new Promise<string>((resolve) => c.on('notification', (n) => resolve(n.payload ?? '')));
    const other = await t.pgClient('globex');
    await other.query("NOTIFY chan, 'hello'");
    expect(await note).toBe('hello');
    expect((await c.query('SELECT pg_backend_pid() AS p, (SELECT count(*) FROM keep)::int AS n')).rows[0]).toEqual({ p: pid, n: 0 });
    expect((await c.query('EXECUTE keep_stmt')).rows[0].v).toBe(7);
    expect((await c.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('acme');
    await c.end();
    await other.end();
    await new Promise((r) => setTimeout(r, 100));
    // Both backends were reset and kept, not closed.
    expect(t.proxy.pool.stats()).toMatchObject({ open: 2, idle: 2 });
    // The backend comes back reset: a new client sees none of that state.
    const next = await t.pgClient('globex');
    const r = await next.query("SELECT to_regclass('pg_temp.keep') IS NULL AS clean, (SELECT count(*) FROM pg_prepared_statements)::int AS p, (SELECT count(*) FROM pg_listening_channels())::int AS l");
    expect(r.rows[0]).toEqual({ clean: true, p: 0, l: 0 });
  });
});

describe('a client over pool.max_prepared_statements', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'stmts_cap', { pool: { size: 1, max_prepared_statements: 2 } });
  });
  afterAll(async () => t?.close());

  it('keeps working: recent statements are re-prepared, a forgotten one gets a clear 26000, the connection stays in sync', async () => {
    const c = await t.pgClient('acme');
    const q = (name: string, v: number) => c.query({ name, text: `SELECT $1::int AS v, '${name}' AS name`, values: [v] });
    for (const name of ['s1', 's2', 's3']) expect((await q(name, 1)).rows[0]).toEqual({ v: 1, name });
    // s2 and s3 are the two most recent: re-prepared invisibly in later transactions.
    expect((await q('s3', 2)).rows[0]).toEqual({ v: 2, name: 's3' });
    expect((await q('s2', 3)).rows[0]).toEqual({ v: 3, name: 's2' });
    // s1 was forgotten: the driver still believes it is prepared, and gets a clear error, not a wrong result.
    const e = (await q('s1', 4).catch((err: unknown) => err)) as { code: string; hint?: string };
    expect(e.code).toBe('26000');
    expect(e.hint).toMatch(/max_prepared_statements/);
    // The connection is still in sync and usable.
    expect((await q('s3', 5)).rows[0]).toEqual({ v: 5, name: 's3' });
    expect((await c.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('acme');
  });
});
