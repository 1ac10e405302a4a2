// A pipelined hand-over that fails with an ERROR (not FATAL) must not let any of the next client's statements
// run on the backend that was not reset. The server skips only up to the first Sync after an error, so a
// client whose first flight holds several sync segments would otherwise have its later segments run with
// the previous tenant's context still set. Here the previous tenant makes DISCARD ALL fail on purpose:
// thousands of temp tables and statement_timeout = 20 ms.
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw client: logs in with `token`, then writes `flight` at once and collects what comes back. */
async function rawClient(port: number, database: string, token: string) {
  const s = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let waiter: (() => void) | null = null;
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    waiter?.();
  });
  s.on('close', () => waiter?.());
  const until = async (pred: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!pred() && Date.now() < end && !s.destroyed) await Promise.race([new Promise<void>((r) => (waiter = r)), sleep(50)]);
  };
  const count = (type: string) => {
    let n = 0;
    for (let pos = 0; pos + 5 <= buf.length; pos += 1 + buf.readUInt32BE(pos + 1)) if (buf[pos] === type.charCodeAt(0)) n++;
    return n;
  };
  await new Promise((r) => s.once('connect', r));
  s.write(serialize.startup({ user: 'app', database }));
  await until(() => count('R') >= 1, 5000);
  s.write(serialize.password(token));
  await until(() => count('Z') >= 1, 5000);
  buf = Buffer.alloc(0);
  return {
    send: (bytes: Buffer) => s.write(bytes),
    /** Waits for `n` ReadyForQuery or the close. */
    ready: (n: number) => until(() => count('Z') >= n, 15_000),
    errors: () => count('E'),
    readies: () => count('Z'),
    close: () => s.destroy(),
  };
}

const segment = (sql: string) => Buffer.concat([serialize.parse({ text: sql }), serialize.bind({}), serialize.execute({}), serialize.sync()]);

describe('a failed pipelined hand-over', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'failed_handover', { pool: { size: 1 } });
  });
  afterAll(async () => t?.close());

  it('runs none of the next client statements on the backend it failed to reset, not even after its first Sync', async () => {
    const admin = await t.admin();
    const leaked = "SELECT count(*)::int AS n FROM tenant_acme.notes WHERE body = 'written by globex'";
    const a = await t.pgClient('acme');
    await a.query('BEGIN');
    // Enough temp tables that DISCARD ALL (DISCARD TEMP) takes longer than the 20 ms limit set below (an INSERT does not).
    for (let i = 0; i < 6; i++) await a.query(Array.from({ length: 500 }, (_, k) => `CREATE TEMP TABLE t_${i}_${k} (x int);`).join(''));
    await a.query(`SET statement_timeout = 20`);
    // The next client waits for the only backend with two sync segments in its first flight.
    const b = await rawClient(t.proxy.port, t.database, await t.token('globex'));
    b.send(Buffer.concat([segment('SELECT 1'), segment("INSERT INTO notes (body) VALUES ('written by globex')")]));
    await sleep(200);
    await a.query('COMMIT'); // the backend goes to b, DISCARD ALL pipelined in front of it
    await b.ready(2);
    b.close();
    // Never under acme's context, which DISCARD ALL failed to clear...
    expect((await admin.query(leaked)).rows[0].n).toBe(0);
    // ...but the second segment, held back until the first failed, ran on a clean backend as globex.
    expect((await admin.query("SELECT count(*)::int AS n FROM tenant_globex.notes WHERE body = 'written by globex'")).rows[0].n).toBe(1);
    expect(b.errors()).toBe(1); // the first segment's: its backend could not be reset
    const resetFailures = (await t.proxy.metrics.resetOutcomes.get()).values.find((v) => v.labels.outcome === 'failed')?.value ?? 0;
    expect(resetFailures).toBeGreaterThan(0); // the scenario really made the pipelined reset fail
  });

  it('a backend terminated during the reset: the held-back rest of the client first flight goes to a new backend, nobody waits', async () => {
    const admin = await t.admin();
    const a = await t.pgClient('acme');
    await a.query('BEGIN');
    // A slow DISCARD ALL (thousands of temp tables) leaves time to terminate the backend in the middle of it.
    for (let i = 0; i < 6; i++) await a.query(Array.from({ length: 500 }, (_, k) => `CREATE TEMP TABLE k_${i}_${k} (x int);`).join(''));
    const pid = (await a.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
    const b = await rawClient(t.proxy.port, t.database, await t.token('globex'));
    b.send(Buffer.concat([segment('SELECT 1'), segment("INSERT INTO notes (body) VALUES ('after a terminated reset')")]));
    await sleep(200);
    await a.query('COMMIT');
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await b.ready(2);
    const readies = b.readies();
    b.close();
    expect(readies).toBe(2); // both segments answered: the second was not left waiting behind the dead backend
    expect((await admin.query("SELECT count(*)::int AS n FROM tenant_globex.notes WHERE body = 'after a terminated reset'")).rows[0].n).toBe(1);
    expect((await admin.query("SELECT count(*)::int AS n FROM tenant_acme.notes WHERE body = 'after a terminated reset'")).rows[0].n).toBe(0);
  });

  it('a client whose transaction start was skipped by the failed hand-over is retried on another backend, unaware', async () => {
    const admin = await t.admin();
    const failedBefore = (await t.proxy.metrics.resetOutcomes.get()).values.find((v) => v.labels.outcome === 'failed')?.value ?? 0;
    const a = await t.pgClient('acme');
    await a.query('BEGIN');
    for (let i = 0; i < 6; i++) await a.query(Array.from({ length: 500 }, (_, k) => `CREATE TEMP TABLE r_${i}_${k} (x int);`).join(''));
    await a.query('SET statement_timeout = 20');
    const b = await t.pgClient('globex');
    const inserted = b.query("INSERT INTO notes (body) VALUES ('retried for globex') RETURNING current_setting('app.current_tenant') AS t");
    await sleep(200);
    await a.query('COMMIT');
    expect((await inserted).rows).toEqual([{ t: 'globex' }]); // no error: retried transparently
    expect((await admin.query("SELECT count(*)::int AS n FROM tenant_globex.notes WHERE body = 'retried for globex'")).rows[0].n).toBe(1);
    expect((await admin.query("SELECT count(*)::int AS n FROM tenant_acme.notes WHERE body = 'retried for globex'")).rows[0].n).toBe(0);
    const failedAfter = (await t.proxy.metrics.resetOutcomes.get()).values.find((v) => v.labels.outcome === 'failed')?.value ?? 0;
    expect(failedAfter).toBeGreaterThan(failedBefore);
  });
});
