// pgbench (libpq; simple, extended and prepared query modes; read-only and TPC-B) completes every transaction through the proxy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { canRun, run, type Target } from './scenarios.js';

// pgbench ships with the PostgreSQL server package (postgresql-15 in CI); skip where it is not installed.
const hasPgbench = await canRun('pgbench', ['--version']);

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

describe.runIf(hasPgbench)('pgbench through the proxy', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'drv_pgbench', { pool: { size: 2 } });
    // Initialise directly as the superuser (the pool user may not CREATE in public), then let the pool user use the tables.
    await run('pgbench', ['-i', '-s', '1', '-q', '-h', t.server.host, '-p', String(t.server.port), '-U', t.server.user, t.database], {
      env: { ...process.env, PGPASSWORD: t.server.password, PGSSLMODE: 'disable' },
      timeout: 120_000,
    });
    const admin = await t.admin();
    await admin.query(`GRANT SELECT, UPDATE, INSERT ON ALL TABLES IN SCHEMA public TO ${pg.escapeIdentifier(t.poolUser)}`);
  });
  afterAll(async () => t?.close());

  /** Runs pgbench with `args` at `target` (the proxy with a token, or PostgreSQL as the pool user); never throws. */
  async function pgbench(target: Target, args: string[]): Promise<Outcome> {
    const conn =
      target === 'proxy'
        ? { host: '127.0.0.1', port: t.proxy.port, user: 'app', password: await t.token('acme') }
        : { host: t.server.host, port: t.server.port, user: t.poolUser, password: t.poolPassword };
    const argv = [...args, '-h', conn.host, '-p', String(conn.port), '-U', conn.user, t.database];
    const env = { ...process.env, PGPASSWORD: conn.password, PGSSLMODE: 'disable' };
    try {
      const { stdout, stderr } = await run('pgbench', argv, { env, timeout: 60_000, maxBuffer: 1 << 24 });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code?: number | string; signal?: string; stdout?: string; stderr?: string };
      return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: `${err.signal ?? ''} ${err.stderr ?? ''}` };
    }
  }

  /** Exit code 0, no failed transactions (PostgreSQL 15+ prints the count) and all `expected` transactions processed. */
  function expectAllProcessed(out: Outcome, expected: number): void {
    const context = `pgbench exit ${out.code}\n--- stdout\n${out.stdout}\n--- stderr\n${out.stderr.slice(0, 4000)}`;
    expect(out.code, context).toBe(0);
    const failed = /number of failed transactions: (\d+)/.exec(out.stdout);
    if (failed) expect(Number(failed[1]), context).toBe(0);
    const processed = /number of transactions actually processed: (\d+)(?:\/(\d+))?/.exec(out.stdout);
    expect(processed, context).not.toBeNull();
    expect(Number(processed![1]), context).toBe(expected);
  }

  for (const mode of ['simple', 'extended', 'prepared'] as const) {
    for (const target of ['direct', 'proxy'] as const) {
      it(`-S -M ${mode}, 4 clients x 200 transactions (${target})`, async () => {
        expectAllProcessed(await pgbench(target, ['-n', '-S', '-M', mode, '-c', '4', '-j', '2', '-t', '200']), 800);
      });
    }
  }

  for (const target of ['direct', 'proxy'] as const) {
    it(`default TPC-B script (writes) -M prepared, 2 clients x 50 transactions (${target})`, async () => {
      const admin = await t.admin();
      const before = Number((await admin.query('SELECT count(*) FROM pgbench_history')).rows[0].count);
      expectAllProcessed(await pgbench(target, ['-n', '-M', 'prepared', '-c', '2', '-t', '50']), 100);
      const after = Number((await admin.query('SELECT count(*) FROM pgbench_history')).rows[0].count);
      expect(after - before).toBe(100);
    });
  }
});
