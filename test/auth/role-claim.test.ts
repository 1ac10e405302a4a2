// A role claim switches each transaction to an allowlisted backend role inside the injected context
// (SET ROLE via set_config), DISCARD ALL undoes it, and a role outside the allowlist fails the login.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

describe('role claim', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'role_claim', {
      pool: { size: 1 },
      jwt: { role_claim: 'db_role', allowed_roles: ['tenant_reader', 'tenant_missing'] },
    });
    const admin = await t.admin();
    await admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenant_reader') THEN CREATE ROLE tenant_reader NOLOGIN; END IF; END $$`);
    await admin.query(`GRANT tenant_reader TO ${t.poolUser}`);
    await admin.query('GRANT USAGE ON SCHEMA tenant_acme TO tenant_reader; GRANT SELECT ON public.orders, tenant_acme.notes TO tenant_reader');
  });
  afterAll(async () => t?.close());

  const client = async (claims: Record<string, unknown>) => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme', { claims }) });
    c.on('error', () => {});
    await c.connect();
    return c;
  };

  it('every transaction runs as the allowlisted role from the token, with the tenant context', async () => {
    const c = await client({ db_role: 'tenant_reader' });
    for (let i = 0; i < 3; i++) {
      const r = await c.query("SELECT current_user AS u, current_setting('app.current_tenant') AS t, (SELECT count(*)::int FROM orders) AS n");
      expect(r.rows[0]).toEqual({ u: 'tenant_reader', t: 'acme', n: 2 });
    }
    await expect(c.query("INSERT INTO orders (tenant_id, item) VALUES ('acme', 'x')")).rejects.toThrow(/permission denied/);
    // The next client on the same backend (pool size 1) is back to the pool role.
    const plain = await t.pgClient('acme');
    expect((await plain.query('SELECT current_user AS u')).rows[0].u).toBe(t.poolUser);
  });

  it('a role outside auth.jwt.allowed_roles fails the login with 28000', async () => {
    const e = (await client({ db_role: 'postgres' }).catch((err: unknown) => err)) as { code?: string; message: string };
    expect(e.code).toBe('28000');
    expect(e.message).toMatch(/not in auth.jwt.allowed_roles/);
  });

  it('an allowlisted role the database refuses fails closed: nothing runs', async () => {
    const c = await client({ db_role: 'tenant_missing' });
    const e = (await c.query('SELECT 1').catch((err: unknown) => err)) as { message: string };
    expect(e.message).toMatch(/tenant context could not be set/);
  });
});
