// Issue 8's attacks on the tenant context, each through the proxy on two PostgreSQL majors: the guard refuses
// it before it runs (naming the rule), and in the same connection's next transaction the tenant setting and
// search_path are still the proxy's and the connection still works. Look-alikes stay allowed.
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type PgServer, primaryServer, secondServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { functionCall, RawClient, streamHugeParse, summarise } from './raw-client.js';

const CTX = "SELECT current_setting('app.current_tenant') || '|' || current_setting('search_path') || '|' || current_setting('client_encoding') || '|' || current_setting('standard_conforming_strings')";
const ACME = 'acme|"tenant_acme", public|UTF8|on';
const err = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string; message: string }) => e);
const base64 = (s: string) => Buffer.from(s).toString('base64');

const servers: Array<[string, () => PgServer | undefined]> = [
  ['primary', primaryServer],
  ['second major', secondServer],
];

describe.each(servers)('guard attacks through the proxy (%s server)', (_label, server) => {
  const pgServer = server();
  let t: TestProxy;
  beforeAll(async () => {
    if (!pgServer) return;
    t = await startTestProxy(pgServer, 'guard_attacks', { pool: { size: 1 } });
  });
  afterAll(async () => t?.close());
  const maybe = pgServer ? it : it.skip;

  /** The next transaction on this connection still sees the proxy's context, and the connection works. */
  async function intact(c: pg.Client): Promise<void> {
    expect((await c.query(`${CTX} AS ctx`)).rows[0].ctx).toBe(ACME);
  }

  async function refused(c: pg.Client, sql: string, rule: string, code = '42501'): Promise<void> {
    const e = await err(c.query(sql));
    expect(e?.message, sql.slice(0, 80)).toMatch(new RegExp(`rule ${rule}\\b`));
    expect(e?.code, sql.slice(0, 80)).toBe(code);
    await intact(c);
  }

  maybe('FunctionCall of set_config by OID is refused in place; sync accounting and the context hold', async () => {
    const admin = await t.admin();
    const oid = Number((await admin.query("SELECT 'set_config'::regproc::oid AS oid")).rows[0].oid);
    const c = await RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token('acme'));
    try {
      await c.write(functionCall(oid, ['search_path', 'tenant_globex', 'false']));
      const r = summarise(await c.untilReady());
      expect(r.error?.M).toMatch(/rule function_call/);
      expect(r.error?.C).toBe('42501');
      expect(r.rows).toEqual([]); // no FunctionCallResponse: set_config never ran
      expect(r.status).toBe('I');
      // The same, inside an explicit transaction, then a pipeline after it: answers stay aligned.
      expect((await c.query('BEGIN')).error).toBeNull();
      await c.write(functionCall(oid, ['app.current_tenant', 'globex', 'false']));
      expect(summarise(await c.untilReady())).toMatchObject({ status: 'E' });
      expect((await c.query('ROLLBACK')).status).toBe('I');
      expect((await c.query(CTX)).rows).toEqual([ACME]);
      // In the middle of an unsynced extended-protocol batch: the statement before it runs, the refusal
      // and the Sync each get their ReadyForQuery, and nothing is left owed.
      await c.write(Buffer.concat([serialize.parse({ text: 'SELECT 41 + 1' }), serialize.bind({}), serialize.execute({}), functionCall(oid, ['search_path', 'tenant_globex', 'false']), serialize.sync()]));
      const first = summarise(await c.untilReady());
      expect(first.rows).toEqual(['42']);
      expect(first.error?.M).toMatch(/rule function_call/);
      expect(summarise(await c.untilReady()).error).toBeNull();
      expect((await c.query(CTX)).rows).toEqual([ACME]);
    } finally {
      c.end();
    }
  });

  maybe('a 65 MB Parse is refused whole, unread (streamed, never held in memory)', { timeout: 120_000 }, async () => {
    const c = await RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token('acme'));
    try {
      await streamHugeParse(c, "SELECT set_config('search_path', 'tenant_globex', false)", 65 << 20);
      const r = summarise(await c.untilReady());
      expect(r.error?.M).toMatch(/rule statement_too_large/);
      expect(r.rows).toEqual([]);
      expect((await c.query(CTX)).rows).toEqual([ACME]);
    } finally {
      c.end();
    }
  });

  maybe('client_encoding SJIS at startup (parameter or options -c) is refused at login with 0A000', async () => {
    const token = await t.token('acme');
    const extras: Array<Record<string, string>> = [{ client_encoding: 'SJIS' }, { options: '-c client_encoding=BIG5' }];
    for (const extra of extras) {
      const e = await err(RawClient.connect(t.proxy.port, { user: 'app', database: t.database, ...extra }, token));
      expect(e?.code, JSON.stringify(extra) + e?.message).toBe('0A000');
      expect(e?.message).toMatch(/client_encoding "(SJIS|BIG5)" is not supported/);
    }
    const ok = await RawClient.connect(t.proxy.port, { user: 'app', database: t.database, client_encoding: 'UTF8' }, token);
    expect((await ok.query(CTX)).rows).toEqual([ACME]);
    ok.end();
  });

  maybe('SET NAMES / client_encoding / set_config to SJIS, and standard_conforming_strings off, are refused', async () => {
    const c = await t.pgClient('acme');
    await refused(c, "SET NAMES 'SJIS'", 'encoding', '0A000');
    await refused(c, 'SET client_encoding = GBK', 'encoding', '0A000');
    await refused(c, "SELECT set_config('client_encoding', 'BIG5', false)", 'encoding', '0A000');
    await refused(c, 'SET standard_conforming_strings = off', 'standard_conforming_strings', '0A000');
    await refused(c, "SELECT set_config('standard_conforming_strings', 'off', false)", 'standard_conforming_strings', '0A000');
    // RESET returns to the connection's default, which is on.
    await c.query('RESET standard_conforming_strings');
    await c.query('RESET client_encoding');
    await intact(c);
  });

  maybe('9,000 nested casts and deeply nested parentheses are refused, not crashed or allowed', async () => {
    const c = await t.pgClient('acme');
    const casts = await err(c.query(`SELECT set_config('search_path', 'tenant_globex', false)${'::text'.repeat(9000)}`));
    expect(casts?.message).toMatch(/rule (too_complex|unparsable|guard_error)/);
    await intact(c);
    const parens = await err(c.query(`SELECT ${'('.repeat(9000)}set_config('search_path', 'tenant_globex', false)${')'.repeat(9000)}`));
    expect(parens?.message).toMatch(/rule (set_config|too_complex|unparsable|guard_error)/);
    await intact(c);
  });

  maybe('CREATE AGGREGATE with sfunc = set_config, UPDATE pg_settings, query_to_xml are refused', async () => {
    const c = await t.pgClient('acme');
    await refused(c, "CREATE AGGREGATE pg_temp.ctx(text, boolean) (sfunc = set_config, stype = text, initcond = 'search_path')", 'set_config');
    expect((await c.query("SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'ctx'")).rows[0].n).toBe(0);
    await refused(c, "UPDATE pg_settings SET setting = 'tenant_globex' WHERE name = 'search_path'", 'pg_settings_write');
    await refused(c, "UPDATE pg_settings SET setting = 'globex' WHERE name = 'app.current_tenant'", 'pg_settings_write');
    await refused(c, "SELECT query_to_xml('select set_config(''search_path'', ''tenant_globex'', false)', true, false, '')", 'sql_from_string');
    const hidden = base64("select set_config('app.current_tenant', 'globex', false)");
    await refused(c, `SELECT query_to_xml(convert_from(decode('${hidden}', 'base64'), 'UTF8'), true, false, '')`, 'sql_from_string');
    await refused(c, "SELECT * FROM ts_stat('select set_config(''search_path'', ''tenant_globex'', false)::tsvector')", 'sql_from_string');
  });

  maybe('LISTEN in transaction mode is refused before it runs', async () => {
    const c = await t.pgClient('acme');
    await refused(c, 'LISTEN tenant_events', 'listen', '0A000');
    await c.query('BEGIN');
    expect((await err(c.query('LISTEN tenant_events')))?.message).toMatch(/rule listen/);
    await c.query('ROLLBACK');
    expect((await c.query('SELECT count(*)::int AS n FROM pg_listening_channels()')).rows[0].n).toBe(0);
    await intact(c);
  });

  maybe('a harmless set_config cached by the guard does not let a protected one through', async () => {
    const c = await t.pgClient('acme');
    for (let i = 0; i < 3; i++) await c.query(`SELECT set_config('work_mem', '${i + 1}MB', false)`);
    await refused(c, "SELECT set_config('search_path', 'tenant_globex', false)", 'set_config');
  });

  maybe('look-alikes stay allowed', async () => {
    const c = await t.pgClient('acme');
    for (const ok of [
      "SELECT setting FROM pg_settings WHERE name = 'work_mem'",
      "SELECT set_config('work_mem', '8MB', false)",
      "SET NAMES 'UTF8'",
      'SET standard_conforming_strings = on',
      "UPDATE orders SET item = item WHERE tenant_id = 'acme'",
      "SELECT 'query_to_xml(''select 1'')' AS s",
      "SELECT convert_from(decode('" + base64('select 1') + "', 'base64'), 'UTF8') AS s",
      "SELECT table_to_xml('orders', true, false, '') IS NOT NULL AS x",
      'UNLISTEN *',
    ]) {
      expect(await err(c.query(ok)), ok).toBeNull();
    }
    await intact(c);
  });
});

