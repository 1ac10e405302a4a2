// The admin console (database pgtenantproxy) driven by psql against a running proxy: every command, under
// load; its numbers against pg_stat_activity and the work done; PAUSE/RESUME, KILL CLIENT, SUSPEND TENANT;
// who may log in; and the JSON endpoints returning the same tables.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeVerifier } from '../../src/auth/scram.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const run = promisify(execFile);
const hasPsql = await run('psql', ['--version']).then(
  () => true,
  () => false,
);
process.env.PGTP_ADMIN_EPHEMERAL = '1';

const SRE_PASSWORD = 'sre-console-password-1';
const JOB_PASSWORD = 'job-password-2';

/** Parses psql --csv output (quoted fields, doubled quotes, commas inside quotes). */
function parseCsv(text: string): Array<Record<string, string>> {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') record.push(field), (field = '');
    else if (ch === '\n') record.push(field), records.push(record), (record = []), (field = '');
    else field += ch;
  }
  if (field !== '' || record.length > 0) record.push(field), records.push(record);
  const [head, ...rows] = records;
  return rows.map((r) => Object.fromEntries(head.map((h, i) => [h, r[i]])));
}

describe.skipIf(!hasPsql)('admin console', () => {
  let t: TestProxy;
  let base: string;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'admin_console', {
      pool: { size: 4, acquire_timeout_ms: 10_000 },
      users: [
        { name: 'sre', scram: await makeVerifier(SRE_PASSWORD), tenant: 'none', admin: true },
        { name: 'job', scram: await makeVerifier(JOB_PASSWORD), tenant: 'none' },
      ],
    });
    base = `http://127.0.0.1:${t.proxy.adminPort}`;
  });
  afterAll(async () => t?.close());

  const conninfo = (user = 'sre') => `host=127.0.0.1 port=${t.proxy.port} dbname=pgtenantproxy user=${user} sslmode=disable connect_timeout=10`;
  /** Runs one console command with psql; resolves with stdout, rejects with psql's stderr. */
  const psqlRaw = async (sql: string, args: string[] = [], password = SRE_PASSWORD, user = 'sre'): Promise<string> => {
    const { stdout } = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', ...args, '-d', conninfo(user), '-c', sql], {
      env: { ...process.env, PGPASSWORD: password, PGOPTIONS: '' },
      timeout: 30_000,
    });
    return stdout;
  };
  const psql = async (sql: string) => parseCsv(await psqlRaw(sql, ['--csv']));
  const psqlError = async (sql: string, password = SRE_PASSWORD, user = 'sre'): Promise<string> =>
    psqlRaw(sql, [], password, user).then(
      () => 'no error',
      (e: { stderr?: string }) => e.stderr ?? String(e),
    );

  const tenantClient = async (tenant: string, applicationName: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token(tenant), application_name: applicationName });
    c.on('error', () => {});
    await c.connect();
    return c;
  };

  it('psql drives every command while tenants run transactions', async () => {
    let stop = false;
    let done = 0;
    const errors: unknown[] = [];
    const clientsUnderLoad = await Promise.all(['acme', 'acme', 'globex', 'globex', 'initech', 'initech'].map((tenant, i) => tenantClient(tenant, `load-${i}`)));
    const workers = clientsUnderLoad.map((c) =>
        (async () => {
          while (!stop) {
            await c.query('BEGIN');
            await c.query('SELECT count(*) FROM orders');
            await c.query('SELECT pg_sleep(0.005)');
            await c.query('COMMIT');
            done++;
          }
          await c.end();
        })().catch((e: unknown) => errors.push(e)),
    );
    while (done < 20) await new Promise((r) => setTimeout(r, 20));

    const pools = await psql('SHOW POOLS');
    expect(pools).toHaveLength(1);
    expect(pools[0]).toMatchObject({ database: t.database, user: t.poolUser, pool_mode: 'transaction', pool_size: '4', paused: 'no' });
    expect(Number(pools[0].cl_active) + Number(pools[0].cl_waiting)).toBe(6);
    expect(Number(pools[0].sv_active) + Number(pools[0].sv_idle) + Number(pools[0].sv_used)).toBeLessThanOrEqual(4);

    const clients = await psql('show clients;');
    expect(clients).toHaveLength(6);
    expect(new Set(clients.map((c) => c.tenant))).toEqual(new Set(['acme', 'globex', 'initech']));
    expect(clients.every((c) => ['active', 'waiting', 'idle'].includes(c.state) && c.user === 'app')).toBe(true);

    const servers = await psql('Show Servers');
    expect(servers.length).toBeGreaterThan(0);
    expect(servers.length).toBeLessThanOrEqual(4);
    expect(servers.every((s) => Number(s.remote_pid) > 0 && ['active', 'idle', 'used'].includes(s.state))).toBe(true);

    const stats = await psql('SHOW STATS');
    expect(Number(stats[0].total_xact_count)).toBeGreaterThanOrEqual(20 * 4);
    expect(Number(stats[0].total_received)).toBeGreaterThan(0);
    expect(Number(stats[0].total_sent)).toBeGreaterThan(0);
    expect(Number(stats[0].avg_xact_time)).toBeGreaterThan(5000); // each transaction sleeps 5 ms

    const tenants = await psql('SHOW TENANTS');
    expect(tenants.map((r) => r.tenant)).toEqual(['acme', 'globex', 'initech']);
    for (const r of tenants) {
      expect(r.clients).toBe('2');
      expect(Number(r.xact_count)).toBeGreaterThan(0);
      expect(r.suspended).toBe('no');
    }

    // One process: SHOW WORKERS is this process alone, serving this connection, with the whole pool.
    const shownWorkers = await psql('SHOW WORKERS');
    expect(shownWorkers).toEqual([{ worker: '0', pid: String(process.pid), state: 'running', restarts: '0', pool_share: '4', started_at: shownWorkers[0].started_at, self: 'yes' }]);

    const config = await psql('SHOW CONFIG');
    const byKey = new Map(config.map((r) => [r.key, r.value]));
    expect(byKey.get('pool.size')).toBe('4');
    expect(byKey.get('backend.password')).toBe('<redacted>');
    expect(byKey.get('auth.jwt.secret')).toBe('<redacted>');
    expect(byKey.get('users[0].scram')).toBe('<redacted>');
    expect(byKey.get('users[0].admin')).toBe('true');
    expect(byKey.get('metrics.tenant_top_k')).toBe('20');
    const text = JSON.stringify(config);
    expect(text).not.toContain(t.poolPassword);
    expect(text).not.toContain('SCRAM-SHA-256$');
    expect(text).not.toContain('test-secret-that-is');

    // \x (expanded display) works because these are real result sets.
    expect(await psqlRaw('SHOW POOLS', ['-x'])).toMatch(/-\[ RECORD 1 \]-+\ndatabase\s+\| admin_console/);
    expect(await psqlRaw('RELOAD')).toContain('RELOAD');
    expect(await psqlRaw('PAUSE;')).toContain('PAUSE');
    expect(await psqlRaw('resume')).toContain('RESUME');
    expect(await psqlRaw('SUSPEND TENANT nobody_here')).toContain('SUSPEND');
    expect(await psqlRaw('UNSUSPEND TENANT nobody_here')).toContain('UNSUSPEND');
    expect(await psqlError('KILL CLIENT 999999999')).toMatch(/no client with id 999999999/);

    const unknown = await psqlError('SHOW EVERYTHING');
    expect(unknown).toMatch(/unknown SHOW item "EVERYTHING"/);
    expect(unknown).toMatch(/valid commands: SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, SHOW STATS, SHOW TENANTS, SHOW CONFIG, SHOW WORKERS, PAUSE, RESUME, RELOAD, KILL CLIENT <id>/);
    expect(await psqlError('DROP TABLE orders')).toMatch(/unknown command "DROP TABLE orders"/);

    stop = true;
    await Promise.all(workers);
    expect(errors).toEqual([]);
  });

  it('unknown commands are 42601; the extended protocol gets 0A000 and the connection stays usable', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: 'pgtenantproxy', user: 'sre', password: SRE_PASSWORD });
    await c.connect();
    const unknown = (await c.query('SELEC 1').catch((e: unknown) => e)) as { code?: string; hint?: string };
    expect(unknown.code).toBe('42601');
    expect(unknown.hint).toMatch(/^valid commands: /);
    const ext = (await c.query({ text: 'SHOW POOLS', values: [1] }).catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(ext.code).toBe('0A000');
    expect(ext.message).toMatch(/simple queries only/);
    expect((await c.query('SHOW POOLS')).rows[0].database).toBe(t.database);
    await c.end();
  });

  it("its numbers agree with pg_stat_activity and with the work done", async () => {
    const admin = await t.admin();
    const holders = await Promise.all(['acme', 'globex', 'initech'].map((tenant, i) => tenantClient(tenant, `holder-${i}`)));
    for (const h of holders) {
      await h.query('BEGIN');
      await h.query('SELECT 1');
    }
    const servers = await psql('SHOW SERVERS');
    const active = servers.filter((s) => s.state === 'active');
    const psa = await admin.query(
      "SELECT pid, state FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'",
      [t.poolUser],
    );
    expect(servers.map((s) => Number(s.remote_pid)).sort()).toEqual(psa.rows.map((r) => r.pid as number).sort());
    expect(active.map((s) => Number(s.remote_pid)).sort()).toEqual(psa.rows.filter((r) => r.state === 'idle in transaction').map((r) => r.pid as number).sort());
    expect(active).toHaveLength(3);
    const pools = (await psql('SHOW POOLS'))[0];
    expect(Number(pools.sv_active)).toBe(3);
    expect(Number(pools.sv_active) + Number(pools.sv_idle) + Number(pools.sv_used)).toBe(psa.rowCount);
    // Each held backend is linked to the client holding it.
    const clients = await psql('SHOW CLIENTS');
    for (const s of active) expect(clients.find((c) => c.id === s.link)?.link).toBe(s.remote_pid);
    for (const h of holders) await h.query('COMMIT');

    // Work done: 25 single-statement transactions by a fresh tenant, counted exactly.
    const before = Number((await psql('SHOW STATS'))[0].total_xact_count);
    const w = await tenantClient('umbrella', 'counter');
    for (let i = 0; i < 25; i++) await w.query('SELECT count(*) FROM orders');
    const row = (await psql('SHOW TENANTS')).find((r) => r.tenant === 'umbrella')!;
    expect(row).toMatchObject({ clients: '1', active: '0', waiting: '0', sv_held: '0', xact_count: '25', query_count: '25' });
    expect(Number(row.avg_query_time)).toBeGreaterThan(0);
    expect(Number((await psql('SHOW STATS'))[0].total_xact_count) - before).toBe(25);
    await Promise.all([...holders, w].map((c) => c.end()));

    // A pipelining driver (postgres.js, one connection): 10 queries sent before the first answer, each its own transaction.
    const sql = await t.sql('hooli', { fetch_types: false });
    await Promise.all(Array.from({ length: 10 }, (_, i) => sql`SELECT ${i}::int AS v`));
    expect((await psql('SHOW TENANTS')).find((r) => r.tenant === 'hooli')).toMatchObject({ xact_count: '10', query_count: '10' });
    await sql.end();
  });

  it('PAUSE holds new transactions while running ones finish; RESUME releases them', async () => {
    const a = await tenantClient('acme', 'running');
    const b = await tenantClient('globex', 'newcomer');
    await a.query('BEGIN');
    await a.query('SELECT 1');
    let paused = false;
    const pause = psqlRaw('PAUSE').then((out) => ((paused = true), out));
    pause.catch(() => {}); // awaited in holdsPaused; this only keeps a failure there from being unhandled
    try {
      await holdsPaused(a, b, pause, () => paused);
    } finally {
      await psqlRaw('RESUME');
      await Promise.all([a.end(), b.end()]);
    }
  });

  /** The PAUSE scenario; the caller RESUMEs whatever happens, so one failure does not hold every later test. */
  const holdsPaused = async (a: pg.Client, b: pg.Client, pause: Promise<string>, paused: () => boolean): Promise<void> => {
    // psql may take a while to start on a loaded machine: wait until the pause is in effect.
    for (let i = 0; i < 200 && (await psql('SHOW POOLS'))[0].paused !== 'yes'; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200));
    expect(paused()).toBe(false); // a transaction is still running
    let bDone = false;
    const bq = b.query('SELECT 42 AS v').then((r) => ((bDone = true), r));
    await new Promise((r) => setTimeout(r, 300));
    expect(bDone).toBe(false);
    expect((await psql('SHOW CLIENTS')).find((c) => c.application_name === 'newcomer')?.state).toBe('waiting');
    expect((await psql('SHOW POOLS'))[0].paused).toBe('yes');
    // The running transaction goes on and finishes; then PAUSE answers.
    expect((await a.query('SELECT 2 AS v')).rows[0].v).toBe(2);
    await a.query('COMMIT');
    expect(await pause).toContain('PAUSE');
    await new Promise((r) => setTimeout(r, 200));
    expect(bDone).toBe(false);
    await psqlRaw('RESUME');
    expect((await bq).rows[0].v).toBe(42);
  };

  it('KILL CLIENT ends exactly that client', async () => {
    const victim = await tenantClient('acme', 'victim');
    const bystander = await tenantClient('acme', 'bystander');
    const before = await psql('SHOW CLIENTS');
    const id = before.find((c) => c.application_name === 'victim')!.id;
    expect(await psqlRaw(`KILL CLIENT ${id}`)).toContain('KILL');
    const e = (await victim.query('SELECT 1').catch((err: unknown) => err)) as Error;
    expect(e).toBeInstanceOf(Error);
    expect((await bystander.query('SELECT 7 AS v')).rows[0].v).toBe(7);
    const after = await psql('SHOW CLIENTS');
    expect(after.map((c) => c.id).sort()).toEqual(before.map((c) => c.id).filter((x) => x !== id).sort());
    await bystander.end();
  });

  it("SUSPEND TENANT refuses that tenant's next transaction and nobody else's", async () => {
    const acme = await tenantClient('acme', 'suspended-one');
    const globex = await tenantClient('globex', 'other-tenant');
    await psqlRaw('SUSPEND TENANT acme');
    const e = (await acme.query('SELECT 1').catch((err: unknown) => err)) as { code?: string };
    expect(e.code).toBe('28000');
    expect((await globex.query('SELECT 1 AS v')).rows[0].v).toBe(1);
    const login = (await tenantClient('acme', 'late').catch((err: unknown) => err)) as { code?: string };
    expect(login.code).toBe('28000');
    expect((await psql('SHOW TENANTS')).find((r) => r.tenant === 'acme')?.suspended).toBe('console');
    await psqlRaw('UNSUSPEND TENANT acme');
    const back = await tenantClient('acme', 'back');
    expect((await back.query('SELECT 1 AS v')).rows[0].v).toBe(1);
    expect((await psql('SHOW TENANTS')).find((r) => r.tenant === 'acme')?.suspended).toBe('no');
    await Promise.all([globex.end(), back.end()]);
  });

  it('a tenant token and a non-admin static user are refused with 28000', async () => {
    const attempt = async (user: string, password: string) => {
      const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: 'pgtenantproxy', user, password });
      c.on('error', () => {});
      return (await c.connect().then(
        () => c.end().then(() => ({ code: 'connected' })),
        (err: unknown) => err,
      )) as { code?: string; message?: string };
    };
    const token = await attempt('app', await t.token('acme'));
    expect(token.code).toBe('28000');
    expect(token.message).toMatch(/admin: true/);
    const trusted = await attempt('app', await t.token(null));
    expect(trusted.code).toBe('28000');
    const job = await attempt('job', JOB_PASSWORD);
    expect(job.code).toBe('28000');
    expect((await attempt('sre', 'wrong')).code).toBe('28P01');
    expect(await psqlError('SHOW POOLS', JOB_PASSWORD, 'job')).toMatch(/admits only static users with admin: true/);
    // The admin user is not a way into the database itself? It is a static user like others: tenant none.
    expect((await attempt('sre', SRE_PASSWORD)).code).toBe('connected');
  });

  it('the JSON endpoints return the same tables as the console', async () => {
    const idle = await Promise.all(['acme', 'globex'].map((tenant) => tenantClient(tenant, `json-${tenant}`)));
    await idle[0].query('SELECT 1');
    // The backend's deferred reset (pool.reset_delay_ms, then its own round trip, out of the idle list) must
    // be over, or it may run between the two reads.
    await new Promise((r) => setTimeout(r, t.config.pool.reset_delay_ms + 100));
    const deadline = Date.now() + 5000;
    while (t.proxy.pool.stats().busy > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const what of ['pools', 'clients', 'servers', 'tenants']) {
      const console = await psql(`SHOW ${what}`);
      const res = await fetch(`${base}/${what}`);
      expect(res.headers.get('content-type')).toBe('application/json');
      const json = (await res.json()) as Array<Record<string, string | number | null>>;
      const asText = json.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? '' : String(v)])));
      expect(asText, what).toEqual(console);
    }
    expect((await fetch(`${base}/pools`, { method: 'POST' })).status).toBe(405);
    await Promise.all(idle.map((c) => c.end()));
  });
});
