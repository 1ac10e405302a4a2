// `npm run demo` as a newcomer runs it: the self-test passes cleanly, and SIGTERM to npm's process or an early
// Ctrl-C leave no process, port or .tmp/demo-* directory behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TMP = path.join(REPO, '.tmp');

function demoDirs(): string[] {
  return existsSync(TMP) ? readdirSync(TMP).filter((n) => n.startsWith('demo-')) : [];
}

interface Demo {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** npm run demo in its own process group (as a terminal would start it), so the test can signal the group. */
function startDemo(args: string[] = []): Demo {
  const child = spawn('npm', ['run', '--silent', 'demo', ...(args.length ? ['--', ...args] : [])], {
    cwd: REPO,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Whatever happens, nothing of a demo outlives its test. */
function reap(d: Demo): void {
  if (d.child.pid && groupAlive(d.child.pid)) process.kill(-d.child.pid, 'SIGKILL');
}

describe('npm run demo', { timeout: 120_000 }, () => {
  it('--self-test passes, prints no error line, and removes its directory', async () => {
    const before = demoDirs();
    const d = startDemo(['--self-test']);
    try {
      expect(await d.exited, d.output()).toBe(0);
      expect(d.output()).toContain('demo self-test: passed');
      expect(d.output()).not.toMatch(/RESET_FAILED|"level":50/);
      expect(demoDirs().filter((n) => !before.includes(n))).toEqual([]);
    } finally {
      reap(d);
    }
  });

  it('SIGTERM to npm\'s process stops node and PostgreSQL, frees the ports and removes the directory', async () => {
    const d = startDemo();
    try {
      await until('the demo to be running', () => d.output().includes('Press Ctrl-C'), 90_000);
      const out = d.output();
      const proxyPort = Number(/proxy: +127\.0\.0\.1:(\d+)/.exec(out)![1]);
      const pgPort = Number(/postgres: +127\.0\.0\.1:(\d+)/.exec(out)![1]);
      const dir = /config: +(\.tmp\/demo-\d+)\//.exec(out)![1];
      expect(existsSync(path.join(REPO, dir))).toBe(true);
      process.kill(d.child.pid!, 'SIGTERM'); // npm's process only, as a process manager would
      await d.exited;
      await until('every process of the demo to exit', () => !groupAlive(d.child.pid!), 30_000);
      expect(await portOpen(proxyPort)).toBe(false);
      expect(await portOpen(pgPort)).toBe(false);
      expect(existsSync(path.join(REPO, dir))).toBe(false);
    } finally {
      reap(d);
    }
  });

  it('Ctrl-C in the first moments (during initdb) leaves no directory and no process', async () => {
    const before = demoDirs();
    const d = startDemo();
    try {
      await until('the demo to start PostgreSQL', () => d.output().includes('starting a throwaway PostgreSQL'), 60_000);
      await until('the demo directory', () => demoDirs().some((n) => !before.includes(n)), 30_000);
      process.kill(-d.child.pid!, 'SIGINT'); // a terminal's Ctrl-C reaches the whole foreground group
      await d.exited;
      await until('every process of the demo to exit', () => !groupAlive(d.child.pid!), 30_000);
      expect(demoDirs().filter((n) => !before.includes(n))).toEqual([]);
    } finally {
      reap(d);
    }
  });
});
