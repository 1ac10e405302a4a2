// `npm run bench`: pgbench through pg-tenant-proxy and through PgBouncer with `server_reset_query_always = 1`
// (the peer that gives the same DISCARD ALL guarantee), in one run on a throwaway embedded PostgreSQL, for
// three workloads: read-only (-S), writes (-N) and a new connection per transaction (-C -S). Prints each
// ratio and the CPU per transaction of each process, read from /proc: on a shared 2-core box, CPU per
// transaction is the figure that transfers to production. Compare ratios within one run, never across runs.
//   npm run bench -- --workers N [--rounds 2]: workers: 1 against workers: N instead (bench/workers.ts)
//   npm run bench -- [--seconds 10] [--pool 20] [--workloads select,write,connect] [--rounds 1]
//                    [--mode simple|extended|prepared] [--direct] [--no-reset-peer] [--profile DIR] [--hold]
//                    [--no-readback]
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { startThrowawayPg, type ThrowawayPg } from './throwaway-pg.js';
import { SignJWT } from 'jose';
import pg from 'pg';
import { freePort } from '../src/demo/free-port.js';
import { cpuSeconds, family, snapshot } from './procstat.js';
import { benchWorkers, printWorkersTable } from './workers.js';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const arg = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const flag = (name: string): boolean => argv.includes(`--${name}`);
const SECONDS = Number(arg('seconds', '10'));
const POOL = Number(arg('pool', '20'));
const ROUNDS = Number(arg('rounds', '1'));
const MODE = arg('mode', 'simple');
/** --workers N: compare the proxy run as the CLI with workers: 1 and workers: N (see bench/workers.ts). */
const WORKERS = Number(arg('workers', '0'));

interface Workload {
  name: string;
  clients: number;
  args: string[];
}
const WORKLOADS: Record<string, Workload> = {
  select: { name: '-S -c 50', clients: 50, args: ['-S'] },
  write: { name: '-N -c 20', clients: 20, args: ['-N'] },
  connect: { name: '-C -S -c 10', clients: 10, args: ['-C', '-S'] },
};
const chosen = arg('workloads', 'select,write,connect')
  .split(',')
  .map((w) => {
    const wl = WORKLOADS[w.trim()];
    if (!wl) throw new Error(`unknown workload "${w}"; choose from ${Object.keys(WORKLOADS).join(', ')}`);
    return wl;
  });

interface Target {
  label: string;
  port: number;
  user: string;
  password: string;
  /** The pid whose process family is this target's own CPU (none for direct). */
  pid: number | null;
}

interface Result {
  tps: number;
  /** µs of CPU per transaction: the target's own processes, and PostgreSQL's. */
  ownUs: number;
  pgUs: number;
}

