// The guard's shape cache: DML with fresh literals is judged without a parse after its first time, the
// shape lexer agrees with PostgreSQL's scanner (libpg-query's scanSync) on every literal, any doubt falls
// back to a full parse, and a dangerous statement is never served from a verdict cached for a harmless
// statement of the same shape. (Mutation-checked: making the guard ignore literalSensitive, or the
// check that every literal became a constant, makes the last test fail.)
import { loadModule, scanSync } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { statementShape } from '../../src/guard/shape.js';
import { StatementGuard } from '../../src/guard/statement-guard.js';

beforeAll(async () => {
  await loadModule();
});

/** pgbench's statements with fresh literals each call: -N (simple-update) sends the accounts UPDATE, the SELECT and the INSERT; the tellers UPDATE is the TPC-B-like script's. */
export function pgbenchN(i: number): string[] {
  const aid = 1 + ((i * 7919) % 100_000);
  const delta = ((i * 104_729) % 10_001) - 5000;
  return [
    `UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};`,
    `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
    `UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${1 + (i % 10)};`,
    `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${1 + (i % 10)}, 1, ${aid}, ${delta}, CURRENT_TIMESTAMP);`,
  ];
}

describe('statement shape lexer', () => {
  it('gives one key to statements that differ only in literal values, and keeps identifiers', () => {
    const k = (s: string) => statementShape(s)?.key;
    expect(k('UPDATE t SET x = 5 WHERE id = 7')).toBe(k('UPDATE t SET x = 123456 WHERE id = 0'));
    expect(k("UPDATE t SET x = 'a' WHERE id = 7")).toBe(k("UPDATE t SET x = 'it''s' WHERE id = 8"));
    expect(k("UPDATE t SET x = 'a' /* c */ WHERE  id = 7 -- trailing")).toBe(k("UPDATE t SET x = E'\\\\n' WHERE id = 9"));
    expect(k('UPDATE t SET x = $$a$$')).toBe(k("UPDATE t SET x = $q$ ' $$ $q$"));
    expect(k('UPDATE t SET x = 5')).not.toBe(k('UPDATE t SET y = 5'));
    expect(k('UPDATE t SET "x" = 5')).not.toBe(k('UPDATE t SET "y" = 5'));
    expect(k('UPDATE t SET x = 1 /* a /* nested */ still comment */ WHERE id = 2')).toBe(k('UPDATE t SET x = 3 WHERE id = 4'));
  });

  it('returns null (full parse) whenever it is not sure', () => {
    for (const doubt of [
      "SELECT 'unterminated",
      'SELECT "unterminated',
      'SELECT 1 /* unterminated',
      "SELECT U&'\\0041'",
      'SELECT U&"\\0041"',
      "SELECT B'101'",
      "SELECT X'1F'",
      "SELECT N'x'",
      "SELECT 'a'\n'b'",
      "SELECT 'a' -- c\n'b'",
      'SELECT 1e',
      'SELECT 0x1F',
      'SELECT 1_000',
      'SELECT 123abc',
      'SELECT 1.2.3',
      'SELECT $1abc',
      'SELECT $abc',
      'SELECT ""',
      'SELECT \\ 1',
      'SELECT 1\u000b',
      "SELECT $$ never closed",
      "SELECT E'\\' unterminated",
    ]) {
      expect(statementShape(doubt), JSON.stringify(doubt)).toBeNull();
    }
  });

  it('agrees with PostgreSQL\'s scanner on where every literal starts (byte offsets, non-ASCII included)', () => {
    const corpus = [
      ...pgbenchN(3),
      "SELECT 'a''b', E'c\\'d', $$e'f$$, $t$ $$ $t$, 1.5e3, .5, 7, -8, x-9 FROM t WHERE y = 'é' AND z = 'ü''' -- 'x'",
      "UPDATE t SET name = 'Zoë', n = n + -1 WHERE id = 42 AND tag = E'\\\\' /* '*/",
      "INSERT INTO t VALUES ('a' /* nested /* ' */ ' */, 'b')",
      'SELECT a$b, "q""uoted", 1::int, arr[1:2] FROM t',
      "SELECT 'x' || '😀' || 1 AS s",
      'SELECT 1.e5, 2e-3, 3E+4',
    ];
    for (const sql of corpus) {
      const shape = statementShape(sql);
      expect(shape, sql).not.toBeNull();
      const tokens = scanSync(sql).tokens.filter((t) => ['SCONST', 'ICONST', 'FCONST'].includes(t.tokenName));
      expect(shape!.literals.map(([at]) => at), sql).toEqual(tokens.map((t) => t.start));
    }
  });
});

describe('guard shape cache', () => {
  it('pgbench -N statements with fresh literals are parsed once per shape', async () => {
    const g = await StatementGuard.create({ tenantSetting: 'app.current_tenant' });
    for (let i = 0; i < 50; i++) for (const sql of pgbenchN(i)) expect(g.check(sql), sql).toEqual({ allowed: true });
    // The two UPDATEs trip the pre-check (SET); the SELECT and INSERT do not need the parser at all.
    // Negative deltas have their own shape (-5000 is one constant at the minus sign).
    expect(g.stats.parsed).toBeLessThanOrEqual(4);
    expect(g.stats.shapeHits).toBeGreaterThanOrEqual(96);
  });

  // Pairs with the same shape: the first is allowed, the second must be refused even after the first was cached.
  const PAIRS: Array<[string, string, string]> = [
    ["SELECT set_config('work_mem', '1MB', false)", "SELECT set_config('search_path', 'tenant_globex', false)", 'set_config'],
    ["SELECT set_config('app.other', 'x', false)", "SELECT set_config('app.current_tenant', 'globex', false)", 'set_config'],
    ["SELECT set_config('client_encoding', 'UTF8', false)", "SELECT set_config('client_encoding', 'SJIS', false)", 'encoding'],
    ["SET client_encoding = 'UTF8'", "SET client_encoding = 'SJIS'", 'encoding'],
    ['SET standard_conforming_strings = 1', 'SET standard_conforming_strings = 0', 'standard_conforming_strings'],
    ["SELECT set_config('standard_conforming_strings', 'on', false)", "SELECT set_config('standard_conforming_strings', 'off', false)", 'standard_conforming_strings'],
    // A literal that the grammar turns into a name (a String node, not a constant): 'set' trips the pre-check.
    ["CREATE AGGREGATE pg_temp.a (text) (sfunc = 'textcat', stype = text, initcond = 'set')", "CREATE AGGREGATE pg_temp.a (text) (sfunc = 'set_config', stype = text, initcond = 'set')", 'set_config'],
    ["CREATE AGGREGATE pg_temp.a (text) (sfunc = 'textcat', stype = text, initcond = 'set')", "CREATE AGGREGATE pg_temp.a (text) (sfunc = 'query_to_xml', stype = text, initcond = 'set')", 'sql_from_string'],
    ["UPDATE t SET x = set_config('work_mem', '2MB', true)", "UPDATE t SET x = set_config('role', 'postgres', true)", 'set_config'],
  ];

  it.each(PAIRS)('never serves %s\'s verdict to %s', async (harmless, dangerous, rule) => {
    expect(statementShape(harmless)).not.toBeNull();
    expect(statementShape(harmless)?.key).toBe(statementShape(dangerous)?.key); // the pair is a real shape collision
    const g = await StatementGuard.create({ tenantSetting: 'app.current_tenant' });
    for (let i = 0; i < 3; i++) expect(g.check(harmless), harmless).toEqual({ allowed: true });
    expect(g.check(dangerous)).toMatchObject({ allowed: false, rule });
  });
});
