// `npm run bench -- --workers N`: the proxy as the CLI runs it (a child process), once with workers: 1 and once
// with workers: N, under the same pgbench load; each process's CPU is read from /proc (Linux).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { freePort } from '../src/demo/free-port.js';

/** utime + stime ticks and parent pid of every process (Linux /proc/<pid>/stat). */
function processTable(): Map<number, { ppid: number; ticks: number }> {
  const out = new Map<number, { ppid: number; ticks: number }>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(pid), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

export interface WorkersRow {
  workers: number;
  tps: number;
  txns: number;
  /** CPU µs per transaction of the primary and of each worker (each worker's CPU over all transactions). */
  primaryUs: number;
  workerUs: number[];
  /** Share of one core each worker used during the run. */
  workerCores: number[];
}

export async function benchWorkers(opts: {
  workers: number;
  dbPort: number;
  poolPw: string;
  pool: number;
  seconds: number;
  dir: string;
  pgbench(port: number, user: string, password: string): Promise<number>;
}): Promise<WorkersRow> {
  const secret = randomBytes(32).toString('hex');
  const port = await freePort();
  const adminPort = await freePort();
  const configFile = path.join(opts.dir, `workers-${opts.workers}.yaml`);
  writeFileSync(
    configFile,
    stringify({
      workers: opts.workers,
      listen: { port, max_client_conn: 10_000, plaintext_tokens: 'loopback' },
      admin: { port: adminPort },
      backend: { host: '127.0.0.1', port: opts.dbPort, database: 'bench', user: 'bench_pool', password: opts.poolPw },
      pool: { size: opts.pool, acquire_timeout_ms: 30_000, idle_timeout_ms: 0 },
      auth: { jwt: { algorithms: ['HS256'], secret } },
      tenant: { search_path: 'tenant_{tenant}, public' },
      log: { level: 'error' },
    }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', configFile], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PGTP_ADMIN_EPHEMERAL: '0' } });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    for (let i = 0; ; i++) {
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => null);
      if (r?.status === 200) break;
      if (i > 600 || child.exitCode !== null) throw new Error(`proxy with workers: ${opts.workers} did not become ready`);
      await new Promise((res) => setTimeout(res, 100));
    }
    const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const primary = child.pid!;
    const before = processTable();
    const tps = await opts.pgbench(port, 'app', token);
    const after = processTable();
    const txns = tps * opts.seconds;
    const used = (pid: number): number => ((after.get(pid)?.ticks ?? 0) - (before.get(pid)?.ticks ?? 0)) * TICK_US;
    // With workers: 1 the child process is the proxy itself; otherwise its children are the workers.
    const workerPids = opts.workers === 1 ? [primary] : [...after].filter(([, p]) => p.ppid === primary).map(([pid]) => pid).sort((a, b) => a - b);
    return {
      workers: opts.workers,
      tps,
      txns,
      primaryUs: opts.workers === 1 ? 0 : used(primary) / txns,
      workerUs: workerPids.map((pid) => used(pid) / txns),
      workerCores: workerPids.map((pid) => used(pid) / 1e6 / opts.seconds),
    };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

export function printWorkersTable(rows: WorkersRow[], cmd: string): void {
  console.log(`\n${cmd}: the proxy as a child process (the CLI), CPU of each process from /proc\n`);
  console.log('| workers | tps | vs workers: 1 | CPU µs/txn per worker | proxy CPU µs/txn in all | capacity per core (1e6 / µs per txn) | cores used per worker |');
  console.log('|---|---|---|---|---|---|---|');
  const mean = (w: number): number => {
    const t = rows.filter((r) => r.workers === w).map((r) => r.tps);
    return t.reduce((a, b) => a + b, 0) / t.length;
  };
  const one = mean(1);
  for (const r of rows) {
    const total = r.primaryUs + r.workerUs.reduce((a, b) => a + b, 0);
    console.log(
      `| ${r.workers} | ${Math.round(r.tps)} | ${(r.tps / one).toFixed(2)} | ${r.workerUs.map((u) => u.toFixed(0)).join(' + ')}${r.workers > 1 ? ` (+ primary ${r.primaryUs.toFixed(1)})` : ''} | ${total.toFixed(0)} | ${Math.round(1e6 / total)} txn/s | ${r.workerCores.map((c) => c.toFixed(2)).join(', ')} |`,
    );
  }
  const n = Math.max(...rows.map((r) => r.workers));
  if (n > 1) console.log(`\nmean tps over ${rows.length / 2} interleaved rounds: workers: 1 ${Math.round(one)}, workers: ${n} ${Math.round(mean(n))} (ratio ${(mean(n) / one).toFixed(2)})`);
  console.log(
    '\nA worker is one Node.js process, so it is bound by one core: a proxy with W workers on C ≥ W free cores can carry about\n' +
      'W × 1e6 / (µs per txn) transactions per second, until PostgreSQL or the network is the limit. On a machine whose cores\n' +
      'are also busy with PostgreSQL and pgbench (like 2 shared cores), more workers cannot add throughput; they must only not cost it.',
  );
}
