// What passes through must arrive unchanged: COPY both ways, notices, empty queries, errors in
// transactions, pipelines of 1,000 queries, rows of many MB, and slow readers (backpressure).
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

describe('transparency', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'transparency', { pool: { size: 2 } });
    // PostgreSQL refuses COPY FROM into a table under row-level security (every table the tenancy kit
    // protects), so COPY loads a staging table of the same name in each tenant schema, found by search_path.
    const admin = await t.admin();
    for (const s of ['tenant_acme', 'tenant_globex']) {
      await admin.query(`CREATE TABLE ${s}.imports (id serial PRIMARY KEY, body text); GRANT SELECT, INSERT ON ${s}.imports TO ${t.poolUser}; GRANT USAGE ON SEQUENCE ${s}.imports_id_seq TO ${t.poolUser}`);
    }
  });
  afterAll(async () => t?.close());

  it('COPY FROM STDIN and COPY TO STDOUT land in the tenant schema', async () => {
    const sql = await t.sql('acme');
    const rows = Array.from({ length: 5000 }, (_, i) => `copied-${i}\n`).join('');
    const writable = await sql`COPY imports (body) FROM STDIN`.writable();
    await pipeline(Readable.from([rows]), writable);
    const admin = await t.admin();
    const counts = await admin.query("SELECT (SELECT count(*) FROM tenant_acme.imports WHERE body LIKE 'copied-%')::int AS acme, (SELECT count(*) FROM tenant_globex.imports WHERE body LIKE 'copied-%')::int AS globex");
    expect(counts.rows[0]).toEqual({ acme: 5000, globex: 0 });
    const out: Buffer[] = [];
    const readable = await sql`COPY (SELECT body FROM imports WHERE body LIKE 'copied-%' ORDER BY id) TO STDOUT`.readable();
    await pipeline(
      readable,
      new Writable({
        write(chunk, _enc, cb) {
          out.push(chunk);
          cb();
        },
      }),
    );
    const lines = Buffer.concat(out).toString().trim().split('\n');
    expect(lines).toHaveLength(5000);
    expect(lines[0]).toBe('copied-0');
    expect(lines[4999]).toBe('copied-4999');
    // COPY TO of the RLS table shows only the tenant's rows.
    const globex = await t.sql('globex');
    const chunks: Buffer[] = [];
    await pipeline(
      await globex`COPY (SELECT item FROM orders) TO STDOUT`.readable(),
      new Writable({
        write(chunk, _enc, cb) {
          chunks.push(chunk);
          cb();
        },
      }),
    );
    expect(Buffer.concat(chunks).toString()).toBe('widget\n');
  });

  it('a pipeline of 1,000 queries returns 1,000 right answers in order', async () => {
    // Unnamed statements: named ones across transactions are the driver-compatibility issue's work.
    const sql = await t.sql('globex', { prepare: false });
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => sql`SELECT ${i}::int AS n, current_setting('app.current_tenant') AS t`),
    );
    results.forEach((r, i) => expect(r[0]).toEqual({ n: i, t: 'globex' }));
  });

  it('notices, empty queries and errors inside transactions pass through', async () => {
    const c = await t.pgClient('acme');
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    // Tenants may not run DO blocks (statement guard), so the notice comes from a function the admin made.
    const admin = await t.admin();
    await admin.query(`CREATE OR REPLACE FUNCTION public.hello() RETURNS void LANGUAGE plpgsql AS $$
      BEGIN RAISE NOTICE 'hello from %', current_setting('app.current_tenant'); END $$;
      GRANT EXECUTE ON FUNCTION public.hello() TO ${t.poolUser}`);
    await c.query('SELECT public.hello()');
    expect(notices).toContain('hello from acme');
    const empty = await c.query('');
    expect(empty.rows ?? []).toEqual([]);
    await c.query('BEGIN');
    const e = (await c.query('SELECT * FROM no_such_table').catch((err: unknown) => err)) as { code: string };
    expect(e.code).toBe('42P01');
    const aborted = (await c.query('SELECT 1').catch((err: unknown) => err)) as { code: string };
    expect(aborted.code).toBe('25P02');
    await c.query('ROLLBACK');
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });

  it('rows of many MB arrive intact', async () => {
    const c = await t.pgClient('acme');
    const r = await c.query("SELECT repeat('x', 24 * 1024 * 1024) AS big, md5(repeat('x', 24 * 1024 * 1024)) AS sum");
    expect(r.rows[0].big.length).toBe(24 * 1024 * 1024);
    expect(r.rows[0].big.endsWith('xxx')).toBe(true);
  });

  it('a slow reader does not make the proxy buffer a whole result set', async () => {
    const sql = await t.sql('acme', { max: 1 });
    const rss0 = process.memoryUsage().rss;
    let rows = 0;
    // A cursor reading 200 MB in small batches with pauses: the proxy must apply backpressure.
    await sql`SELECT repeat('y', 1024 * 1024) AS mb FROM generate_series(1, 200)`.cursor(2, async (batch) => {
      rows += batch.length;
      await new Promise((r) => setTimeout(r, 5));
    });
    expect(rows).toBe(200);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(150 * 1024 * 1024);
  });
});
