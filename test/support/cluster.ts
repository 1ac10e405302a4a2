// Runs the proxy as the CLI does (`node --import tsx src/main.ts --config FILE`), as a child process, for the
// cluster tests: workers > 1 needs a real primary process. Collects its JSON log lines; always cleaned up.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import pg from 'pg';
import { stringify } from 'yaml';
import { createFixtureDatabase, freePort, type PgServer, TEST_PROOF_KEY } from './pg.js';
import { JWT_SECRET } from './proxy.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface ClusterProxy {
  port: number;
  adminPort: number;
  database: string;
  poolUser: string;
  child: ChildProcess;
  configFile: string;
  /** Parsed JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
  /** OS pid of worker `index` (the newest one, after a restart). */
  workerPid(index: number): number | undefined;
  token(tenant: string): Promise<string>;
  client(tenant: string): Promise<pg.Client>;
  http(pathname: string): Promise<{ status: number; body: string }>;
  /** Rewrites the config file with `patch` applied to the tree (for SIGHUP tests). */
  rewrite(patch: (tree: Record<string, any>) => void): void;
  /** SIGTERM (or `signal`); resolves with the exit code (SIGKILL after 20 s). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startClusterProxy(server: PgServer, name: string, opts: { workers: number; pool?: Record<string, unknown>; users?: unknown[]; shutdown?: Record<string, unknown> }): Promise<ClusterProxy> {
  const fx = await createFixtureDatabase(server, name);
  const port = await freePort();
  const adminPort = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'pgtp-cluster-'));
  const configFile = path.join(dir, 'proxy.yaml');
  const tree: Record<string, any> = {
    workers: opts.workers,
    listen: { host: '127.0.0.1', port, plaintext_tokens: 'loopback' },
    admin: { host: '127.0.0.1', port: adminPort },
    backend: { host: server.host, port: server.port, database: fx.database, user: fx.poolUser, password: fx.poolPassword },
    pool: { size: 4, idle_timeout_ms: 0, ...opts.pool },
    auth: { jwt: { algorithms: ['HS256'], secret: JWT_SECRET } },
    tenant: { search_path: 'tenant_{tenant}, public', proof_key: TEST_PROOF_KEY },
    log: { level: 'info' },
    ...(opts.users ? { users: opts.users } : {}),
    ...(opts.shutdown ? { shutdown: opts.shutdown } : {}),
  };
  writeFileSync(configFile, stringify(tree));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', configFile], {
    cwd: REPO_ROOT,
    env: { ...process.env, PGTP_ADMIN_EPHEMERAL: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      rmSync(dir, { recursive: true, force: true });
      resolve(code);
    }),
  );
  const logs: Array<Record<string, unknown>> = [];
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      try {
        logs.push(JSON.parse(l));
      } catch {
        logs.push({ raw: l });
      }
    }
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));

  const http = async (pathname: string): Promise<{ status: number; body: string }> => {
    const r = await fetch(`http://127.0.0.1:${adminPort}${pathname}`);
    return { status: r.status, body: await r.text() };
  };
  const token = (tenant: string): Promise<string> =>
    new SignJWT({ tenant_id: tenant })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
      .sign(new TextEncoder().encode(JWT_SECRET));

  // Ready when every worker listens and reaches the database.
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`proxy exited with ${child.exitCode}: ${stderr}`);
    const r = await http('/readyz').catch(() => null);
    if (r?.status === 200) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`proxy not ready after 90 s: ${r?.body ?? 'no answer'} ${stderr}`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }

  return {
    port,
    adminPort,
    database: fx.database,
    poolUser: fx.poolUser,
    child,
    configFile,
    logs,
    workerPid(index) {
      const line = logs.filter((l) => l.event === 'LISTENING' && l.worker === index).pop();
      return line?.pid as number | undefined;
    },
    token,
    async client(tenant) {
      // A connect timeout, as any real client has: node:cluster hands each accepted connection to a worker,
      // and one handed to a worker at the moment it is killed may never be served (nor closed).
      const c = new pg.Client({ host: '127.0.0.1', port, database: fx.database, user: 'app', password: await token(tenant), connectionTimeoutMillis: 10_000 });
      c.on('error', () => {});
      await c.connect();
      return c;
    },
    http,
    rewrite(patch) {
      patch(tree);
      writeFileSync(configFile, stringify(tree));
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** The value of a metric line (first sample whose name and labels start with `prefix`) in Prometheus text. */
export function metric(body: string, prefix: string): number {
  const line = body.split('\n').find((l) => l.startsWith(prefix + ' ') || l.startsWith(prefix + '{') || (prefix.includes('{') && l.startsWith(prefix)));
  if (!line) return 0;
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}
