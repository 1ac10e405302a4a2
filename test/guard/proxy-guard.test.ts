// The statement guard in the proxy: a tenant's attempt to change its own context is refused with 42501
// naming the rule, nothing of the offending message runs (no part of a multi-statement string, nothing
// after a blocked Parse until Sync), the connection and transaction state stay sane, and trusted static
// users are not guarded.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeVerifier } from '../../src/auth/scram.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

describe('statement guard in the proxy', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'guard_proxy', {
      pool: { size: 2 },
      users: [{ name: 'ops', scram: await makeVerifier('ops-pw'), tenant: 'none' }],
    });
  });
  afterAll(async () => t?.close());

  const CTX = "SELECT current_setting('app.current_tenant') AS t, current_setting('search_path') AS p";
  const err = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string; message: string }) => e);
  const blocked = async () => (await t.proxy.metrics.securityEvents.get()).values.find((v) => v.labels.event === 'TENANT_STATEMENT_BLOCKED')?.value ?? 0;

  it('SET of the tenant setting (simple protocol): 42501 naming the rule; the connection and context stay intact', async () => {
    const before = await blocked();
    const c = await t.pgClient('acme');
    const e = await err(c.query("SET app.current_tenant = 'globex'"));
    expect(e?.code).toBe('42501');
    expect(e?.message).toMatch(/rule set_protected/);
    expect((await c.query(CTX)).rows[0]).toEqual({ t: 'acme', p: '"tenant_acme", public' });
    expect(await blocked()).toBe(before + 1);
  });

  it('a multi-statement string with one bad statement runs no part of it', async () => {
    const c = await t.pgClient('acme');
    const admin = await t.admin();
    const e = await err(c.query("INSERT INTO orders (tenant_id, item) VALUES ('acme', 'guarded-insert'); SET search_path = tenant_globex"));
    expect(e?.code).toBe('42501');
    expect((await admin.query("SELECT count(*)::int AS n FROM orders WHERE item = 'guarded-insert'")).rows[0].n).toBe(0);
  });

  it('extended protocol: a blocked Parse fails in place, the rest of the pipeline is skipped to Sync, then all is well', async () => {
    const c = await t.pgClient('acme');
    const e = await err(c.query({ text: "SELECT pg_catalog.set_config('app.current_tenant', $1, false)", values: ['globex'] }));
    expect(e?.code).toBe('42501');
    expect(e?.message).toMatch(/rule set_config/);
    expect((await c.query({ text: `${CTX}, $1::int AS n`, values: [1] })).rows[0]).toEqual({ t: 'acme', p: '"tenant_acme", public', n: 1 });
    const sql = await t.sql('globex');
    const e2 = await err(sql`SELECT set_config(${'search_path'}, 'tenant_acme', false)`);
    expect(e2?.code).toBe('42501');
    const [row] = await sql`SELECT current_setting('app.current_tenant') AS t`;
    expect(row.t).toBe('globex');
  });

  it('inside an explicit transaction: the transaction is aborted like for any error, ROLLBACK recovers', async () => {
    const c = await t.pgClient('acme');
    await c.query('BEGIN');
    expect((await err(c.query('RESET ALL')))?.code).toBe('42501');
    expect((await err(c.query('SELECT 1')))?.code).toBe('25P02');
    await c.query('ROLLBACK');
    expect((await c.query(CTX)).rows[0].t).toBe('acme');
  });

  it('PREPARE, DO, DISCARD, SET ROLE, set_config in a CTE are blocked; look-alikes pass', async () => {
    const c = await t.pgClient('acme');
    for (const bad of [
      "PREPARE p AS SELECT set_config('app.current_tenant', 'x', false)",
      "DO $$ BEGIN PERFORM set_config('app.current_tenant', 'x', false); END $$",
      // (DISCARD ALL alone is a client's session reset, run as the only thing of its hold: session-reset.test.ts.)
      'DISCARD ALL; SELECT 1',
      'SET ROLE postgres',
      "WITH x AS (SELECT set_config('app.current_tenant', 'globex', false)) SELECT * FROM x",
      `SET U&"search\\005Fpath" = tenant_globex`,
    ]) {
      expect((await err(c.query(bad)))?.code, bad).toBe('42501');
    }
    for (const ok of ["SELECT 'set_config' AS s", "UPDATE orders SET item = item WHERE tenant_id = 'acme'", "SELECT set_config('app.other', 'v', false)", "SET work_mem = '8MB'", 'SHOW search_path']) {
      expect((await err(c.query(ok))), ok).toBeNull();
    }
  });

  it('a query too large for the guard is refused whole, and nothing of it runs', async () => {
    const c = await t.pgClient('acme');
    const admin = await t.admin();
    const big = `INSERT INTO orders (tenant_id, item) VALUES ('acme', 'too-big-${'x'.repeat(1_200_000)}')`;
    const e = await err(c.query(big));
    expect(e?.code).toBe('42501');
    expect(e?.message).toMatch(/statement_too_large/);
    expect((await admin.query("SELECT count(*)::int AS n FROM orders WHERE item LIKE 'too-big-%'")).rows[0].n).toBe(0);
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });

  it('a trusted static user (tenant: none) is not guarded', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'ops', password: 'ops-pw' });
    await c.connect();
    await c.query('SET search_path = tenant_globex');
    await c.end();
  });
});
