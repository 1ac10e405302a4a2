// Drain on SIGTERM (issue 12 item 6), on the real CLI process against real PostgreSQL: /readyz 503 at once,
// the listener closed, an idle client 57P01 at once, a client inside a transaction allowed to commit within
// shutdown.drain_timeout_ms and then 57P01, a query still running at the deadline cancelled on the server
// (gone from pg_stat_activity), and exit status 0.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createFixtureDatabase, primaryServer } from '../support/pg.js';
import { JWT_SECRET } from '../support/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type PgErr = { code?: string };

describe('drain on SIGTERM', () => {
  it('lets a transaction finish, ends idle clients at once, cancels a query past the deadline, exits 0', async () => {
    const server = primaryServer();
    const fx = await createFixtureDatabase(server, 'ops_drain');
    const dir = mkdtempSync(join(tmpdir(), 'pgtp-drain-'));
    const file = join(dir, 'proxy.yaml');
    writeFileSync(
      file,
      [
        'listen: { port: 0, plaintext_tokens: loopback }',
        `backend: { host: ${server.host}, port: ${server.port}, database: ${fx.database}, user: ${fx.poolUser}, password: "${fx.poolPassword}" }`,
        'pool: { size: 4 }',
        `auth: { jwt: { algorithms: [HS256], secret: "${JWT_SECRET}" } }`,
        "tenant: { search_path: 'tenant_{tenant}, public' }",
        'shutdown: { drain_timeout_ms: 1500 }',
        'log: { level: info }',
      ].join('\n'),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', file], { env: { ...process.env, PGTP_ADMIN_EPHEMERAL: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const started = Date.now();
    let ports: { port: number; admin_port: number } | null = null;
    while (!ports && Date.now() - started < 30_000) {
      const line = out.split('\n').find((l) => l.includes('"LISTENING"'));
      if (line) ports = JSON.parse(line) as { port: number; admin_port: number };
      else await sleep(50);
    }
    expect(ports, out).not.toBeNull();
    const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(JWT_SECRET));
    const connect = async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: ports!.port, database: fx.database, user: 'app', password: token });
      const errors: PgErr[] = [];
      c.on('error', (e: Error) => errors.push(e as PgErr));
      await c.connect();
      return { c, errors };
    };
    const admin = new pg.Client({ host: server.host, port: server.port, database: fx.database, user: server.user, password: server.password });
    await admin.connect();
    try {
      const idle = await connect();
      await idle.c.query('SELECT 1');
      const finisher = await connect();
      await finisher.c.query('BEGIN');
      const runner = await connect();
      await runner.c.query('BEGIN');
      const running = runner.c.query('SELECT pg_sleep(60) /*drain-runner*/').catch((e: PgErr) => e);
      await sleep(200);

      child.kill('SIGTERM');
      const sigAt = Date.now();
      // /readyz turns 503 at once.
      let ready = 0;
      while (Date.now() - sigAt < 1000 && ready !== 503) {
        ready = await fetch(`http://127.0.0.1:${ports!.admin_port}/readyz`).then((r) => r.status, () => 0);
      }
      expect(ready).toBe(503);
      // The listener is closed: a new connection is refused.
      const refused = await new Promise<boolean>((r) => {
        const s = net.connect(ports!.port, '127.0.0.1');
        s.on('connect', () => (s.destroy(), r(false)));
        s.on('error', () => r(true));
      });
      expect(refused).toBe(true);
      // The idle client got 57P01 at once.
      while (idle.errors.length === 0 && Date.now() - sigAt < 1000) await sleep(20);
      expect(idle.errors[0]?.code).toBe('57P01'); // (pg then adds its own "Connection terminated")
      // The client inside a transaction may finish it within drain_timeout_ms; then it gets 57P01.
      await finisher.c.query('SELECT 1');
      await finisher.c.query('COMMIT');
      while (finisher.errors.length === 0 && Date.now() - sigAt < 1500) await sleep(20);
      expect(finisher.errors[0]?.code).toBe('57P01');
      // The runner's query outlives the deadline: cancelled on the server, client told 57P01.
      const r = (await running) as PgErr;
      expect(r?.code ?? runner.errors[0]?.code).toMatch(/57P01|57014/);
      expect(Date.now() - sigAt).toBeGreaterThanOrEqual(1300);
      expect(await exited).toBe(0);
      const left = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%drain-runner%' AND pid <> pg_backend_pid()");
      expect(left.rows[0].n).toBe(0);
      expect(out).toContain('"DRAIN"');
    } finally {
      child.kill('SIGKILL');
      await admin.end();
    }
  }, 60_000);
});

describe('drain in session mode', () => {
  it('ends an idle session-mode client at once (it holds a backend but no transaction)', async () => {
    const { startTestProxy } = await import('../support/proxy.js');
    const t = await startTestProxy(primaryServer(), 'ops_drain_session', { pool: { mode: 'session' }, shutdown: { drain_timeout_ms: 5000 } });
    try {
      const c = await t.pgClient('acme');
      const errors: PgErr[] = [];
      c.on('error', (e: Error) => errors.push(e as PgErr));
      await c.query('SELECT 1');
      const started = Date.now();
      await t.proxy.drain();
      expect(Date.now() - started).toBeLessThan(2500); // not the 5 s deadline
      while (errors.length === 0 && Date.now() - started < 3000) await sleep(20);
      expect(errors[0]?.code).toBe('57P01');
    } finally {
      await t.close();
    }
  });
});
