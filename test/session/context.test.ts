// Every statement of every transaction sees the tenant context, whatever its shape; a failed context
// means the client's statement never runs (fail closed). Against real PostgreSQL, both majors where present.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer, secondServer, type PgServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const servers: Array<[string, PgServer | undefined]> = [
  ['primary', primaryServer()],
  ['second major', secondServer()],
];

for (const [label, server] of servers) {
  // The second major is optional (PG_TEST_URL runs have one server only).
  describe.runIf(server !== undefined)(`tenant context (${label})`, () => {
    let t: TestProxy;
    beforeAll(async () => {
      t = await startTestProxy(server!, `ctx_${label === 'primary' ? 'a' : 'b'}`, { pool: { size: 2 } });
    });
    afterAll(async () => t?.close());

    const CTX = "SELECT current_setting('app.current_tenant') AS tenant, current_setting('search_path') AS path";

    it('simple protocol: setting, search_path, RLS rows and the tenant schema', async () => {
      const c = await t.pgClient('acme');
      const r = await c.query(CTX);
      expect(r.rows[0]).toEqual({ tenant: 'acme', path: '"tenant_acme", public' });
      expect((await c.query('SELECT item FROM orders ORDER BY item')).rows.map((x) => x.item)).toEqual(['anvil', 'rocket']);
      expect((await c.query('SELECT body FROM notes')).rows).toEqual([{ body: 'acme note' }]);
      const g = await t.pgClient('globex');
      expect((await g.query('SELECT item FROM orders')).rows).toEqual([{ item: 'widget' }]);
      expect((await g.query('SELECT body FROM notes')).rows).toEqual([{ body: 'globex note' }]);
    });

    it('extended protocol (parameters) and explicit transactions', async () => {
      const c = await t.pgClient('globex');
      const r = await c.query(`${CTX}, $1::int AS n`, [7]);
      expect(r.rows[0]).toEqual({ tenant: 'globex', path: '"tenant_globex", public', n: 7 });
      await c.query('BEGIN');
      expect((await c.query(CTX)).rows[0].tenant).toBe('globex');
      await c.query('SAVEPOINT s1');
      await expect(c.query('SELECT 1/0')).rejects.toThrow(/division by zero/);
      await c.query('ROLLBACK TO SAVEPOINT s1');
      expect((await c.query(CTX)).rows[0].tenant).toBe('globex');
      await c.query('COMMIT');
      expect((await c.query(CTX)).rows[0].tenant).toBe('globex');
    });

    it('postgres.js (extended protocol, pipelined) sees only its tenant', async () => {
      const sql = await t.sql('acme');
      const rows = await sql`SELECT item FROM orders WHERE item <> ${'none'} ORDER BY item`;
      expect(rows.map((r) => r.item)).toEqual(['anvil', 'rocket']);
      const inTx = await sql.begin(async (tx) => [await tx`SELECT current_setting('app.current_tenant') AS t`, await tx`SELECT count(*)::int AS n FROM orders`]);
      expect(inTx[0][0].t).toBe('acme');
      expect(inTx[1][0].n).toBe(2);
    });

    it('a multi-statement string keeps the context after COMMIT and after ROLLBACK inside it', async () => {
      const c = await t.pgClient('acme');
      const res = (await c.query(
        "BEGIN; SELECT 1; COMMIT; SELECT current_setting('app.current_tenant') AS a; BEGIN; SELECT 2; ROLLBACK; SELECT current_setting('app.current_tenant') AS b, current_setting('search_path') AS p",
      )) as unknown as Array<{ rows: Array<Record<string, string>> }>;
      expect(res[3].rows[0].a).toBe('acme');
      expect(res[7].rows[0]).toEqual({ b: 'acme', p: '"tenant_acme", public' });
    });

    it('statements that refuse a transaction block or pipeline still work (VACUUM)', async () => {
      const c = await t.pgClient('acme');
      await expect(c.query('VACUUM tenant_acme.notes')).resolves.toBeDefined();
      expect((await c.query(CTX)).rows[0].tenant).toBe('acme');
    });

    it('fails closed: if the context cannot be set, the statement does not run and the backend is discarded', async () => {
      const admin = await t.admin();
      const before = Number((await admin.query('SELECT count(*) FROM orders')).rows[0].count);
      // An invalid TimeZone startup parameter makes the injected set_config fail on the server.
      const sql = await t.sql('acme', { connection: { TimeZone: 'Mars/Olympus_Mons' }, fetch_types: false });
      const err = await sql`INSERT INTO orders (tenant_id, item) VALUES ('acme', 'should-not-exist')`.catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      // The refused value is the client's own: the server's error, as FATAL (as at a direct login), and the
      // connection closed. (postgres.js reports a FATAL in the middle of a query as CONNECTION_CLOSED; the
      // FATAL itself is checked with node-postgres in test/drivers/transparency.test.ts.)
      const e = err as Error & { code?: string };
      expect(e.code === '22023' || /CONNECTION_CLOSED/.test(e.message), e.message).toBe(true);
      const after = Number((await admin.query('SELECT count(*) FROM orders')).rows[0].count);
      expect(after).toBe(before);
      // The same client's next statement fails too (it was disconnected), without hanging.
      const err2 = await sql`SELECT 1`.catch((e: Error) => e);
      expect(err2).toBeInstanceOf(Error);
      await sql.end();
      // Healthy clients are unaffected.
      const ok = await t.pgClient('globex');
      expect((await ok.query(CTX)).rows[0].tenant).toBe('globex');
    });
  });
}
