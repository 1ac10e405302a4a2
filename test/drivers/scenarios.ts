// Shared helpers for the driver suites: scenario SQL and inputs, direct (no proxy) connections that emulate
// the tenant context, result normalisation, and a "direct first, then the proxy must equal it" test pair.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import postgres from 'postgres';
import { expect, it } from 'vitest';
import type { TestProxy } from '../support/proxy.js';
import { testProof } from '../support/pg.js';

export const run = promisify(execFile);

/** True when `cmd args…` runs and exits 0 (used to skip suites whose client program is not installed). */
export async function canRun(cmd: string, args: string[]): Promise<boolean> {
  return run(cmd, args, { timeout: 20_000 }).then(
    () => true,
    () => false,
  );
}

/** What the proxy injects per transaction, done once per direct session (search_path as the test config's template; $2 the proof). */
export const SET_CONTEXT_SQL =
  "SELECT set_config('app.current_tenant', $1, false), set_config('app.tenant_proof', $2, false), set_config('search_path', '\"tenant_' || $1 || '\", public', false)";

export const PREPARED_REUSE_SQL = "SELECT $1::int + 1 AS n, current_setting('app.current_tenant') AS t";
export const INTERLEAVED_SQL =
  "SELECT current_setting('app.current_tenant') AS t, (SELECT count(*) FROM orders)::int AS orders, (SELECT body FROM notes ORDER BY id LIMIT 1) AS note";
export const PARAM_TYPES_SQL =
  'SELECT $1::int4 AS i4, $2::int8 AS i8, $3::text AS txt, $4::bool AS b, $5::numeric AS num, $6::bytea AS bin, ' +
  '$7::timestamptz AS ts, $8::jsonb AS js, $9::text AS nul, $10::text AS big';
export const TZ_SQL = "SELECT current_setting('TimeZone') AS tz";
export const TIMEZONE = 'America/New_York';

/** Inputs for param_types; int8 and numeric go as strings so no precision is lost in JS. */
export const PARAM_VALUES = {
  i4: 2147483647,
  i8: '9007199254740993',
  txt: "héllo 'wörld' \\ \u2603",
  b: true,
  num: '12345678901234567890.000000000123',
  bin: Buffer.from([0, 1, 2, 127, 128, 254, 255, 0x5c, 0x27]),
  ts: new Date('2024-02-29T12:34:56.789Z'),
  js: { a: [1, 2, { b: null }], s: 'x"y' },
  nul: null,
  big: 'abcdefghij'.repeat(4_000) + '€',
};
export const PARAM_LIST: unknown[] = [
  PARAM_VALUES.i4,
  PARAM_VALUES.i8,
  PARAM_VALUES.txt,
  PARAM_VALUES.b,
  PARAM_VALUES.num,
  PARAM_VALUES.bin,
  PARAM_VALUES.ts,
  JSON.stringify(PARAM_VALUES.js),
  PARAM_VALUES.nul,
  PARAM_VALUES.big,
];

export const EXPECTED_INTERLEAVED = {
  acme: { t: 'acme', orders: 2, note: 'acme note' },
  globex: { t: 'globex', orders: 1, note: 'globex note' },
} as const;

/** A marker unique to one run of one scenario with one driver (rows are found, reported and deleted by it). */
export function marker(driver: string): string {
  return `drv-${driver}-${randomBytes(6).toString('hex')}`;
}

/** JSON-friendly, comparable form: bytea → hex, Date → ISO, bigint → string, long strings → length + sha256. */
export function normalise(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `\\x${Buffer.from(v).toString('hex')}`;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string' && v.length > 1000) return { length: v.length, sha256: createHash('sha256').update(v).digest('hex') };
  if (Array.isArray(v)) return v.map(normalise);
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, normalise(x)]));
  return v;
}

/** What param_types must return: the inputs themselves, normalised. */
export const EXPECTED_PARAM_TYPES = normalise(PARAM_VALUES);

/** Where a scenario runs: through the proxy, or straight to PostgreSQL with the context set by hand. */
export type Target = 'proxy' | 'direct';

/** Direct connections opened by the helpers below, closed by closeDirect(). */
const directOpened: Array<{ end(): Promise<unknown> }> = [];

export async function closeDirect(): Promise<void> {
  await Promise.allSettled(directOpened.splice(0).map((c) => c.end()));
}

/** A node-postgres client straight to PostgreSQL as the pool user, with the tenant context of `tenant`. */
export async function directPg(t: TestProxy, tenant: string): Promise<pg.Client> {
  const c = new pg.Client({ host: t.server.host, port: t.server.port, database: t.database, user: t.poolUser, password: t.poolPassword });
  c.on('error', () => {});
  await c.connect();
  directOpened.push(c);
  await c.query(SET_CONTEXT_SQL, [tenant, testProof(tenant)]);
  return c;
}

/** A node-postgres client for `tenant` at `target`. */
export function pgFor(t: TestProxy, target: Target, tenant: string): Promise<pg.Client> {
  return target === 'proxy' ? t.pgClient(tenant) : directPg(t, tenant);
}

/** A postgres.js client (one connection) for `tenant` at `target`; direct ones get the context set once. */
export async function sqlFor(t: TestProxy, target: Target, tenant: string): Promise<postgres.Sql> {
  const opts = { max: 1, fetch_types: false, onnotice: () => {} } as const;
  if (target === 'proxy') return t.sql(tenant, opts);
  const sql = postgres({ host: t.server.host, port: t.server.port, database: t.database, username: t.poolUser, password: t.poolPassword, ...opts });
  directOpened.push(sql);
  await sql.unsafe(SET_CONTEXT_SQL, [tenant, testProof(tenant)]);
  return sql;
}

/** libpq-style URL for `tenant` at `target` (python drivers, psql, pgbench). */
export async function dsnFor(t: TestProxy, target: Target, tenant: string): Promise<string> {
  if (target === 'proxy') return `postgresql://app:${await t.token(tenant)}@127.0.0.1:${t.proxy.port}/${t.database}?sslmode=disable`;
  return `postgresql://${t.poolUser}:${encodeURIComponent(t.poolPassword)}@${t.server.host}:${t.server.port}/${t.database}?sslmode=disable`;
}

/**
 * Two tests for one scenario: `direct` (must satisfy `check`, proving the scenario itself is right) and
 * `proxy` (must equal the direct result). The direct result is computed once and shared.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- checks read the normalised JSON shape
export function scenario(name: string, runAt: (target: Target) => Promise<unknown>, check?: (direct: any) => void): void {
  let direct: Promise<unknown> | undefined;
  const getDirect = () => (direct ??= runAt('direct').then(normalise));
  it(`${name}: direct`, async () => {
    const d = await getDirect();
    check?.(d);
  });
  it(`${name}: through the proxy equals direct`, async () => {
    const d = await getDirect();
    const p = normalise(await runAt('proxy'));
    expect(p).toEqual(d);
  });
}
