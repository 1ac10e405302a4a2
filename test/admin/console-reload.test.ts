// The console's RELOAD is SIGHUP's reload: it re-reads the config file (tenant.deny applies at once), and a
// file that no longer validates is refused with F0000 naming the key, the previous settings kept.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeVerifier } from '../../src/auth/scram.js';
import { loadConfigFile } from '../../src/config/load.js';
import { startProxy, type RunningProxy } from '../../src/server.js';
import { createFixtureDatabase, primaryServer } from '../support/pg.js';
import { JWT_SECRET } from '../support/proxy.js';

describe('console RELOAD', () => {
  let dir: string;
  let proxy: RunningProxy;
  let database: string;
  const file = () => join(dir, 'proxy.yaml');
  const yaml = (deny: string, extra = '', pool = '') => `
listen: { port: 0, plaintext_tokens: loopback }
admin: { port: 0 }
backend: { host: ${primaryServer().host}, port: ${primaryServer().port}, database: ${database}, user: ${database}_pool, password: { env: PGTP_TEST_POOL_PASSWORD } }
pool: { size: 2, idle_timeout_ms: 0 ${pool} }
auth: { jwt: { algorithms: [HS256], secret: "${JWT_SECRET}" } }
tenant: { deny: [${deny}] ${extra} }
log: { level: silent }
users:
  - { name: sre, scram: "${scram}", tenant: none, admin: true }
`;
  let scram = '';
  beforeAll(async () => {
    scram = await makeVerifier('reload-pw');
    const fx = await createFixtureDatabase(primaryServer(), 'admin_console_reload');
    database = fx.database;
    process.env.PGTP_TEST_POOL_PASSWORD = fx.poolPassword;
    dir = mkdtempSync(join(tmpdir(), 'pgtp-reload-'));
    writeFileSync(file(), yaml(''));
    proxy = await startProxy(loadConfigFile(file()), pino({ level: 'silent' }), { loadConfig: () => loadConfigFile(file()) });
  });
  afterAll(async () => {
    await proxy?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const consoleClient = async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, database: 'pgtenantproxy', user: 'sre', password: 'reload-pw' });
    await c.connect();
    return c;
  };
  const tenantLogin = async (tenant: string) => {
    const token = await new SignJWT({ tenant_id: tenant }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(JWT_SECRET));
    const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, database, user: 'app', password: token });
    c.on('error', () => {});
    return c.connect().then(
      async () => {
        await c.end();
        return 'ok';
      },
      (e: { code?: string }) => e.code,
    );
  };

  it('applies tenant.deny from the file, and refuses a bad file keeping the old settings', async () => {
    const admin = await consoleClient();
    expect(await tenantLogin('acme')).toBe('ok');
    writeFileSync(file(), yaml('acme'));
    expect((await admin.query('RELOAD')).command).toBe('RELOAD');
    expect(await tenantLogin('acme')).toBe('28000');
    expect((await admin.query('SHOW TENANTS')).rows.find((r) => r.tenant === 'acme')?.suspended).toBe('config');
    expect((await admin.query('SHOW CONFIG')).rows.find((r) => r.key === 'tenant.deny')?.value).toBe('acme');

    writeFileSync(file(), yaml('', ', guard: maybe'));
    const e = (await admin.query('RELOAD').catch((err: unknown) => err)) as { code?: string; message?: string };
    expect(e.code).toBe('F0000');
    expect(e.message).toMatch(/reload failed, previous settings kept: config: tenant\.guard/);
    expect(await tenantLogin('acme')).toBe('28000');
    await admin.end();
  });

  it('applies pool keys live, as SIGHUP does (reload.ts), and SHOW CONFIG marks them changeable', async () => {
    const admin = await consoleClient();
    expect(proxy.pool.stats().cap).toBe(2);
    writeFileSync(file(), yaml('', '', ', overflow: 3, query_timeout_ms: 1234'));
    expect((await admin.query('RELOAD')).command).toBe('RELOAD');
    expect(proxy.pool.stats().cap).toBe(5);
    expect(proxy.pool.cfg.query_timeout_ms).toBe(1234);
    const rows = (await admin.query('SHOW CONFIG')).rows as Array<{ key: string; value: string; changeable: string }>;
    expect(rows.find((r) => r.key === 'pool.overflow')).toMatchObject({ value: '3', changeable: 'yes' });
    expect(rows.find((r) => r.key === 'pool.mode')).toMatchObject({ changeable: 'no' });
    await admin.end();
  });
});
