// CancelRequest with the proxy-issued key cancels that client's running query, and can never cancel a
// query the same backend later runs for someone else.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { sendCancel } from '../support/wire.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';


describe('cancel', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'cancel', { pool: { size: 1 } });
  });
  afterAll(async () => t?.close());

  it("postgres.js query.cancel() cancels the client's running query", async () => {
    const sql = await t.sql('acme');
    const q = sql`SELECT pg_sleep(20)`;
    const started = Date.now();
    // Cancel once the query really runs on the server (a fixed delay raced a loaded machine).
    const admin = await t.admin();
    void (async () => {
      for (let i = 0; i < 200; i++) {
        const r = await admin.query("SELECT 1 FROM pg_stat_activity WHERE usename = $1 AND query = 'SELECT pg_sleep(20)' AND state = 'active'", [t.poolUser]);
        if (r.rowCount) break;
        await new Promise((res) => setTimeout(res, 25));
      }
      q.cancel();
    })();
    const e = (await q.catch((err: unknown) => err)) as { code: string };
    expect(e.code).toBe('57014');
    expect(Date.now() - started).toBeLessThan(5000);
    const [{ ok }] = await sql`SELECT 1 AS ok`;
    expect(ok).toBe(1);
  });

  it("a stale key cannot cancel the next client's query on the same backend", async () => {
    const a = await t.pgClient('acme');
    const key = a as unknown as { processID: number; secretKey: number };
    await a.query('SELECT 1'); // A is now idle; the single backend is free
    const b = await t.pgClient('globex');
    const running = b.query('SELECT pg_sleep(1) AS slept, current_setting(\'app.current_tenant\') AS t');
    await new Promise((r) => setTimeout(r, 200));
    await sendCancel(t.proxy.port, key.processID, key.secretKey);
    const r = await running;
    expect(r.rows[0].t).toBe('globex');
  });

  it('a wrong secret cancels nothing', async () => {
    const a = await t.pgClient('acme');
    const key = a as unknown as { processID: number; secretKey: number };
    const running = a.query('SELECT pg_sleep(0.8) AS slept');
    await new Promise((r) => setTimeout(r, 200));
    await sendCancel(t.proxy.port, key.processID, key.secretKey ^ 1);
    await expect(running).resolves.toBeDefined();
  });
});
