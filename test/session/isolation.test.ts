// Two tenants taking turns on ONE backend (pool size 1) see only their own context and nothing of the
// other's session state: DISCARD ALL runs before every reuse.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer, secondServer, type PgServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const servers: Array<[string, PgServer | undefined]> = [
  ['primary', primaryServer()],
  ['second major', secondServer()],
];

for (const [label, server] of servers) {
  describe.runIf(server !== undefined)(`session state does not cross tenants on a shared backend (${label})`, () => {
    let t: TestProxy;
    beforeAll(async () => {
      // These tests change the context on purpose to prove DISCARD ALL clears it; the read-back check, which
      // would disconnect that client, and the statement guard, which would refuse those statements, have
      // their own tests (readback.test.ts, test/guard/).
      t = await startTestProxy(server!, `iso_${label === 'primary' ? 'a' : 'b'}`, { pool: { size: 1 }, tenant: { readback_check: false, guard: false } });
    });
    afterAll(async () => t?.close());

    it('uses a single backend for both tenants', async () => {
      const a = await t.pgClient('acme');
      const b = await t.pgClient('globex');
      const pa = (await a.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const pb = (await b.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      expect(pa).toBe(pb);
    });

    it('temp tables, SET, PREPARE, advisory locks, WITH HOLD cursors, LISTEN, role and GUCs do not leak', async () => {
      const a = await t.pgClient('acme');
      const b = await t.pgClient('globex');
      const pid = (await a.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      // Tenant A leaves every kind of session state behind, in one transaction.
      await a.query(`
        CREATE TEMP TABLE leak_tmp(x int);
        INSERT INTO leak_tmp VALUES (1);
        SET statement_timeout = '123s';
        SET app.other = 'acme-secret';
        SELECT set_config('app.current_tenant', 'globex', false);
        SET search_path = tenant_globex;
        PREPARE leak_stmt AS SELECT 1;
        SELECT pg_advisory_lock(4242);
        DECLARE leak_cur CURSOR WITH HOLD FOR SELECT 1;
      `);
      // A protocol-level (named) prepared statement and a sequence's currval, too.
      await a.query({ name: 'leak_proto', text: 'SELECT 1 AS x' });
      await a.query("SELECT nextval('orders_id_seq')");
      // LISTEN is refused in transaction mode (it would end with the transaction), yet it did run on the
      // server: the reset must still drop it.
      const listen = (await a.query('LISTEN leak_channel').catch((e: unknown) => e)) as { code?: string };
      expect(listen.code).toBe('0A000');
      // Tenant B runs next on the same backend.
      const r = await b.query(`
        SELECT pg_backend_pid() AS pid,
               current_setting('app.current_tenant') AS tenant,
               current_setting('search_path') AS path,
               current_setting('statement_timeout') AS st,
               current_setting('app.other', true) AS other,
               (SELECT count(*) FROM pg_prepared_statements)::int AS prepared,
               (SELECT count(*) FROM pg_cursors)::int AS cursors,
               (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int AS locks,
               (SELECT count(*) FROM pg_listening_channels())::int AS listening,
               to_regclass('pg_temp.leak_tmp') IS NULL AS no_temp
      `);
      expect(r.rows[0]).toEqual({
        pid,
        tenant: 'globex',
        path: '"tenant_globex", public',
        st: '0',
        other: expect.toSatisfy((v: string | null) => v === null || v === ''),
        prepared: 0,
        cursors: 0,
        locks: 0,
        listening: 0,
        no_temp: true,
      });
      expect((await b.query('SELECT item FROM orders')).rows).toEqual([{ item: 'widget' }]);
      // currval is per session: defined for A, never for B on the same backend.
      const cv = (await b.query("SELECT currval('orders_id_seq')").catch((e: unknown) => e)) as { code?: string };
      expect(cv.code).toBe('55000');
    });

    it('a backend handed straight to a waiting tenant (pipelined DISCARD ALL) carries nothing over', async () => {
      const a = await t.pgClient('acme');
      const b = await t.pgClient('globex');
      const pipelined = async () => (await t.proxy.metrics.resets.get()).values.find((v) => v.labels.mode === 'pipelined')?.value ?? 0;
      const before = await pipelined();
      await a.query('BEGIN');
      await a.query("CREATE TEMP TABLE handoff_tmp(x int); SET work_mem = '77MB'; PREPARE handoff_stmt AS SELECT 1; SELECT pg_advisory_lock(77)");
      // B queues behind A's open transaction, so A's backend goes straight to B when A commits.
      const bResult = b.query(
        "SELECT current_setting('app.current_tenant') AS tenant, current_setting('work_mem') AS wm, (SELECT count(*) FROM pg_prepared_statements)::int AS prepared, (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int AS locks, to_regclass('pg_temp.handoff_tmp') IS NULL AS no_temp",
      );
      await new Promise((r) => setTimeout(r, 100));
      await a.query('COMMIT');
      expect((await bResult).rows[0]).toEqual({ tenant: 'globex', wm: '4MB', prepared: 0, locks: 0, no_temp: true });
      expect(await pipelined()).toBeGreaterThan(before);
    });

    it('SET ROLE does not survive into the next tenant', async () => {
      const admin = await t.admin();
      await admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'iso_other_${label === 'primary' ? 'a' : 'b'}') THEN CREATE ROLE iso_other_${label === 'primary' ? 'a' : 'b'}; END IF; END $$`);
      await admin.query(`GRANT iso_other_${label === 'primary' ? 'a' : 'b'} TO ${t.poolUser}`);
      const a = await t.pgClient('acme');
      await a.query(`SET ROLE iso_other_${label === 'primary' ? 'a' : 'b'}`);
      const b = await t.pgClient('globex');
      expect((await b.query('SELECT current_user AS u')).rows[0].u).toBe(t.poolUser);
    });
  });
}
