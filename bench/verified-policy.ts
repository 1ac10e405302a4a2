// `npm run bench:policy`: the cost of the verified tenant policy (tenancy.current_tenant(), sql/tenancy-kit.sql)
// against a policy on the raw setting, on a point lookup through pg-tenant-proxy. Two databases with the same
// table and data differ only in the policy; pgbench -f runs the same lookup through a proxy for each, in
// alternating rounds, and the median of each is reported. A benchmark, not a test: compare the ratio.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startThrowawayPg, type ThrowawayPg } from './throwaway-pg.js';
import { SignJWT } from 'jose';
import pg from 'pg';
import pino from 'pino';
import { applyKit } from '../src/admin/kit.js';
import { validateConfig } from '../src/config/load.js';
import { startProxy, type RunningProxy } from '../src/server.js';

const run = promisify(execFile);
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const CLIENTS = Number(arg('clients', '20'));
const SECONDS = Number(arg('seconds', '8'));
const POOL = Number(arg('pool', '10'));
const ROUNDS = Number(arg('rounds', '3'));
const ROWS = 100_000;
const TENANTS = 100;

const TABLE = `
CREATE TABLE items (id int PRIMARY KEY, tenant_id text NOT NULL, v text);
INSERT INTO items SELECT i, 't' || (i % ${TENANTS}), md5(i::text) FROM generate_series(1, ${ROWS}) i;
CREATE INDEX ON items (tenant_id);
ANALYZE items;
GRANT SELECT ON items TO bench_pool;
`;
const RAW = `
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
CREATE POLICY raw ON items USING (tenant_id = current_setting('app.current_tenant', true));
`;
const VERIFIED = `SELECT tenancy.protect_table('items', 'tenant_id');`;

async function main(): Promise<void> {
  const dir = path.resolve('.tmp', `bench-policy-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  let db: ThrowawayPg | null = null;
  const proxies: RunningProxy[] = [];
  try {
    db = await startThrowawayPg(dir, 100);
    const { port, su } = db;
    const poolPw = randomBytes(8).toString('hex');
    const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: su, database: 'postgres' });
    await admin.connect();
    await admin.query(`CREATE ROLE bench_pool LOGIN PASSWORD '${poolPw}'`);
    await admin.query('CREATE DATABASE bench_raw');
    await admin.query('CREATE DATABASE bench_verified');
    await admin.end();

    const secret = randomBytes(32).toString('hex');
    const proofKey = randomBytes(32).toString('hex');
    const configFor = (database: string, key: string | undefined) =>
      validateConfig(
        {
          listen: { port: 0, max_client_conn: 1000, plaintext_tokens: 'loopback' },
          admin: { port: 0 },
          backend: { port, database, user: 'bench_pool', password: poolPw },
          pool: { size: POOL, acquire_timeout_ms: 30_000, idle_timeout_ms: 0 },
          auth: { jwt: { algorithms: ['HS256'], secret } },
          tenant: key ? { proof_key: key } : {},
          log: { level: 'error' },
        },
        process.env,
        process.cwd(),
      );
    const targets: Array<{ label: string; port: number; tps: number[] }> = [];
    for (const [database, key] of [['bench_raw', undefined], ['bench_verified', proofKey]] as const) {
      const cfg = configFor(database, key);
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: su, database });
      await c.connect();
      await c.query(`GRANT CONNECT ON DATABASE ${database} TO bench_pool`);
      if (key) await applyKit(c, cfg);
      await c.query(TABLE);
      await c.query(key ? VERIFIED : RAW);
      await c.end();
      const proxy = await startProxy(cfg, pino({ level: 'error' }));
      proxies.push(proxy);
      targets.push({ label: key ? 'verified: tenant_id = (SELECT tenancy.current_tenant())' : "raw: tenant_id = current_setting('app.current_tenant', true)", port: proxy.port, tps: [] });
    }
    const token = await new SignJWT({ tenant_id: 't7' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const script = path.join(dir, 'lookup.sql');
    writeFileSync(script, `\\set id random(1, ${ROWS})\nSELECT v FROM items WHERE id = :id;\n`);

    for (let round = 0; round < ROUNDS; round++) {
      for (const t of round % 2 === 0 ? targets : [...targets].reverse()) {
        const { stdout } = await run(
          'pgbench',
          ['-h', '127.0.0.1', '-p', String(t.port), '-U', 'app', '-n', '-M', 'extended', '-f', script, '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS), t.label.startsWith('raw') ? 'bench_raw' : 'bench_verified'],
          { env: { ...process.env, PGPASSWORD: token, PGSSLMODE: 'disable' }, maxBuffer: 1 << 24 },
        );
        const m = /tps = ([\d.]+) \((without|excluding)/.exec(stdout);
        if (!m) throw new Error(`could not read tps from pgbench output:\n${stdout}`);
        t.tps.push(Number(m[1]));
      }
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`point lookup through pg-tenant-proxy: ${CLIENTS} clients, pool ${POOL}, ${ROUNDS} rounds of ${SECONDS} s, ${ROWS} rows / ${TENANTS} tenants`);
    for (const t of targets) console.log(`${t.label.padEnd(64)} median ${median(t.tps).toFixed(0)} tps  (rounds: ${t.tps.map((x) => x.toFixed(0)).join(', ')})`);
    const [raw, verified] = targets.map((t) => median(t.tps));
    console.log(`verified / raw: ${((verified / raw) * 100).toFixed(1)} %`);
  } finally {
    for (const p of proxies) await p.close().catch(() => undefined);
    await db?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(`bench failed: ${e.message}`);
  process.exit(1);
});
