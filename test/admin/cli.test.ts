// The CLI as a user runs it (bin/pg-tenant-proxy.js in a child process): --help for every subcommand,
// hash-password's confirmation on a terminal, token minting, and the container health check.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeJwt, jwtVerify } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVerifier } from '../../src/auth/scram.js';
import { validateConfig } from '../../src/config/load.js';
import { startProxy } from '../../src/server.js';
import { freePort } from '../support/pg.js';

const run = promisify(execFile);
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/pg-tenant-proxy.js');
const SECRET = 'cli-test-secret-that-is-at-least-32-bytes';

async function cli(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = spawnSync(process.execPath, [BIN, ...args], { input: input ?? '', encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
let configPath: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pgtp-cli-'));
  configPath = path.join(dir, 'config.yaml');
  await writeFile(
    configPath,
    `backend: { database: app, user: app_pool, password: "" }
auth: { jwt: { algorithms: [HS256], secret: ${SECRET}, tenant_claim: app_metadata.tenant_id, issuer: https://issuer.test/ } }
`,
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('pg-tenant-proxy CLI', { timeout: 180_000 }, () => {
  it.each(['', 'doctor', 'hash-password', 'token', 'healthcheck'])('%s --help prints usage and exits 0', async (sub) => {
    const r = await cli([...(sub ? [sub] : []), '--help']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: pg-tenant-proxy ${sub}`));
  });

  it('hash-password reads one line from a pipe, with no confirmation', async () => {
    const r = await cli(['hash-password'], 'correct horse\n');
    expect(r.code).toBe(0);
    expect(() => parseVerifier(r.stdout.trim())).not.toThrow();
  });

  // A pseudo-terminal through python3's pty module: the only way to give the child a TTY stdin.
  const hasPython = spawnSync('python3', ['-c', 'import pty'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!hasPython)('hash-password on a terminal asks twice and refuses a mismatch', async () => {
    const typed = (first: string, second: string): { code: number; out: string } => {
      const py = `
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2], 'hash-password'])
out = b''
def until(marker):
    global out
    deadline = time.time() + 30
    while marker not in out and time.time() < deadline:
        out += os.read(fd, 1000)
until(b'password: ')
os.write(fd, sys.argv[3].encode() + b'\\r')
until(b'again: ')
os.write(fd, sys.argv[4].encode() + b'\\r')
try:
    while True:
        d = os.read(fd, 1000)
        if not d: break
        out += d
except OSError:
    pass
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode())
sys.exit(os.waitstatus_to_exitcode(st))
`;
      const r = spawnSync('python3', ['-c', py, process.execPath, BIN, first, second], { encoding: 'utf8', timeout: 60_000 });
      return { code: r.status ?? -1, out: r.stdout };
    };
    const ok = typed('s3cret-pw', 's3cret-pw');
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/SCRAM-SHA-256\$4096:/);
    expect(ok.out).not.toContain('s3cret-pw'); // no echo
    const bad = typed('s3cret-pw', 's3cret-pq');
    expect(bad.code).toBe(2);
    expect(bad.out).toContain('do not match');
    expect(bad.out).not.toMatch(/SCRAM-SHA-256\$/);
  });

  it('token signs with the config secret, at the configured claim path, and can mint an expired token', async () => {
    const r = await cli(['token', '--config', configPath, '--tenant', 'initech', '--expires-in', '2h']);
    expect(r.stderr).toBe('');
    const { payload } = await jwtVerify(r.stdout.trim(), new TextEncoder().encode(SECRET), { issuer: 'https://issuer.test/' });
    expect(payload.app_metadata).toEqual({ tenant_id: 'initech' });
    expect(payload.exp! - Math.floor(Date.now() / 1000)).toBeGreaterThan(7000);

    const expired = await cli(['token', '--config', configPath, '--tenant', 'initech', '--expires-in', '-5m']);
    expect(decodeJwt(expired.stdout.trim()).exp!).toBeLessThan(Date.now() / 1000);

    const bad = await cli(['token', '--config', configPath, '--tenant', 'Not A Tenant']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('tenant.id_pattern');
  });

  it('healthcheck probes the admin port named in the config, and fails when nothing answers there', async () => {
    const adminPort = await freePort();
    const cfgText = `listen: { port: 0 }
admin: { port: ${adminPort} }
backend: { database: app, user: app_pool, password: "" }
auth: { jwt: { algorithms: [HS256], secret: ${SECRET} } }
`;
    const hcConfig = path.join(dir, 'health.yaml');
    await writeFile(hcConfig, cfgText);
    // Nothing listens on the admin port yet.
    await expect(run(process.execPath, [BIN, 'healthcheck', '--config', hcConfig, '--timeout-ms', '2000'])).rejects.toMatchObject({ code: 1 });
    const config = validateConfig({ listen: { port: 0 }, admin: { port: adminPort }, backend: { database: 'app', user: 'app_pool', password: '' }, auth: { jwt: { algorithms: ['HS256'], secret: SECRET } } }, {}, dir);
    const proxy = await startProxy(config, pino({ level: 'silent' }));
    try {
      const ok = await run(process.execPath, [BIN, 'healthcheck', '--config', hcConfig]);
      expect(ok.stderr).toBe('');
    } finally {
      await proxy.close();
    }
  });
});
