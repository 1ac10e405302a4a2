// A token that expires while its connection is open stops working at the next transaction: FATAL 28P01,
// disconnected, and nothing of that transaction runs. In transaction and in session pool mode.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

for (const mode of ['transaction', 'session'] as const) {
  describe(`token expiry on an open connection (${mode} mode)`, () => {
    let t: TestProxy;
    beforeAll(async () => {
      t = await startTestProxy(primaryServer(), `expiry_${mode}`, { pool: { size: 2, mode } });
    });
    afterAll(async () => t?.close());

    it('FATAL 28P01 at the first transaction after exp; the statement does not run', async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme', { expSeconds: 2 }) });
      c.on('error', () => {});
      await c.connect();
      expect((await c.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('acme');
      await new Promise((r) => setTimeout(r, 2100));
      const e = (await c.query("INSERT INTO orders (tenant_id, item) VALUES ('acme', 'after-expiry')").catch((err: unknown) => err)) as { code?: string; message: string };
      expect(e.code).toBe('28P01');
      expect(e.message).toMatch(/token expired at/);
      const admin = await t.admin();
      expect((await admin.query("SELECT count(*)::int AS n FROM orders WHERE item = 'after-expiry'")).rows[0].n).toBe(0);
      const failures = await t.proxy.metrics.authFailures.get();
      expect(failures.values.find((v) => v.labels.reason === 'expired')?.value).toBeGreaterThanOrEqual(1);
    });
  });
}
