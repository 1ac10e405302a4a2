// A client's own session reset (asyncpg's Pool.release: "SELECT pg_advisory_unlock_all(); CLOSE ALL;
// UNLISTEN *; RESET ALL;") runs in transaction mode as the only thing of its hold: whatever the client sends
// behind it starts a new hold with a fresh tenant context, and a reset mixed with anything else, or sent
// after other statements of the hold, is still refused (rule reset_all / discard).
import { loadModule, parseSync } from 'libpg-query';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSessionReset } from '../../src/guard/session-reset.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { RawClient, summarise } from './raw-client.js';

const ASYNCPG_RESET = 'SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;';
const CONTEXT = "SELECT current_setting('app.current_tenant') || ' ' || current_setting('search_path')";

const tags = (msgs: Array<{ type: string; body: Buffer }>): string[] => msgs.filter((m) => m.type === 'C').map((m) => m.body.toString('utf8', 0, m.body.length - 1));

describe('a client session reset in transaction mode', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'session_reset', { pool: { size: 1 } });
  });
  afterAll(async () => t?.close());

  const raw = async (tenant: string): Promise<RawClient> => RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token(tenant));

  it("asyncpg's reset query runs as the server answers it, and the next transaction has the tenant context", async () => {
    const c = await raw('acme');
    try {
      await c.write(serialize.query("SET application_name = 'changed'"));
      expect((await c.untilReady().then(summarise)).error).toBeNull();
      await c.write(serialize.query(ASYNCPG_RESET));
      const msgs = await c.untilReady();
      expect(summarise(msgs).error).toBeNull();
      expect(tags(msgs)).toEqual(['SELECT 1', 'CLOSE CURSOR ALL', 'UNLISTEN', 'RESET']);
      const next = await c.query(CONTEXT);
      expect(next.rows).toEqual(['acme "tenant_acme", public']);
      // RESET ALL returns the client's own settings to those of its login, as on a direct connection.
      expect((await c.query('SHOW application_name')).rows).toEqual(['']);
    } finally {
      c.end();
    }
  });

  it('what the client pipelines behind a reset runs in a new hold, with the context set again', async () => {
    const c = await raw('acme');
    try {
      await c.write(Buffer.concat([serialize.query('RESET ALL'), serialize.query(CONTEXT), serialize.query('DISCARD ALL'), serialize.query(CONTEXT)]));
      expect(summarise(await c.untilReady()).error).toBeNull();
      expect(summarise(await c.untilReady()).rows).toEqual(['acme "tenant_acme", public']);
      // The DISCARD ALL came behind the SELECT in that new hold: not its first message, so refused there.
      expect(summarise(await c.untilReady()).error?.C).toBe('42501');
      expect(summarise(await c.untilReady()).rows).toEqual(['acme "tenant_acme", public']);
      // Alone, DISCARD ALL (Npgsql's and others' reset) runs, and the context is back for what follows.
      await c.write(Buffer.concat([serialize.query('DISCARD ALL'), serialize.query(CONTEXT)]));
      const discard = await c.untilReady();
      expect(summarise(discard).error).toBeNull();
      expect(tags(discard)).toEqual(['DISCARD ALL']);
      expect(summarise(await c.untilReady()).rows).toEqual(['acme "tenant_acme", public']);
      // And the next tenant on the same (only) backend sees its own context, not a cleared one.
      const g = await raw('globex');
      expect((await g.query(CONTEXT)).rows).toEqual(['globex "tenant_globex", public']);
      g.end();
    } finally {
      c.end();
    }
  });

  it('a reset mixed with other statements, or sent after others in the same hold, is still refused', async () => {
    const c = await raw('acme');
    try {
      for (const sql of ['RESET ALL; SELECT 1', "SELECT set_config('app.current_tenant', 'globex', false); RESET ALL", 'ROLLBACK; RESET ALL', 'DISCARD ALL; SELECT 1']) {
        const r = await c.query(sql);
        expect(r.error?.C, sql).toBe('42501');
      }
      // Behind a statement of the same hold (one write, one hold): refused.
      await c.write(Buffer.concat([serialize.parse({ text: 'SELECT 1' }), serialize.bind({}), serialize.execute({}), serialize.query('RESET ALL')]));
      expect(summarise(await c.untilReady()).error?.C).toBe('42501');
      // Inside a transaction: refused, and the transaction keeps its context.
      expect((await c.query('BEGIN')).error).toBeNull();
      expect((await c.query('RESET ALL')).error?.C).toBe('42501');
      expect((await c.query('ROLLBACK')).error).toBeNull();
      expect((await c.query(CONTEXT)).rows).toEqual(['acme "tenant_acme", public']);
    } finally {
      c.end();
    }
  });
});

describe('what counts as a session reset (structural, exact)', () => {
  it('only statements that return a session to its defaults, with no names, clauses or other statements', async () => {
    await loadModule();
    const cases: Array<[string, boolean]> = [
      [ASYNCPG_RESET, true],
      ['RESET ALL', true],
      ['DISCARD ALL', true],
      ['DISCARD TEMP; DISCARD PLANS', true],
      ['DEALLOCATE ALL', true],
      ['SELECT pg_catalog.pg_advisory_unlock_all()', true],
      ['RESET search_path', false],
      ['CLOSE my_cursor', false],
      ['UNLISTEN my_channel', false],
      ['DEALLOCATE my_statement', false],
      ['SELECT pg_advisory_unlock_all() FROM notes', false],
      ['SELECT pg_advisory_unlock_all(), 1', false],
      ['SELECT public.pg_advisory_unlock_all()', false],
      ['SELECT pg_advisory_unlock_all() WHERE false', false],
      ['ROLLBACK; RESET ALL', false],
      ['RESET ALL; SELECT 1', false],
      ["RESET ALL; SET app.current_tenant = 'globex'", false],
    ];
    for (const [sql, expected] of cases) expect(isSessionReset(parseSync(sql)), sql).toBe(expected);
  });
});
