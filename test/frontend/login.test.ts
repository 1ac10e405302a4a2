// Client login over the wire: encryption requests declined, every bad token and bad startup refused with
// the SQLSTATE drivers expect and a message that never echoes the token; psql works with a token.
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { firstError, rawExchange } from '../support/wire.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const run = promisify(execFile);
const hasPsql = await run('psql', ['--version']).then(
  () => true,
  () => false,
);



describe('client login', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'login', { pool: { size: 2 } });
  });
  afterAll(async () => t?.close());

  async function loginError(password: string, database = t.database): Promise<{ code: string; message: string }> {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database, user: 'app', password });
    c.on('error', () => {});
    const e = (await c.connect().then(
      () => null,
      (err: unknown) => err,
    )) as { code: string; message: string } | null;
    await c.end().catch(() => {});
    expect(e, 'login should have been refused').not.toBeNull();
    expect(e!.message).not.toContain(password.length > 10 ? password.slice(10, 40) : '\u0000');
    return e!;
  }

  it('accepts a valid token and reports server parameters and a proxy-issued key', async () => {
    const c = await t.pgClient('acme');
    const params = (c as unknown as { connectionParameters: unknown; processID: number; secretKey: number });
    expect(params.processID).toBeGreaterThan(0);
    const serverPids = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    expect(params.processID).not.toBe(serverPids);
    expect((await c.query('SHOW server_version')).rows.length).toBe(1);
  });

  it('expired token: 28P01', async () => {
    const e = await loginError(await t.token('acme', { expSeconds: -60 }));
    expect(e.code).toBe('28P01');
    expect(e.message).toMatch(/expired/);
  });

  it('token signed with another key: 28P01', async () => {
    const e = await loginError(await t.token('acme', { secret: 'another-secret-that-is-32-bytes-long!!' }));
    expect(e.code).toBe('28P01');
    expect(e.message).toMatch(/signature/);
  });

  it('not a JWT at all: 28P01', async () => {
    const e = await loginError('hunter2-not-a-token-at-all-really');
    expect(e.code).toBe('28P01');
  });

  it('token without a tenant claim: 28000', async () => {
    const e = await loginError(await t.token(null));
    expect(e.code).toBe('28000');
    expect(e.message).toMatch(/tenant/);
  });

  it('tenant id outside id_pattern: 28000', async () => {
    const e = await loginError(await t.token('Acme-Corp; DROP TABLE x'));
    expect(e.code).toBe('28000');
    expect(e.message).toMatch(/id_pattern/);
  });

  it('unknown database: 3D000', async () => {
    const e = await loginError(await t.token('acme'), 'no_such_db');
    expect(e.code).toBe('3D000');
    expect(e.message).toMatch(/no_such_db/);
  });

  it('malformed startup packet: 08P01', async () => {
    // Length 20, protocol 3.0, a parameter name without a value or terminator.
    const bad = Buffer.alloc(20);
    bad.writeUInt32BE(20, 0);
    bad.writeUInt32BE(196608, 4);
    bad.write('user\0abc', 8);
    const reply = await rawExchange(t.proxy.port, bad);
    expect(firstError(reply)?.code).toBe('08P01');
    const tooLong = Buffer.alloc(8);
    tooLong.writeUInt32BE(1_000_000, 0);
    tooLong.writeUInt32BE(196608, 4);
    expect(firstError(await rawExchange(t.proxy.port, tooLong))?.code).toBe('08P01');
  });

  it('SSLRequest is answered N and the login then proceeds in cleartext', async () => {
    const ssl = Buffer.alloc(8);
    ssl.writeUInt32BE(8, 0);
    ssl.writeUInt32BE(80877103, 4);
    const reply = await rawExchange(t.proxy.port, ssl);
    expect(reply.toString('latin1', 0, 1)).toBe('N');
  });

  it('refuses unsupported startup parameters with a clear message', async () => {
    const sql = await t.sql('acme', { connection: { search_path: 'tenant_globex' }, fetch_types: false });
    const e = (await sql`SELECT 1`.catch((err: unknown) => err)) as { code: string; message: string };
    expect(e.code).toBe('42501');
    expect(e.message).toMatch(/search_path is set by the proxy/);
  });

  it.runIf(hasPsql)('psql works with the token as PGPASSWORD', async () => {
    const { stdout } = await run(
      'psql',
      ['-X', '-At', '-h', '127.0.0.1', '-p', String(t.proxy.port), '-U', 'app', '-d', t.database, '-c', "SELECT current_setting('app.current_tenant')", '-c', 'SELECT count(*) FROM orders'],
      { env: { ...process.env, PGPASSWORD: await t.token('globex'), PGSSLMODE: 'disable' } },
    );
    expect(stdout.trim().split('\n')).toEqual(['globex', '1']);
  });
});

describe('startup timeout', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'login_timeout', { listen: { startup_timeout_ms: 300 } });
  });
  afterAll(async () => t?.close());

  it('a client that connects and says nothing is cut off with 08P01 after startup_timeout_ms', async () => {
    const started = Date.now();
    const reply = await rawExchange(t.proxy.port, Buffer.alloc(0));
    expect(Date.now() - started).toBeLessThan(1500);
    expect(firstError(reply)?.code).toBe('08P01');
    expect(firstError(reply)?.message).toMatch(/startup did not complete within 300 ms/);
  });
});
