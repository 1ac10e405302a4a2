// One schema per tenant and suspension: an explicit schema map picks each tenant's schema, and a tenant
// added to tenant.deny (applied by reload) is refused at its next transaction and at login.
import { parseConfig } from '../../src/config/load.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

describe('schema map and deny-list', () => {
  let t: TestProxy;
  beforeAll(async () => {
    // acme is mapped to a schema the template would never produce; globex keeps the template.
    t = await startTestProxy(primaryServer(), 'tenancy', { tenant: { schema_map: { acme: 'acme_mapped' } } });
    const admin = await t.admin();
    await admin.query(`CREATE SCHEMA IF NOT EXISTS acme_mapped; CREATE TABLE IF NOT EXISTS acme_mapped.notes (id int, body text);
      INSERT INTO acme_mapped.notes VALUES (1, 'mapped acme'); GRANT USAGE ON SCHEMA acme_mapped TO ${t.poolUser}; GRANT SELECT ON acme_mapped.notes TO ${t.poolUser}`);
  });
  afterAll(async () => t?.close());

  it('the explicit map decides the schema; unmapped tenants use the template', async () => {
    const g = await t.pgClient('globex');
    expect((await g.query("SELECT current_setting('search_path') AS p, (SELECT body FROM notes LIMIT 1) AS b")).rows[0]).toEqual({ p: '"tenant_globex", public', b: 'globex note' });
    const a = await t.pgClient('acme');
    expect((await a.query("SELECT current_setting('search_path') AS p, (SELECT body FROM notes LIMIT 1) AS b")).rows[0]).toEqual({ p: '"acme_mapped", public', b: 'mapped acme' });
  });

  it('a tenant suspended by reload is refused at its next transaction and at login; others are not', async () => {
    const acme = await t.pgClient('acme');
    const globex = await t.pgClient('globex');
    const errors: Array<{ code?: string }> = [];
    acme.on('error', (e: Error & { code?: string }) => errors.push(e));
    const next = { ...t.config, tenant: { ...t.config.tenant, deny: ['acme'] } };
    await t.proxy.reload!(next);
    const e = (await acme.query('SELECT 1').catch((err: unknown) => err)) as { code?: string; message: string };
    expect(e.code ?? errors[0]?.code).toBe('28000');
    expect((await globex.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    const again = (await t.pgClient('acme').catch((err: unknown) => err)) as { code?: string; message: string };
    expect(again.code).toBe('28000');
    expect(again.message).toMatch(/tenant "acme" is suspended/);
    await t.proxy.reload!({ ...t.config, tenant: { ...t.config.tenant, deny: [] } });
    expect((await (await t.pgClient('acme')).query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });

  it('two tenants mapped to one schema are refused at load', () => {
    const base = 'backend: { database: app, user: u, password: p }\nauth: { jwt: { algorithms: [HS256], secret: "0123456789012345678901234567890123456789" } }\n';
    expect(() => parseConfig(base + 'tenant: { schema_map: { acme: one, acme_corp: one } }')).toThrow(/already mapped to tenant "acme"/);
  });
});
