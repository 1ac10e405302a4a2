// Static users log in with SCRAM-SHA-256 against verifiers from `hash-password` (never plaintext): bound to a
// tenant, or trusted (tenant: none, no context) for migrations; each with its own pool cap. Plus the
// per-address limit on authentication failures.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeVerifier } from '../../src/auth/scram.js';
import { FailureLimiter } from '../../src/frontend/rate-limit.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const run = promisify(execFile);
const hasPsql = await run('psql', ['--version']).then(
  () => true,
  () => false,
);

describe('static users (SCRAM-SHA-256)', () => {
  let t: TestProxy;
  const passwords = { ops: 'ops-password-1', acmejob: 'acme-job-password-2' };
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'static_users', {
      pool: { size: 3, acquire_timeout_ms: 400 },
      users: [
        { name: 'ops', scram: await makeVerifier(passwords.ops), tenant: 'none', pool_size: 1 },
        { name: 'acmejob', scram: await makeVerifier(passwords.acmejob), tenant: 'acme' },
      ],
    });
  });
  afterAll(async () => t?.close());

  const connect = async (user: string, password: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user, password });
    c.on('error', () => {});
    await c.connect();
    return c;
  };

  it('hash-password verifiers are the ones PostgreSQL itself accepts', async () => {
    const admin = await t.admin();
    const verifier = await makeVerifier('direct-check-pw');
    await admin.query(`DROP ROLE IF EXISTS scram_check; CREATE ROLE scram_check LOGIN PASSWORD '${verifier}'`);
    const c = new pg.Client({ host: t.server.host, port: t.server.port, database: t.database, user: 'scram_check', password: 'direct-check-pw' });
    await c.connect();
    expect((await c.query('SELECT current_user AS u')).rows[0].u).toBe('scram_check');
    await c.end();
  });

  it('a user bound to a tenant gets that tenant context', async () => {
    const c = await connect('acmejob', passwords.acmejob);
    expect((await c.query("SELECT current_setting('app.current_tenant') AS t, (SELECT count(*)::int FROM orders) AS n")).rows[0]).toEqual({ t: 'acme', n: 2 });
    await c.end();
  });

  it('a wrong password is 28P01 and never reveals anything', async () => {
    const e = (await connect('acmejob', 'nope').catch((err: unknown) => err)) as { code?: string; message: string };
    expect(e.code).toBe('28P01');
    expect(e.message).toBe('password authentication failed for user "acmejob"');
  });

  it('tenant: none is a trusted login: no context is injected, and it can run DDL', async () => {
    const admin = await t.admin();
    await admin.query(`GRANT CREATE ON SCHEMA tenant_acme TO ${t.poolUser}`);
    const c = await connect('ops', passwords.ops);
    const r = await c.query("SELECT current_setting('app.current_tenant', true) AS t, current_setting('search_path') AS p");
    expect(r.rows[0].t === null || r.rows[0].t === '').toBe(true);
    expect(r.rows[0].p).not.toContain('tenant_');
    await c.query('CREATE TABLE tenant_acme.migrated (id int)');
    await c.query('ALTER TABLE tenant_acme.migrated ADD COLUMN note text');
    expect((await admin.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'migrated'")).rows[0].n).toBe(2);
    await c.end();
  });

  it('each static user has its own pool cap; others are unaffected', async () => {
    const a = await connect('ops', passwords.ops);
    const b = await connect('ops', passwords.ops);
    await a.query('BEGIN');
    const e = (await b.query('SELECT 1').catch((err: unknown) => err)) as { code?: string; message: string };
    expect(e.code).toBe('53300');
    expect(e.message).toMatch(/user "ops" already holds its 1 backend connections/);
    const tenantClient = await t.pgClient('globex');
    expect((await tenantClient.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await a.query('COMMIT');
    // b was closed with FATAL 53300 (as a server and PgBouncer do); a new connection of the user is served.
    const b2 = await connect('ops', passwords.ops);
    expect((await b2.query('SELECT 2 AS two')).rows[0].two).toBe(2);
    await a.end();
    await b.end().catch(() => {});
    await b2.end();
  });

  it.runIf(hasPsql)('psql logs in with SCRAM', async () => {
    const { stdout } = await run('psql', ['-X', '-At', '-h', '127.0.0.1', '-p', String(t.proxy.port), '-U', 'acmejob', '-d', t.database, '-c', "SELECT current_setting('app.current_tenant')"], {
      env: { ...process.env, PGPASSWORD: passwords.acmejob, PGSSLMODE: 'disable' },
    });
    expect(stdout.trim()).toBe('acme');
  });
});

describe('authentication failure rate limit', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'rate_limit', { auth: { rate_limit: { max_failures: 3, window_ms: 60_000 } } });
  });
  afterAll(async () => t?.close());

  it('after max_failures bad logins from an address, even a valid token from it is refused for the window', async () => {
    for (let i = 0; i < 3; i++) {
      const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: 'not-a-token' });
      c.on('error', () => {});
      const e = (await c.connect().catch((err: unknown) => err)) as { code?: string };
      expect(e.code).toBe('28P01');
    }
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') });
    c.on('error', () => {});
    const e = (await c.connect().catch((err: unknown) => err)) as { code?: string; message: string };
    expect(e.code).toBe('28000');
    expect(e.message).toMatch(/too many failed logins from this address; retry in \d+ s/);
  });

  it('remembers a bounded number of addresses and forgets a window once it ends', () => {
    const l = new FailureLimiter({ max_failures: 1, window_ms: 1000, max_tracked_addresses: 2 });
    l.fail('a', 0);
    l.fail('b', 0);
    l.fail('c', 0);
    expect(l.tracked).toBe(2);
    expect(l.retryAfter('a', 10)).toBe(0); // forgotten (oldest)
    expect(l.retryAfter('c', 10)).toBe(990);
    expect(l.retryAfter('c', 1000)).toBe(0);
  });
});
