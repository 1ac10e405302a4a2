// Tenant abuse through the proxy, found by a red-team pass: a tenant locking everyone out through the shared
// role, holding a backend past every timeout, and running on after suspension. Each test asserts the safe
// behaviour. Pool size 1, so tenants take turns on one backend.
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { RawClient, summarise, copyData, copyDone } from '../guard/raw-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const err = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string; message: string }) => e);


describe('tenant abuse', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'tenant_abuse', {
      pool: { size: 1, acquire_timeout_ms: 1500, idle_in_transaction_timeout_ms: 1000, query_timeout_ms: 1000 },
    });
  });
  afterAll(async () => t?.close());

  const raw = async (tenant: string) => RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token(tenant));

  it('a tenant cannot change the pool role password (ALTER ROLE/USER CURRENT_USER PASSWORD)', async () => {
    // Any role may change its own password, and every tenant shares the pool role: once changed, every new
    // backend connection of the proxy fails authentication, for every tenant.
    const c = await t.pgClient('acme');
    const admin = await t.admin();
    try {
      for (const sql of ["ALTER ROLE CURRENT_USER PASSWORD 'pwned-by-acme'", "alter /* x */ user current_user with password 'pwned'", "ALTER USER SESSION_USER PASSWORD NULL"]) {
        const e = await err(c.query(sql));
        expect(e?.code, sql).toBe('42501');
        expect(e?.message, sql).toMatch(/rule role_ddl/);
      }
      // The proxy can still open new backends (the password is unchanged).
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [t.poolUser]);
      await sleep(100);
      const g = await t.pgClient('globex');
      expect((await g.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await admin.query(`ALTER ROLE ${t.poolUser} PASSWORD '${t.poolPassword}'`);
    }
  });

  it('a Parse without Sync does not pin the only backend past idle_in_transaction_timeout_ms', async () => {
    const c = await raw('acme');
    await c.write(serialize.parse({ text: 'SELECT 1' }));
    await sleep(2500);
    const other = await err(t.pgClient('globex').then((g) => g.query('SELECT 1')));
    c.end();
    expect(other).toBeNull();
  });

  it('a Sync sent during COPY FROM STDIN does not pin the backend past the documented timeouts', async () => {
    const c = await raw('acme');
    await c.write(serialize.query('CREATE TEMP TABLE cp(a int); COPY cp FROM STDIN'));
    await sleep(200);
    await c.write(Buffer.concat([serialize.sync(), copyData('1\n'), copyDone]));
    const r = summarise(await c.untilReady());
    expect(r.error).toBeNull();
    await sleep(2500);
    const other = await err(t.pgClient('globex').then((g) => g.query('SELECT 1')));
    c.end();
    expect(other).toBeNull();
  });

  it('a client that keeps its backend (a Parse trailing every Sync) is still refused once its tenant is suspended', async () => {
    const c = await raw('acme');
    const q = Buffer.concat([
      serialize.parse({ name: 'q', text: "SELECT string_agg(item, ',' ORDER BY item) FROM orders" }),
      serialize.bind({ statement: 'q' }),
      serialize.execute({}),
      serialize.sync(),
    ]);
    const trailing = serialize.parse({ name: '', text: 'SELECT 1' });
    try {
      const again = Buffer.concat([serialize.bind({ statement: 'q' }), serialize.execute({}), serialize.sync(), trailing]);
      await c.write(Buffer.concat([q, trailing]));
      expect(summarise(await c.untilReady()).rows).toEqual(['anvil,rocket']);
      // From here on the backend is never given back: each transaction ends with a Parse already sent.
      // The trailing Parse took a backend; a Flush brings the answers to its context prefix, so the next Sync is
      // not held behind the prefix and the Parse after it goes out before the server's ReadyForQuery.
      await c.write(serialize.flush());
      await sleep(50);
      await c.write(again);
      expect(summarise(await c.untilReady()).rows).toEqual(['anvil,rocket']);
      await sleep(50);
      await t.proxy.reload!({ ...t.config, tenant: { ...t.config.tenant, deny: ['acme'] } });
      // A new login is refused...
      expect((await err(raw('acme')))?.message).toMatch(/suspended/);
      // ...and so must be this client's next transaction.
      await c.write(again);
      const r = await c.untilReady().then(summarise, (e: Error) => ({ rows: [], error: { M: e.message }, status: '' }));
      expect(r.rows).toEqual([]);
    } finally {
      c.end();
      await t.proxy.reload!({ ...t.config, tenant: { ...t.config.tenant, deny: [] } });
    }
  });
});
