// Test helpers: the PostgreSQL servers started by global-setup, admin connections and per-file fixture databases.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { applyKit } from '../../src/admin/kit.js';
import { mintProof, proofKeyId } from '../../src/session/tenant-proof.js';
import type { TenantConfig } from '../../src/config/types.js';
import { sampleSchemaSql, type SampleProtection } from '../../src/demo/sample-schema.js';

/** The proof key fixture databases store and test proxies are configured with (tenant.proof_key). */
export const TEST_PROOF_KEY = 'test-proof-key-that-is-at-least-32-bytes-long';

/** A proof for `tenant` under TEST_PROOF_KEY, as the proxy sets it: for direct sessions emulating the proxy. */
export function testProof(tenant: string, ttlS = 3600): string {
  return mintProof(TEST_PROOF_KEY, proofKeyId(TEST_PROOF_KEY), tenant, Math.floor(Date.now() / 1000) + ttlS);
}

/** Connection info of one running PostgreSQL server; `user`/`password` are a superuser's. */
export interface PgServer {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** Major version, from server_version_num (e.g. 18). */
  major: number;
  /** postgres:// URL equivalent to the fields above. */
  url: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgPrimary: PgServer;
    /** A server of a different major version, or null when not started. */
    pgSecond: PgServer | null;
  }
}

/** The server every test run has (PG_TEST_URL, a Docker container, or embedded PostgreSQL 18). */
export function primaryServer(): PgServer {
  const server = inject('pgPrimary');
  if (!server) throw new Error('pgPrimary not provided: is test/support/global-setup.ts configured as globalSetup?');
  return server;
}

/** A second server of another major version (embedded PostgreSQL 16), if global-setup started one. */
export function secondServer(): PgServer | undefined {
  return inject('pgSecond') ?? undefined;
}

/** A connected pg.Client as the superuser; the caller must `end()` it. */
export async function adminClient(server: PgServer, database: string = server.database): Promise<pg.Client> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database,
  });
  await client.connect();
  return client;
}

export interface FixtureDatabase {
  database: string;
  poolUser: string;
  poolPassword: string;
}

/**
 * (Re)creates database `name` with the sample multi-tenant schema and a LOGIN role `<name>_pool`
 * (NOSUPERUSER NOBYPASSRLS, SCRAM password) that may use it. Each test file should use its own name.
 * `verified` (default) installs the tenancy kit with TEST_PROOF_KEY and protects the sample tables with it;
 * `raw` is the layout before the kit (a policy on the raw tenant setting), to show what the kit stops.
 */
export async function createFixtureDatabase(server: PgServer, name: string, protection: SampleProtection = 'verified'): Promise<FixtureDatabase> {
  if (!/^[a-z_][a-z0-9_]{0,57}$/.test(name)) {
    throw new Error(`fixture database name must match /^[a-z_][a-z0-9_]{0,57}$/: ${JSON.stringify(name)}`);
  }
  const poolUser = `${name}_pool`;
  const poolPassword = randomBytes(18).toString('base64url');
  const db = pg.escapeIdentifier(name);
  const role = pg.escapeIdentifier(poolUser);
  const password = pg.escapeLiteral(poolPassword);

  const admin = await adminClient(server);
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.query(`SET password_encryption = 'scram-sha-256'`);
    // Create-or-update keeps this idempotent on a long-lived PG_TEST_URL server.
    const { rowCount } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [poolUser]);
    const verb = rowCount ? 'ALTER' : 'CREATE';
    await admin.query(
      `${verb} ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD ${password}`,
    );
    await admin.query(`CREATE DATABASE ${db}`);
  } finally {
    await admin.end();
  }

  const owner = await adminClient(server, name);
  try {
    if (protection === 'verified') {
      const tenant = { setting: 'app.current_tenant', proof_setting: 'app.tenant_proof', proof_key: TEST_PROOF_KEY } as TenantConfig;
      await applyKit(owner, { tenant });
    }
    await owner.query(sampleSchemaSql(poolUser, protection));
  } finally {
    await owner.end();
  }
  return { database: name, poolUser, poolPassword };
}

export { freePort } from '../../src/demo/free-port.js';
