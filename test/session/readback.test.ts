// The read-back check: a function that changes the tenant context behind the proxy's back (where no
// statement guard can see) is caught at the end of the transaction, on both reset paths: the client is
// disconnected (42501), TENANT_CONTEXT_TAMPERED is counted, and the next tenant is unaffected.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

describe('read-back check', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'readback', { pool: { size: 1 } });
    const admin = await t.admin();
    // An innocent-looking helper that switches tenants: what the read-back exists to catch.
    await admin.query(`CREATE OR REPLACE FUNCTION public.sneaky(t text) RETURNS int LANGUAGE plpgsql AS $$
      BEGIN PERFORM set_config('app.current_tenant', t, false); RETURN 1; END $$;
      GRANT EXECUTE ON FUNCTION public.sneaky(text) TO ${t.poolUser}`);
  });
  afterAll(async () => t?.close());

  const tampered = async () => (await t.proxy.metrics.securityEvents.get()).values.find((v) => v.labels.event === 'TENANT_CONTEXT_TAMPERED')?.value ?? 0;

  const client = async (tenant: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token(tenant) });
    const errors: Array<{ code?: string; message: string }> = [];
    c.on('error', (e: Error & { code?: string }) => errors.push(e));
    await c.connect();
    return { c, errors };
  };

  it('eager reset (nobody waiting): the tampering client is disconnected with 42501', async () => {
    const before = await tampered();
    const { c, errors } = await client('acme');
    await c.query("SELECT public.sneaky('globex')");
    await new Promise((r) => setTimeout(r, 200));
    expect(await tampered()).toBe(before + 1);
    const e = (await c.query('SELECT 1').catch((err: unknown) => err)) as Error;
    expect(e).toBeInstanceOf(Error);
    expect(errors.map((x) => x.code)).toContain('42501');
  });

  it('pipelined reset (a client waiting): caught in front of the next transaction, which runs unaffected', async () => {
    const before = await tampered();
    const { c } = await client('acme');
    const next = await t.pgClient('globex');
    await c.query('BEGIN');
    await c.query("SELECT public.sneaky('globex')");
    const waiting = next.query("SELECT current_setting('app.current_tenant') AS t, (SELECT count(*)::int FROM orders) AS n");
    await new Promise((r) => setTimeout(r, 100));
    await c.query('COMMIT').catch(() => {});
    expect((await waiting).rows[0]).toEqual({ t: 'globex', n: 1 });
    expect(await tampered()).toBe(before + 1);
    const pipelined = (await t.proxy.metrics.resets.get()).values.find((v) => v.labels.mode === 'pipelined')?.value ?? 0;
    expect(pipelined).toBeGreaterThan(0);
  });

  it('an honest client is never flagged', async () => {
    const before = await tampered();
    const { c } = await client('acme');
    for (let i = 0; i < 20; i++) await c.query("SELECT set_config('app.other', 'fine', false), current_setting('app.current_tenant')");
    expect(await tampered()).toBe(before);
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });
});
