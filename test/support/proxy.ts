// Starts a proxy in front of a fixture database for a test file, and makes tokens for its tenants.
import { SignJWT } from 'jose';
import pg from 'pg';
import postgres from 'postgres';
import pino from 'pino';
import type { ProxyConfig } from '../../src/config/types.js';
import { validateConfig } from '../../src/config/load.js';
import { startProxy, type RunningProxy } from '../../src/server.js';
import type { SampleProtection } from '../../src/demo/sample-schema.js';
import { createFixtureDatabase, TEST_PROOF_KEY, type PgServer } from './pg.js';

export const JWT_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';

export interface TestProxy {
  proxy: RunningProxy;
  config: ProxyConfig;
  server: PgServer;
  database: string;
  poolUser: string;
  poolPassword: string;
  /** A signed token for `tenant`; `expSeconds` from now (negative for an expired one). */
  token(tenant: string | null, opts?: { expSeconds?: number; secret?: string; claims?: Record<string, unknown> }): Promise<string>;
  /** A connected node-postgres client through the proxy. */
  pgClient(tenant: string): Promise<pg.Client>;
  /** A postgres.js client through the proxy. */
  sql(tenant: string, opts?: postgres.Options<Record<string, never>>): Promise<postgres.Sql>;
  /** A superuser client straight to the database (not through the proxy). */
  admin(): Promise<pg.Client>;
  close(): Promise<void>;
}

export async function startTestProxy(
  server: PgServer,
  name: string,
  /** Config keys as they would be written in YAML, over the test defaults. */
  overrides: {
    pool?: Record<string, unknown>;
    tenant?: Record<string, unknown>;
    listen?: Record<string, unknown>;
    /** Backend keys over the fixture's (e.g. sslmode, sslrootcert). */
    backend?: Record<string, unknown>;
    /** Keys of `auth` besides `jwt` (e.g. rate_limit); `jwt` keys go in `jwt`. */
    auth?: Record<string, unknown>;
    jwt?: Record<string, unknown>;
    users?: unknown[];
    /** verified (default): the tenancy kit, and the proxy sets the proof; raw: the old layout, no proof key. */
    protection?: SampleProtection;
    shutdown?: Record<string, unknown>;
    /** A logger to capture the proxy's log lines (default: silent, or PGTP_TEST_LOG). */
    logger?: pino.Logger;
  } = {},
): Promise<TestProxy> {
  const protection = overrides.protection ?? 'verified';
  const fx = await createFixtureDatabase(server, name, protection);
  const tree = {
    // Tests connect over loopback without TLS unless they set listen.tls / plaintext_tokens themselves.
    listen: { port: 0, plaintext_tokens: 'loopback', ...overrides.listen },
    admin: { port: 0 },
    backend: { host: server.host, port: server.port, database: fx.database, user: fx.poolUser, password: fx.poolPassword, ...overrides.backend },
    pool: { size: 4, idle_timeout_ms: 0, ...overrides.pool },
    auth: { jwt: { algorithms: ['HS256'], secret: JWT_SECRET, ...overrides.jwt }, ...overrides.auth },
    ...(overrides.users ? { users: overrides.users } : {}),
    tenant: { search_path: 'tenant_{tenant}, public', ...(protection === 'verified' ? { proof_key: TEST_PROOF_KEY } : {}), ...overrides.tenant },
    log: { level: 'silent' },
    ...(overrides.shutdown ? { shutdown: overrides.shutdown } : {}),
  };
  const config: ProxyConfig = validateConfig(tree, process.env, process.cwd());
  const log = overrides.logger ?? pino({ level: process.env.PGTP_TEST_LOG ?? 'silent' });
  const proxy = await startProxy(config, log);
  const opened: Array<{ end(): Promise<unknown> }> = [];

  const token: TestProxy['token'] = async (tenant, opts = {}) => {
    const claims: Record<string, unknown> = { ...(tenant === null ? {} : { tenant_id: tenant }), ...opts.claims };
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + (opts.expSeconds ?? 3600))
      .sign(new TextEncoder().encode(opts.secret ?? JWT_SECRET));
  };

  return {
    proxy,
    config,
    server,
    database: fx.database,
    poolUser: fx.poolUser,
    poolPassword: fx.poolPassword,
    token,
    async pgClient(tenant) {
      const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, database: fx.database, user: 'app', password: await token(tenant) });
      c.on('error', () => {});
      await c.connect();
      opened.push(c);
      return c;
    },
    async sql(tenant, opts = {}) {
      const s = postgres({ host: '127.0.0.1', port: proxy.port, database: fx.database, username: 'app', password: await token(tenant), max: 1, onnotice: () => {}, ...opts });
      opened.push(s);
      return s;
    },
    async admin() {
      const c = new pg.Client({ host: server.host, port: server.port, database: fx.database, user: server.user, password: server.password });
      await c.connect();
      opened.push(c);
      return c;
    },
    async close() {
      await Promise.allSettled(opened.map((c) => c.end()));
      await proxy.close();
    },
  };
}

/** A logger whose lines (parsed JSON) land in `lines`, for tests that check what is logged. */
export function captureLogger(lines: Array<Record<string, unknown>>): pino.Logger {
  return pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
}

/** Backend connections the pool user holds now, as PostgreSQL sees them. */
export async function backendCount(admin: pg.Client, poolUser: string): Promise<number> {
  const r = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [poolUser]);
  return r.rows[0].n as number;
}
