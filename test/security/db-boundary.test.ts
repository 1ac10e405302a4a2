// The database-enforced boundary (sql/tenancy-kit.sql) on its own: the proxy's guard and read-back check
// are off, as if a tenant had found a route past them. Every attack runs twice, against the kit
// ('verified': policies on tenancy.current_tenant(), the proxy sets a proof) and against the layout before
// it ('raw': a policy on current_setting('app.current_tenant'), no proof), and must cross tenants on the
// raw one, so each test is shown able to fail. For each: the attack's own transaction, the next one, and
// what the other tenant then sees on the same backend (pool size 1).
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintProof, proofKeyId } from '../../src/session/tenant-proof.js';
import { primaryServer, secondServer, TEST_PROOF_KEY, type PgServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const servers: Array<[string, PgServer | undefined]> = [
  ['primary', primaryServer()],
  ['second major', secondServer()],
];

const KID = proofKeyId(TEST_PROOF_KEY);
const inSeconds = (s: number): number => Math.floor(Date.now() / 1000) + s;

/** SQL that makes an acme session act as globex, each by another route. */
const FORGERIES: Array<[string, (c: pg.Client) => Promise<unknown>]> = [
  ['SET', (c) => c.query("SET app.current_tenant = 'globex'")],
  ['set_config', (c) => c.query("SELECT set_config('app.current_tenant', 'globex', false)")],
  // Placeholder settings such as app.current_tenant are not in pg_settings; search_path is.
  ['UPDATE pg_settings', (c) => c.query("UPDATE pg_settings SET setting = 'tenant_globex, public' WHERE name = 'search_path'")],
  ['query_to_xml', (c) => c.query("SELECT query_to_xml('SELECT set_config(''app.current_tenant'', ''globex'', false)', false, false, '')")],
  ['own proof replayed with another tenant id', async (c) => {
    const own = (await c.query("SELECT current_setting('app.tenant_proof', true) AS p")).rows[0].p as string | null;
    await c.query("SELECT set_config('app.current_tenant', 'globex', false), set_config('app.tenant_proof', $1, false)", [own ?? '']);
  }],
  ['expired proof of the other tenant', (c) =>
    c.query("SELECT set_config('app.current_tenant', 'globex', false), set_config('app.tenant_proof', $1, false)", [mintProof(TEST_PROOF_KEY, KID, 'globex', inSeconds(-5))])],
];

/** Rows of globex's the attacker could read, and rows it wrote into globex's data (counted by a superuser). */
type Outcome = { read: number; wrote: number; error?: string };

/** One transaction: the attack, then what it reaches: globex's rows, and inserts that would land as globex's. */
async function attackTransaction(c: pg.Client, admin: pg.Client, attack: (c: pg.Client) => Promise<unknown>): Promise<Outcome> {
  let read = 0;
  let error: string | undefined;
  await c.query('BEGIN');
  try {
    await attack(c);
    read = (await c.query("SELECT (SELECT count(*) FROM orders WHERE tenant_id = 'globex') + (SELECT count(*) FROM notes WHERE body = 'globex note') AS n")).rows[0].n;
    for (const insert of ["INSERT INTO orders (tenant_id, item) VALUES ('globex', 'forged')", "INSERT INTO notes (body) VALUES ('forged')"]) {
      await c.query('SAVEPOINT s');
      await c.query(insert).catch(async (e: { code?: string }) => {
        expect(e.code, insert).toBe('42501'); // new row violates row-level security policy
        await c.query('ROLLBACK TO SAVEPOINT s');
      });
    }
    await c.query('COMMIT');
  } catch (e) {
    error = (e as { code?: string }).code;
    await c.query('ROLLBACK');
  }
  const wrote = (await admin.query("SELECT (SELECT count(*) FROM orders WHERE tenant_id = 'globex' AND item = 'forged') + (SELECT count(*) FROM tenant_globex.notes WHERE body = 'forged') AS n")).rows[0].n;
  return { read: Number(read), wrote: Number(wrote), ...(error ? { error } : {}) };
}

async function ownView(c: pg.Client): Promise<{ tenant: string; orders: string[]; notes: string[] }> {
  const r = await c.query(
    "SELECT current_setting('app.current_tenant') AS tenant, ARRAY(SELECT item FROM orders ORDER BY item) AS orders, ARRAY(SELECT body FROM notes ORDER BY body) AS notes",
  );
  return r.rows[0];
}

async function cleanup(admin: pg.Client): Promise<void> {
  await admin.query("DELETE FROM orders WHERE item = 'forged'; DELETE FROM tenant_acme.notes WHERE body = 'forged'; DELETE FROM tenant_globex.notes WHERE body = 'forged'");
}

for (const [label, server] of servers) {
  for (const protection of ['verified', 'raw'] as const) {
    const verified = protection === 'verified';
    describe.runIf(server !== undefined)(`database boundary with the guard bypassed: ${protection} policies (${label})`, () => {
      let t: TestProxy;
      let admin: pg.Client;
      beforeAll(async () => {
        t = await startTestProxy(server!, `dbb_${label === 'primary' ? 'a' : 'b'}_${protection}`, {
          protection,
          pool: { size: 1 },
          tenant: { guard: false, readback_check: false },
        });
        admin = await t.admin();
      });
      afterAll(async () => t?.close());

      for (const [name, attack] of FORGERIES) {
        it(`forged tenant context (${name}): ${verified ? 'reads nothing of the other tenant, cannot write as it' : 'crosses tenants'}`, async () => {
          const acme = await t.pgClient('acme');
          const pid = (await acme.query('SELECT pg_backend_pid() AS p')).rows[0].p;
          const out = await attackTransaction(acme, admin, attack);
          if (verified) {
            expect(out).toMatchObject({ read: 0, wrote: 0 });
          } else {
            // Every forgery reaches globex's rows when isolation trusts the raw setting or search_path (the
            // expired and replayed proofs are ignored there: only the tenant setting counts).
            expect(out.error).toBeUndefined();
            expect(out.read).toBeGreaterThanOrEqual(1);
            expect(out.wrote).toBeGreaterThanOrEqual(1);
          }
          // The next transaction: the proxy sets the context again; acme sees exactly its own rows.
          const a = await ownView(acme);
          expect(a).toEqual({ tenant: 'acme', orders: verified ? ['anvil', 'rocket'] : a.orders, notes: verified ? ['acme note'] : a.notes });
          expect(a.orders).not.toContain('widget');
          expect(a.notes).not.toContain('globex note');
          // The other tenant next on the same backend sees its own rows, and (verified) none the attacker wrote.
          const globex = await t.pgClient('globex');
          expect((await globex.query('SELECT pg_backend_pid() AS p')).rows[0].p).toBe(pid);
          const g = await ownView(globex);
          expect(g.tenant).toBe('globex');
          if (verified) expect(g).toEqual({ tenant: 'globex', orders: ['widget'], notes: ['globex note'] });
          else expect([...g.orders, ...g.notes]).toContain('forged');
          await cleanup(admin);
        });
      }

      it(`schema-qualified read and write of another tenant's schema: ${verified ? 'nothing / refused' : 'crosses tenants'}`, async () => {
        const acme = await t.pgClient('acme');
        const read = async (): Promise<string[]> => (await acme.query('SELECT body FROM tenant_globex.notes')).rows.map((r) => r.body);
        const write = async (): Promise<string | undefined> =>
          acme.query("INSERT INTO tenant_globex.notes (body) VALUES ('from acme')").then(
            () => undefined,
            (e: { code?: string }) => e.code,
          );
        // Same transaction and the next.
        await acme.query('BEGIN');
        expect(await read()).toEqual(verified ? [] : ['globex note']);
        await acme.query('COMMIT');
        expect(await read()).toEqual(verified ? [] : ['globex note']);
        expect(await write()).toBe(verified ? '42501' : undefined);
        // Its own schema, qualified, still works.
        expect((await acme.query('SELECT body FROM tenant_acme.notes')).rows).toEqual([{ body: 'acme note' }]);
        const globex = await t.pgClient('globex');
        expect((await globex.query('SELECT body FROM notes ORDER BY id')).rows.map((r) => r.body)).toEqual(verified ? ['globex note'] : ['globex note', 'from acme']);
        await admin.query("DELETE FROM tenant_globex.notes WHERE body = 'from acme'");
      });

      it(`another session's query text: ${verified ? 'not readable' : 'readable'}`, async () => {
        // The victim: another backend of the same pool role (as a second pooled backend would be).
        const { default: pgLib } = await import('pg');
        const victim = new pgLib.Client({ host: t.server.host, port: t.server.port, database: t.database, user: t.poolUser, password: t.poolPassword });
        await victim.connect();
        try {
          const running = victim.query("SELECT pg_sleep(1.5), 'globex-secret-marker'");
          await new Promise((r) => setTimeout(r, 300));
          const acme = await t.pgClient('acme');
          const routes = [
            "SELECT string_agg(query, ' ') AS q FROM pg_stat_activity",
            "SELECT string_agg(query, ' ') AS q FROM pg_stat_get_activity(NULL)",
            "SELECT string_agg(pg_stat_get_backend_activity(i), ' ') AS q FROM pg_stat_get_backend_idset() i",
          ];
          for (const sql of routes) {
            const r = await acme.query(sql).then((x) => ({ q: x.rows[0].q as string | null }), (e: { code?: string }) => ({ code: e.code }));
            if (verified) expect(r, sql).toEqual({ code: '42501' });
            else expect('q' in r && r.q, sql).toContain('globex-secret-marker');
          }
          await running;
        } finally {
          await victim.end();
        }
      });

      it(`large objects: ${verified ? 'denied' : 'readable and writable across tenants'}`, async () => {
        // A large object the pool role owns (as one a tenant created through the proxy would be).
        const oid = (await admin.query("SELECT lo_from_bytea(0, 'globex secret') AS o")).rows[0].o as number;
        await admin.query(`ALTER LARGE OBJECT ${oid} OWNER TO ${t.poolUser}`);
        const acme = await t.pgClient('acme');
        const tries = [`SELECT encode(lo_get(${oid}), 'escape') AS v`, `SELECT lo_put(${oid}, 0, 'acme') AS v`, "SELECT lo_from_bytea(0, 'x') AS v", `SELECT lo_unlink(${oid}) AS v`];
        for (const sql of tries) {
          const r = await acme.query(sql).then(() => 'ran', (e: { code?: string }) => e.code);
          expect(r, sql).toBe(verified ? '42501' : 'ran');
        }
        if (verified) await admin.query(`SELECT lo_unlink(${oid})`);
      });

      it(`pg_cancel_backend / pg_terminate_backend on another tenant's backend: ${verified ? 'denied' : 'allowed'}`, async () => {
        const { default: pgLib } = await import('pg');
        const victim = new pgLib.Client({ host: t.server.host, port: t.server.port, database: t.database, user: t.poolUser, password: t.poolPassword });
        victim.on('error', () => {});
        await victim.connect();
        const vpid = (await victim.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
        const acme = await t.pgClient('acme');
        try {
          const running = victim.query('SELECT pg_sleep(3)').then(() => 'finished', (e: { code?: string }) => e.code);
          await new Promise((r) => setTimeout(r, 200));
          const cancel = await acme.query('SELECT pg_cancel_backend($1) AS ok', [vpid]).then((r) => r.rows[0].ok, (e: { code?: string }) => e.code);
          expect(cancel).toBe(verified ? '42501' : true);
          expect(await running).toBe(verified ? 'finished' : '57014');
          const term = await acme.query('SELECT pg_terminate_backend($1) AS ok', [vpid]).then((r) => r.rows[0].ok, (e: { code?: string }) => e.code);
          expect(term).toBe(verified ? '42501' : true);
        } finally {
          await victim.end().catch(() => undefined);
        }
      });

      it.runIf(verified)('the key table is unreadable, and only a proof made with the key opens the other tenant', async () => {
        const acme = await t.pgClient('acme');
        for (const sql of ['SELECT * FROM tenancy.proof_keys', 'UPDATE tenancy.proof_keys SET ipad = ipad', "INSERT INTO tenancy.proof_keys (kid, ipad, opad) VALUES ('0000000000000000', '', '')"]) {
          expect(await acme.query(sql).then(() => 'ran', (e: { code?: string }) => e.code), sql).toBe('42501');
        }
        // Positive control: with a valid proof for globex (which only the key holder can mint), the forged
        // setting is accepted. So the refusals above are the proof check at work, not a broken policy.
        const valid = await attackTransaction(acme, admin, (c) =>
          c.query("SELECT set_config('app.current_tenant', 'globex', false), set_config('app.tenant_proof', $1, false)", [mintProof(TEST_PROOF_KEY, KID, 'globex', inSeconds(60))]),
        );
        expect(valid).toEqual({ read: 1, wrote: 1 });
        await cleanup(admin);
        // ...and the same proof under a key the database does not hold is not.
        const other = 'another-proof-key-that-is-at-least-32-bytes';
        const wrongKey = await attackTransaction(acme, admin, (c) =>
          c.query("SELECT set_config('app.current_tenant', 'globex', false), set_config('app.tenant_proof', $1, false)", [mintProof(other, KID, 'globex', inSeconds(60))]),
        );
        expect(wrongKey).toEqual({ read: 0, wrote: 0 });
        await cleanup(admin);
      });

      it.runIf(verified)('a malformed, truncated or unset proof gives NULL, never an error', async () => {
        const acme = await t.pgClient('acme');
        const own = (await acme.query("SELECT current_setting('app.tenant_proof') AS p")).rows[0].p as string;
        const [kid, exp, mac] = own.split('.');
        const bad = ['', 'garbage', `${kid}.${exp}`, `${kid}.x${exp}.${mac}`, `${kid}.${exp}.${mac.toUpperCase()}`, `${kid}.${exp}.${mac.slice(1)}0`, `${kid}.${'9'.repeat(13)}.${mac}`, `${kid}.${exp}.${mac}.`, 'x'.repeat(100_000)];
        for (const proof of bad) {
          await acme.query('BEGIN');
          const r = await acme.query("SELECT set_config('app.tenant_proof', $1, true), tenancy.current_tenant() AS t, (SELECT count(*)::int FROM orders) AS n", [proof]);
          await acme.query('ROLLBACK');
          expect(r.rows[0], JSON.stringify(proof.slice(0, 40))).toMatchObject({ t: null, n: 0 });
        }
        expect((await acme.query('SELECT tenancy.current_tenant() AS t')).rows[0].t).toBe('acme');
      });

      it.runIf(verified)('the proxy renews the proof before it expires (tenant.proof_max_ttl_s)', async () => {
        const acme = await t.pgClient('acme');
        const proof = (await acme.query("SELECT current_setting('app.tenant_proof') AS p")).rows[0].p as string;
        const [kid, exp] = proof.split('.');
        expect(kid).toBe(KID);
        // Capped at proof_max_ttl_s (default 3600 s), well below the token's 3600 s + now.
        expect(Number(exp)).toBeLessThanOrEqual(inSeconds(3601));
        expect((await acme.query('SELECT tenancy.current_tenant() AS t')).rows[0].t).toBe('acme');
      });
    });
  }
}