async function pgbench(t: Target, wl: Workload): Promise<Result> {
  const before = snapshot();
  const { stdout } = await run(
    'pgbench',
    ['-h', '127.0.0.1', '-p', String(t.port), '-U', t.user, '-n', '-M', MODE, '-c', String(wl.clients), '-j', '2', '-T', String(SECONDS), ...wl.args, 'bench'],
    { env: { ...process.env, PGPASSWORD: t.password, PGSSLMODE: 'disable' }, maxBuffer: 1 << 24 },
  );
  const after = snapshot();
  const m = /tps = ([\d.]+) \((without|excluding|including)/.exec(stdout);
  const n = /number of transactions actually processed: (\d+)/.exec(stdout);
  if (!m || !n) throw new Error(`could not read pgbench output:\n${stdout}`);
  const txns = Number(n[1]);
  const fam = t.pid === null ? new Set<number>() : family(after, t.pid);
  const own = t.pid === null ? NaN : cpuSeconds(before, after, (pid) => fam.has(pid));
  const pgCpu = cpuSeconds(before, after, (pid, st) => st.comm === 'postgres' && !fam.has(pid));
  return { tps: Number(m[1]), ownUs: (own / txns) * 1e6, pgUs: (pgCpu / txns) * 1e6 };
}

function waitForPort(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on ${port} after ${ms} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

async function main(): Promise<void> {
  const dir = path.resolve('.tmp', `bench-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  // PgBouncer refuses to run as root; as root it runs as nobody, which must be able to read and write here.
  chmodSync(dir, 0o777);
  let db: ThrowawayPg | null = null;
  const children: ChildProcess[] = [];
  const stopAll = async (): Promise<void> => {
    // SIGTERM first so a profiling proxy writes its profile; then make sure.
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
    for (const c of children) c.kill('SIGKILL');
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    db = await startThrowawayPg(dir, 300);
    const { port, su } = db;
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
        rows.push(await benchWorkers({ workers, dbPort: port, poolPw, pool: POOL, seconds: SECONDS, dir, pgbench: (p, u, pw) => pgbench({ label: 'proxy', port: p, user: u, password: pw, pid: null }, WORKLOADS.select).then((r) => r.tps) }));
      }
      printWorkersTable(rows, `pgbench -S -M ${MODE} -c ${WORKLOADS.select.clients} -j 2 -T ${SECONDS}, scale 5, pool ${POOL} in all`);
      return;
    }
    // The proxy as its own process, as in production, so its CPU is its own.
    const secret = randomBytes(32).toString('hex');
    const proxyPort = await freePort();
    const cfgFile = path.join(dir, 'proxy.yaml');
    writeFileSync(
      cfgFile,
      JSON.stringify({
        listen: { port: proxyPort, max_client_conn: 10_000, plaintext_tokens: 'loopback' },
        admin: { port: 0 },
        backend: { port, database: 'bench', user: 'bench_pool', password: poolPw },
        pool: { size: POOL, acquire_timeout_ms: 30_000, idle_timeout_ms: 0 },
        auth: { jwt: { algorithms: ['HS256'], secret } },
        // --no-readback: tenant.readback_check off, to show what the read-back costs (it is on by default).
        tenant: { search_path: 'tenant_{tenant}, public', ...(flag('no-readback') ? { readback_check: false } : {}) },
        log: { level: 'warn' },
      }),
    );
    // --profile DIR: the proxy writes a V8 CPU profile there when it exits (open it in Chrome DevTools).
    const profile = arg('profile', '');
    const nodeFlags = profile ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(profile)] : process.env.PGTP_BENCH_PERF ? ['--perf-basic-prof'] : [];
    // Compiled by tsc, as production runs it (npm's package ships dist/): tsx's on-the-fly build wraps every
    // closure in a keep-names helper, which costs real CPU per connection and would skew the figures.
    await run('npx', ['tsc', '-p', 'tsconfig.build.json']);
    const proxy = spawn(process.execPath, [...nodeFlags, 'dist/main.js', '--config', cfgFile], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(proxy);
    await waitForPort(proxyPort, 20_000);
    const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('2h').sign(new TextEncoder().encode(secret));

    const targets: Target[] = [];
    if (flag('direct')) targets.push({ label: 'direct', port, user: 'bench_pool', password: poolPw, pid: null });
    targets.push({ label: 'proxy', port: proxyPort, user: 'app', password: token, pid: proxy.pid! });

    // PgBouncer authenticates its clients too (auth_type = plain: the same cleartext exchange the proxy does).
    const bouncerVersion = await run('pgbouncer', ['--version']).then((r) => /PgBouncer (\d+)\.(\d+)/.exec(r.stdout), () => null);
    const bouncerPrepared = bouncerVersion !== null && (Number(bouncerVersion[1]) > 1 || Number(bouncerVersion[2]) >= 21);
    if (!bouncerVersion) console.log('PgBouncer is not installed (apt-get install pgbouncer): no ratios.');
    else if (MODE === 'prepared' && !bouncerPrepared) console.log(`PgBouncer ${bouncerVersion[1]}.${bouncerVersion[2]} cannot run -M prepared in transaction mode (before 1.21): no ratios.`);
    else {
      writeFileSync(path.join(dir, 'userlist.txt'), `"bench_pool" "${poolPw}"\n`);
      for (const always of flag('no-reset-peer') ? [1, 0] : [1]) {
        const bport = await freePort();
        const ini = path.join(dir, `pgbouncer-${always}.ini`);
        writeFileSync(
          ini,
          `[databases]\nbench = host=127.0.0.1 port=${port} dbname=bench\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = ${bport}\n` +
            `auth_type = plain\nauth_file = ${path.join(dir, 'userlist.txt')}\npool_mode = transaction\ndefault_pool_size = ${POOL}\n` +
            `max_client_conn = 10000\nserver_reset_query = DISCARD ALL\nserver_reset_query_always = ${always}\nunix_socket_dir =\n` +
            `logfile = ${path.join(dir, `pgb-${always}.log`)}\nlog_connections = 0\nlog_disconnections = 0\n`,
        );
        const child = spawn('pgbouncer', [ini], { stdio: 'ignore', uid: process.getuid?.() === 0 ? 65534 : undefined });
        children.push(child);
        await waitForPort(bport, 10_000);
        targets.push({ label: always ? 'bouncer' : 'bouncer-noreset', port: bport, user: 'bench_pool', password: poolPw, pid: child.pid! });
      }
    }

    if (flag('hold')) {
      // --hold: set everything up, say how to reach it, and wait (for profiling by hand: perf, strace, pgbench).
      console.log(JSON.stringify({ config: cfgFile, proxyPid: proxy.pid, targets: targets.map((t) => ({ ...t })) }, null, 1));
      console.log(`PGPASSWORD=<password> pgbench -h 127.0.0.1 -p <port> -U <user> -n -S -c 50 -j 2 -T 8 bench; Ctrl-C stops it all`);
      await new Promise(() => {});
    }
    const results = new Map<string, Result[]>();
    for (const wl of chosen) {
      // Alternate the targets round by round so drift on a shared box hits both alike.
      for (let r = 0; r < ROUNDS; r++) {
        for (const t of targets) {
          const res = await pgbench(t, wl);
          const key = `${wl.name}|${t.label}`;
          results.set(key, [...(results.get(key) ?? []), res]);
        }
      }
    }

    const avg = (rs: Result[] | undefined, f: (r: Result) => number): number => (rs ? rs.reduce((s, r) => s + f(r), 0) / rs.length : NaN);
    const fmt = (n: number, d = 0): string => (Number.isNaN(n) ? '–' : n.toFixed(d));
    console.log(
      `\npgbench -M ${MODE} -j 2 -T ${SECONDS} x ${ROUNDS} round(s), scale 5, pool ${POOL}${flag('no-readback') ? ', proxy with tenant.readback_check off' : ''}; ` +
        `PgBouncer ${bouncerVersion ? `${bouncerVersion[1]}.${bouncerVersion[2]}` : 'absent'} transaction mode, server_reset_query_always = 1, auth_type = plain\n`,
    );
    console.log('| workload | proxy tps | PgBouncer-with-reset tps | ratio | proxy µs/txn | PgBouncer µs/txn | PostgreSQL µs/txn (proxy / PgBouncer) |');
    console.log('|---|---|---|---|---|---|---|');
    for (const wl of chosen) {
      const p = results.get(`${wl.name}|proxy`);
      const b = results.get(`${wl.name}|bouncer`);
      const pt = avg(p, (r) => r.tps);
      const bt = avg(b, (r) => r.tps);
      console.log(
        `| \`${wl.name}\` | ${fmt(pt)} | ${fmt(bt)} | **${fmt(pt / bt, 2)}** | ${fmt(avg(p, (r) => r.ownUs))} | ${fmt(avg(b, (r) => r.ownUs))} | ${fmt(avg(p, (r) => r.pgUs))} / ${fmt(avg(b, (r) => r.pgUs))} |`,
      );
    }
    for (const extra of ['direct', 'bouncer-noreset']) {
      if (!targets.some((t) => t.label === extra)) continue;
      console.log(`\n${extra}: ${chosen.map((wl) => `${wl.name} ${fmt(avg(results.get(`${wl.name}|${extra}`), (r) => r.tps))} tps`).join(', ')}`);
    }
  } finally {
    await stopAll();
    await db?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(`bench failed: ${e.message}`);
    process.exit(1);
  },
);
