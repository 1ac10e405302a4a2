// What a client is told when no backend can be had: FATAL with the SQLSTATE the server itself would use
// (53300, 08006), and the connection closed, as a server and PgBouncer (query_wait_timeout) do. A
// non-fatal error on BEGIN leaves psycopg 3.1's `with conn.transaction()` raising AssertionError on that
// connection forever; a closed connection every driver and pool handles. The "cannot reach the database"
// wording appears once.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRun, dsnFor, run } from '../drivers/scenarios.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const PYTHON = '/usr/bin/python3';
const hasPsycopg = await canRun(PYTHON, ['-c', 'import psycopg']);

const PSYCOPG_SCRIPT = `
import json, sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
out = {}
for attempt in ('first', 'second'):
    try:
        with conn.transaction():
            conn.execute('SELECT 1')
        out[attempt] = 'ok'
    except Exception as e:
        out[attempt] = type(e).__name__ + ':' + str(getattr(e, 'sqlstate', None)) + ':' + str(e)[:200]
out['closed'] = conn.closed
print(json.dumps(out))
`;

describe('no backend for a client', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'acquire_errors', { pool: { size: 1, acquire_timeout_ms: 300 } });
  });
  afterAll(async () => t?.close());

  it('53300 after acquire_timeout_ms is FATAL: the connection closes, a new one works once a backend is free', async () => {
    const holder = await t.pgClient('acme');
    await holder.query('BEGIN');
    const waiter = await t.pgClient('globex');
    const errors: Array<{ code?: string }> = [];
    waiter.on('error', (e: Error & { code?: string }) => errors.push(e));
    const ended = new Promise<void>((r) => waiter.once('end', () => r()));
    const e = (await waiter.query('SELECT 1').catch((err: unknown) => err)) as { code?: string; severity?: string; message: string };
    expect(e.code).toBe('53300');
    expect(e.severity).toBe('FATAL');
    expect(e.message).toMatch(/after waiting 300 ms/);
    await ended;
    await holder.query('COMMIT');
    const next = await t.pgClient('globex');
    expect((await next.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('globex');
  });

  it.runIf(hasPsycopg)('psycopg 3 `with conn.transaction()` after a 53300 on BEGIN: a closed connection, never AssertionError', async () => {
    const holder = await t.pgClient('acme');
    await holder.query('BEGIN');
    try {
      const { stdout } = await run(PYTHON, ['-c', PSYCOPG_SCRIPT, await dsnFor(t, 'proxy', 'globex')], { timeout: 60_000 });
      const out = JSON.parse(stdout) as { first: string; second: string; closed: boolean };
      expect(out.first).toMatch(/^OperationalError:.*no backend connection free/);
      expect(out.second).not.toMatch(/AssertionError/);
      expect(out.second).toMatch(/OperationalError/);
      expect(out.closed).toBe(true);
    } finally {
      await holder.query('COMMIT');
    }
  }, 90_000);
});

describe('database unreachable', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'acquire_unreachable', { backend: { port: 1, connect_timeout_ms: 2000 } });
  });
  afterAll(async () => t?.close());

  it('says "cannot reach the database" once', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') });
    const e = (await c.connect().catch((err: unknown) => err)) as { code?: string; message: string };
    expect(e.code).toBe('08006');
    expect(e.message.match(/cannot reach the database/g)).toHaveLength(1);
  });
});
