// /readyz recovers by itself after a database outage, with no client traffic: while down, the proxy retries a
// real backend login in the background (bounded rate) and turns ready once one succeeds.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOwnPostgres, type OwnPostgres } from '../support/own-pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { readyz, waitFor } from '../support/readiness.js';

describe('readiness after a database outage', () => {
  let pgs: OwnPostgres;
  let t: TestProxy;
  beforeAll(async () => {
    process.env.PGTP_ADMIN_EPHEMERAL = '1';
    pgs = await startOwnPostgres('readiness');
    t = await startTestProxy(pgs.server, 'readiness', { pool: { size: 2, acquire_timeout_ms: 2000 }, backend: { connect_timeout_ms: 1000 } });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await pgs?.destroy();
  });

  it('turns 503 while a client fails to get a backend, and back to 200 after the restart with no traffic', async () => {
    const port = t.proxy.adminPort!;
    const c = await t.pgClient('acme');
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    expect(await readyz(port)).toBe(200);

    await pgs.stop('fast');
    // A client's transaction now fails to get a backend: the pool's login failure marks the proxy unready.
    const e = await c.query('SELECT 1').catch((err: Error) => err);
    expect(e).toBeInstanceOf(Error);
    await c.end().catch(() => {});
    const fresh = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') });
    fresh.on('error', () => {});
    await fresh.connect().then(() => fresh.query('SELECT 1')).catch(() => {});
    await fresh.end().catch(() => {});
    expect(await waitFor(async () => (await readyz(port)) === 503, 5000)).toBe(true);

    await pgs.start();
    // No client traffic from here on: readiness must come back by itself.
    expect(await waitFor(async () => (await readyz(port)) === 200, 15_000)).toBe(true);
  }, 60_000);
});