describe('LISTEN in session mode', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'guard_attacks_session', { pool: { size: 1, mode: 'session' } });
  });
  afterAll(async () => t?.close());

  it('stays allowed: the backend is the client\'s for the whole session', async () => {
    const c = await t.pgClient('acme');
    await c.query('LISTEN tenant_events');
    expect((await c.query('SELECT count(*)::int AS n FROM pg_listening_channels()')).rows[0].n).toBe(1);
  });
});

describe('tenant.function_call_allow', () => {
  let t: TestProxy;
  let md5 = 0;
  let setConfig = 0;
  beforeAll(async () => {
    const admin = await adminClient(primaryServer());
    md5 = Number((await admin.query("SELECT 'md5(text)'::regprocedure::oid AS oid")).rows[0].oid);
    setConfig = Number((await admin.query("SELECT 'set_config'::regproc::oid AS oid")).rows[0].oid);
    await admin.end();
    t = await startTestProxy(primaryServer(), 'guard_attacks_fncall', { pool: { size: 1 }, tenant: { function_call_allow: [md5] } });
  });
  afterAll(async () => t?.close());

  it('lets a FunctionCall of a listed OID through and still refuses every other', async () => {
    const c = await RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token('acme'));
    try {
      await c.write(functionCall(md5, ['abc']));
      expect(summarise(await c.untilReady())).toMatchObject({ rows: ['900150983cd24fb0d6963f7d28e17f72'], error: null, status: 'I' });
      await c.write(functionCall(setConfig, ['search_path', 'tenant_globex', 'false']));
      const r = summarise(await c.untilReady());
      expect(r.error?.M).toMatch(/rule function_call/);
      expect(r.rows).toEqual([]);
      expect((await c.query(CTX)).rows).toEqual([ACME]);
    } finally {
      c.end();
    }
  });
});
