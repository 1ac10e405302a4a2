// The admin console with two workers: a console connection lands on one worker, but PAUSE, RESUME, KILL CLIENT
// and SUSPEND TENANT act on every worker (through the primary), and SHOW WORKERS lists both.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeVerifier } from '../../src/auth/scram.js';
import { primaryServer } from '../support/pg.js';
import { startClusterProxy, type ClusterProxy } from '../support/cluster.js';

const run = promisify(execFile);
const SRE_PASSWORD = 'sre-cluster-console-password';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pidOf = (c: pg.Client): number => (c as unknown as { processID: number }).processID;

describe('admin console with workers: 2', () => {
  let p: ClusterProxy;
  beforeAll(async () => {
    p = await startClusterProxy(primaryServer(), 'cluster_console', {
      workers: 2,
      pool: { size: 4 },
      users: [{ name: 'sre', scram: await makeVerifier(SRE_PASSWORD), tenant: 'none', admin: true }],
    });
  }, 90_000);
  afterAll(async () => {
    await p?.stop();
  });

  const console = async (sql: string): Promise<string> => {
    const { stdout } = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '--csv', '-d', `host=127.0.0.1 port=${p.port} dbname=pgtenantproxy user=sre sslmode=disable`, '-c', sql], {
      env: { ...process.env, PGPASSWORD: SRE_PASSWORD, PGOPTIONS: '' },
      timeout: 60_000,
    });
    return stdout;
  };

  /** Clients of `tenant` until there is one owned by each worker (the key's pid says which: pid % 2). */
  const onBothWorkers = async (tenant: string): Promise<[pg.Client, pg.Client]> => {
    const byOwner: Array<pg.Client | undefined> = [undefined, undefined];
    const extra: pg.Client[] = [];
    while (!byOwner[0] || !byOwner[1]) {
      const c = await p.client(tenant);
      const o = pidOf(c) % 2;
      if (byOwner[o]) extra.push(c);
      else byOwner[o] = c;
    }
    await Promise.all(extra.map((c) => c.end()));
    return [byOwner[0], byOwner[1]];
  };

  it('SHOW WORKERS lists both workers; PAUSE waits for a transaction on either worker and holds new ones on both; RESUME releases them', { timeout: 90_000 }, async () => {
    const rows = (await console('SHOW WORKERS')).trim().split('\n');
    expect(rows[0]).toBe('worker,pid,state,restarts,pool_share,started_at,self');
    expect(rows.slice(1).map((r) => r.split(',').slice(0, 1).concat(r.split(',').slice(2, 3)))).toEqual([
      ['0', 'running'],
      ['1', 'running'],
    ]);

    const [a0, a1] = await onBothWorkers('acme');
    const [b0, b1] = await onBothWorkers('globex');
    for (const holder of [a0, a1]) {
      await holder.query('BEGIN');
      await holder.query('SELECT 1');
      let paused = false;
      const pause = console('PAUSE').then(() => (paused = true));
      await sleep(700);
      expect(paused).toBe(false); // a transaction is still running on one of the workers
      // New transactions on both workers are held while paused.
      const held = [b0.query('SELECT 1'), b1.query('SELECT 1')].map((q) => q.then(() => 'done'));
      await holder.query('COMMIT');
      await pause;
      expect(paused).toBe(true);
      const early = await Promise.race([Promise.all(held), sleep(700).then(() => 'held')]);
      expect(early).toBe('held');
      await console('RESUME');
      expect(await Promise.all(held)).toEqual(['done', 'done']);
    }
    await Promise.all([a0, a1, b0, b1].map((c) => c.end()));
  });

  it('KILL CLIENT ends a client whichever worker it is on; SUSPEND TENANT refuses the tenant on both workers', { timeout: 90_000 }, async () => {
    const [k0, k1] = await onBothWorkers('acme');
    const [s0, s1] = await onBothWorkers('globex');
    const [o0, o1] = await onBothWorkers('acme');
    for (const victim of [k0, k1]) {
      const ended = new Promise<void>((r) => victim.once('end', () => r()));
      await console(`KILL CLIENT ${pidOf(victim)}`);
      await ended;
    }
    await expect(console('KILL CLIENT 123')).rejects.toThrow(/no client with id 123/);

    await console('SUSPEND TENANT globex');
    for (const c of [s0, s1]) {
      const e = (await c.query('SELECT 1').catch((err: unknown) => err)) as { code?: string };
      expect(e.code).toBe('28000');
    }
    // Other tenants on both workers are untouched.
    for (const c of [o0, o1]) expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    await console('UNSUSPEND TENANT globex');
    const [g0, g1] = await onBothWorkers('globex');
    for (const c of [g0, g1]) expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    await Promise.all([o0, o1, g0, g1].map((c) => c.end()));
  });
});
