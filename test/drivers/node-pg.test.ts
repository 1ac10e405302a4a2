// node-postgres named queries (Parse once, Bind/Execute later) give the same results through the proxy as direct.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import {
  closeDirect,
  EXPECTED_INTERLEAVED,
  EXPECTED_PARAM_TYPES,
  INTERLEAVED_SQL,
  marker,
  PARAM_LIST,
  PARAM_TYPES_SQL,
  pgFor,
  PREPARED_REUSE_SQL,
  scenario,
  TIMEZONE,
  TZ_SQL,
  type Target,
} from './scenarios.js';

describe('node-postgres scenarios (proxy vs direct)', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'drv_nodepg', { pool: { size: 2 } });
  });
  afterAll(async () => {
    await closeDirect();
    await t?.close();
  });

  const row = async (c: pg.Client, q: pg.QueryConfig) => (await c.query(q)).rows[0] as Record<string, unknown>;

  scenario(
    'prepared_reuse',
    async (target: Target) => {
      const c = await pgFor(t, target, 'acme');
      const out = [];
      // 100 autocommit statements = 100 transactions; node-pg sends Parse for 'reuse' only the first time.
      for (let i = 0; i < 100; i++) out.push(await row(c, { name: 'reuse', text: PREPARED_REUSE_SQL, values: [i] }));
      return out;
    },
    (d) => expect(d).toEqual(Array.from({ length: 100 }, (_, i) => ({ n: i + 1, t: 'acme' }))),
  );

  scenario(
    'interleaved_tenants',
    async (target: Target) => {
      const a = await pgFor(t, target, 'acme');
      const g = await pgFor(t, target, 'globex');
      const out: Record<string, unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        out.push(await row(a, { name: 'inter', text: INTERLEAVED_SQL }));
        out.push(await row(g, { name: 'inter', text: INTERLEAVED_SQL }));
      }
      return out;
    },
    (d) => expect(d).toEqual(Array.from({ length: 20 }, () => [EXPECTED_INTERLEAVED.acme, EXPECTED_INTERLEAVED.globex]).flat()),
  );

  scenario(
    'param_types',
    async (target: Target) => {
      const c = await pgFor(t, target, 'acme');
      // Twice with the same name: the second execution reuses the prepared statement.
      const first = await row(c, { name: 'types', text: PARAM_TYPES_SQL, values: PARAM_LIST });
      const second = await row(c, { name: 'types', text: PARAM_TYPES_SQL, values: PARAM_LIST });
      return [first, second];
    },
    (d) => expect(d).toEqual([EXPECTED_PARAM_TYPES, EXPECTED_PARAM_TYPES]),
  );

  scenario(
    'savepoints',
    async (target: Target) => {
      const c = await pgFor(t, target, 'acme');
      const m = marker('nodepg');
      const ins = (suffix: string) => c.query({ name: 'ins', text: 'INSERT INTO notes (body) VALUES ($1)', values: [`${m}:${suffix}`] });
      try {
        await c.query('BEGIN');
        await ins('first');
        await c.query('SAVEPOINT a');
        await ins('second');
        await c.query('ROLLBACK TO SAVEPOINT a');
        await ins('third');
        await c.query('COMMIT');
        const r = await c.query({ name: 'sel', text: 'SELECT body FROM notes WHERE starts_with(body, $1) ORDER BY id', values: [`${m}:`] });
        return r.rows.map((x) => (x.body as string).slice(m.length + 1));
      } finally {
        await c.query('DELETE FROM notes WHERE starts_with(body, $1)', [`${m}:`]).catch(() => {});
      }
    },
    (d) => expect(d).toEqual(['first', 'third']),
  );

  // pipeline_error: node-postgres cannot pipeline (one query in flight per client), so it is not run here.

  scenario(
    'session_timezone',
    async (target: Target) => {
      const c = await pgFor(t, target, 'acme');
      await c.query(`SET TimeZone = '${TIMEZONE}'`);
      const autocommit = await row(c, { name: 'tz', text: TZ_SQL });
      await c.query('BEGIN');
      const inTx = await row(c, { name: 'tz', text: TZ_SQL });
      await c.query('COMMIT');
      return { autocommit, inTx };
    },
    (d) => expect(d).toEqual({ autocommit: { tz: TIMEZONE }, inTx: { tz: TIMEZONE } }),
  );
});
