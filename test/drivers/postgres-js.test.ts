// postgres.js (implicitly prepared statements, pipelining, begin/savepoint) gives the same results through the proxy as direct.
import type postgres from 'postgres';
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
  PARAM_VALUES,
  PREPARED_REUSE_SQL,
  scenario,
  sqlFor,
  TIMEZONE,
  TZ_SQL,
  type Target,
} from './scenarios.js';

type Params = postgres.ParameterOrJSON<never>[];

describe('postgres.js scenarios (proxy vs direct)', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'drv_postgresjs', { pool: { size: 2 } });
  });
  afterAll(async () => {
    await closeDirect();
    await t?.close();
  });

  /** Statement text with $n parameters, run with prepare: true (the default) so the driver names and reuses it. */
  const one = async (sql: postgres.Sql, text: string, params: unknown[] = []) => (await sql.unsafe(text, params as Params, { prepare: true }))[0];

  scenario(
    'prepared_reuse',
    async (target: Target) => {
      const sql = await sqlFor(t, target, 'acme');
      const out = [];
      for (let i = 0; i < 100; i++) {
        // Tagged template and unsafe() with the same text: both prepared once, executed in 100 transactions.
        out.push(i % 2 === 0 ? (await sql`SELECT ${i}::int + 1 AS n, current_setting('app.current_tenant') AS t`)[0] : await one(sql, PREPARED_REUSE_SQL, [i]));
      }
      return out;
    },
    (d) => expect(d).toEqual(Array.from({ length: 100 }, (_, i) => ({ n: i + 1, t: 'acme' }))),
  );

  scenario(
    'interleaved_tenants',
    async (target: Target) => {
      const a = await sqlFor(t, target, 'acme');
      const g = await sqlFor(t, target, 'globex');
      const out = [];
      for (let i = 0; i < 20; i++) {
        out.push(await one(a, INTERLEAVED_SQL));
        out.push(await one(g, INTERLEAVED_SQL));
      }
      return out;
    },
    (d) => expect(d).toEqual(Array.from({ length: 20 }, () => [EXPECTED_INTERLEAVED.acme, EXPECTED_INTERLEAVED.globex]).flat()),
  );

  scenario(
    'param_types',
    async (target: Target) => {
      const sql = await sqlFor(t, target, 'acme');
      // postgres.js serialises a jsonb parameter itself (JSON.stringify), so it gets the object, not its JSON text.
      const params = PARAM_LIST.map((v, i) => (i === 7 ? PARAM_VALUES.js : v));
      return [await one(sql, PARAM_TYPES_SQL, params), await one(sql, PARAM_TYPES_SQL, params)];
    },
    (d) => expect(d).toEqual([EXPECTED_PARAM_TYPES, EXPECTED_PARAM_TYPES]),
  );

  scenario(
    'savepoints',
    async (target: Target) => {
      const sql = await sqlFor(t, target, 'acme');
      const m = marker('postgresjs');
      try {
        await sql.begin(async (tx) => {
          await tx`INSERT INTO notes (body) VALUES (${`${m}:first`})`;
          const rolledBack = await tx
            .savepoint(async (sp) => {
              await sp`INSERT INTO notes (body) VALUES (${`${m}:second`})`;
              throw new Error('roll back to the savepoint');
            })
            .catch((e: Error) => e.message);
          expect(rolledBack).toBe('roll back to the savepoint');
          await tx`INSERT INTO notes (body) VALUES (${`${m}:third`})`;
        });
        const rows = await sql`SELECT body FROM notes WHERE starts_with(body, ${`${m}:`}) ORDER BY id`;
        return rows.map((x) => (x.body as string).slice(m.length + 1));
      } finally {
        await sql`DELETE FROM notes WHERE starts_with(body, ${`${m}:`})`.catch(() => {});
      }
    },
    (d) => expect(d).toEqual(['first', 'third']),
  );

  scenario(
    'pipeline_error',
    async (target: Target) => {
      const sql = await sqlFor(t, target, 'acme');
      const m = marker('postgresjs');
      await sql`SELECT 1`; // connected, so the three below go out back to back on the one connection
      try {
        // Not awaited in between: postgres.js pipelines them (each with its own Sync) on its single connection.
        const settled = await Promise.allSettled([
          sql`INSERT INTO notes (body) VALUES (${`${m}:a`}) RETURNING 'a' AS r`,
          sql`SELECT 1/0 AS r`,
          sql`INSERT INTO notes (body) VALUES (${`${m}:c`}) RETURNING 'c' AS r`,
        ]);
        const outcomes = settled.map((s) =>
          s.status === 'fulfilled' ? { ok: s.value.map((x) => x.r) } : { error: (s.reason as { code?: string }).code ?? String(s.reason) },
        );
        const rows = await sql`SELECT body FROM notes WHERE starts_with(body, ${`${m}:`}) ORDER BY id`;
        const after = await sql`SELECT current_setting('app.current_tenant') AS t`;
        return { outcomes, persisted: rows.map((x) => (x.body as string).slice(m.length + 1)), after: [...after] };
      } finally {
        await sql`DELETE FROM notes WHERE starts_with(body, ${`${m}:`})`.catch(() => {});
      }
    },
    (d) =>
      expect(d).toEqual({ outcomes: [{ ok: ['a'] }, { error: '22012' }, { ok: ['c'] }], persisted: ['a', 'c'], after: [{ t: 'acme' }] }),
  );

  scenario(
    'session_timezone',
    async (target: Target) => {
      const sql = await sqlFor(t, target, 'acme');
      await sql.unsafe(`SET TimeZone = '${TIMEZONE}'`);
      const autocommit = await one(sql, TZ_SQL);
      const inTx = await sql.begin(async (tx) => (await tx.unsafe(TZ_SQL, [], { prepare: true }))[0]);
      return { autocommit, inTx };
    },
    (d) => expect(d).toEqual({ autocommit: { tz: TIMEZONE }, inTx: { tz: TIMEZONE } }),
  );
});
