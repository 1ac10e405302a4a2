// Proves the harness: fixture DB + pool role on each provided server, with fail-closed row-level security.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createFixtureDatabase, type FixtureDatabase, type PgServer, primaryServer, secondServer, testProof } from './pg.js';

async function serverMajor(server: PgServer): Promise<number> {
  const admin = await adminClient(server);
  try {
    const { rows } = await admin.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    return Math.floor(Number(rows[0].v) / 10000);
  } finally {
    await admin.end();
  }
}

function checks(label: string, getServer: () => PgServer) {
  describe(label, () => {
    let server: PgServer;
    let fixture: FixtureDatabase;
    let pool: pg.Client;

    beforeAll(async () => {
      server = getServer();
      fixture = await createFixtureDatabase(server, 'harness_fixture');
      pool = new pg.Client({
        host: server.host,
        port: server.port,
        user: fixture.poolUser,
        password: fixture.poolPassword,
        database: fixture.database,
      });
      await pool.connect();
    });
    afterAll(async () => {
      await pool?.end();
    });

    it('reports its real major version', async () => {
      expect(await serverMajor(server)).toBe(server.major);
    });

    it('the pool role is an ordinary role that authenticated with SCRAM', async () => {
      const { rows } = await pool.query<{ rolsuper: boolean; rolbypassrls: boolean }>(
        'SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user',
      );
      expect(rows).toEqual([{ rolsuper: false, rolbypassrls: false }]);
      const admin = await adminClient(server);
      try {
        const { rows: pw } = await admin.query<{ p: string }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [
          fixture.poolUser,
        ]);
        expect(pw[0].p).toMatch(/^SCRAM-SHA-256\$/);
      } finally {
        await admin.end();
      }
    });

    it('fails closed: no tenant set, or an empty one, sees zero orders', async () => {
      expect((await pool.query('SELECT * FROM public.orders')).rows).toEqual([]);
      await pool.query(`SELECT set_config('app.current_tenant', '', false)`);
      expect((await pool.query('SELECT * FROM public.orders')).rows).toEqual([]);
      // A tenant without its proof is no tenant: the policies use the verified tenancy.current_tenant().
      await pool.query(`SELECT set_config('app.current_tenant', 'acme', false)`);
      expect((await pool.query('SELECT * FROM public.orders')).rows).toEqual([]);
      await pool.query(`SELECT set_config('app.current_tenant', '', false)`);
    });

    it('with app.current_tenant = acme (and its proof) sees only acme orders and can only write acme rows', async () => {
      await pool.query(`SELECT set_config('app.current_tenant', 'acme', false), set_config('app.tenant_proof', $1, false)`, [testProof('acme')]);
      const { rows } = await pool.query<{ tenant_id: string; item: string }>(
        'SELECT tenant_id, item FROM public.orders ORDER BY id',
      );
      expect(rows).toEqual([
        { tenant_id: 'acme', item: 'anvil' },
        { tenant_id: 'acme', item: 'rocket' },
      ]);
      await expect(pool.query(`INSERT INTO public.orders (tenant_id, item) VALUES ('globex', 'x')`)).rejects.toThrow(
        /row-level security/,
      );
      const notes = await pool.query<{ body: string }>('SELECT body FROM tenant_acme.notes');
      expect(notes.rows).toEqual([{ body: 'acme note' }]);
      await pool.query(`SELECT set_config('app.current_tenant', '', false)`);
    });

    it('cannot create objects in schema public', async () => {
      await expect(pool.query('CREATE TABLE public.nope (x int)')).rejects.toThrow(/permission denied/);
    });
  });
}

checks('primary server', primaryServer);

const second = secondServer();
describe.runIf(second !== undefined)('second server', () => {
  it('runs a different major version than the primary', () => {
    expect(second!.major).not.toBe(primaryServer().major);
  });
});
if (second) checks('second server', () => second);
