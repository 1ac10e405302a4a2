// doctor --replicas N: replicas × pool.size plus a reserve against max_connections − superuser_reserved_connections
// (the test server runs with max_connections 200), and the role's own CONNECTION LIMIT.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { budgetArgs, budgetFindings } from '../../src/admin/doctor-budget.js';
import { validateConfig } from '../../src/config/load.js';
import type { ProxyConfig } from '../../src/config/types.js';
import { adminClient, createFixtureDatabase, primaryServer } from '../support/pg.js';

describe('doctor: connection budget', () => {
  let cfg: ProxyConfig;
  let poolUser: string;
  beforeAll(async () => {
    const s = primaryServer();
    const fx = await createFixtureDatabase(s, 'doctor_budget');
    poolUser = fx.poolUser;
    cfg = validateConfig(
      {
        backend: { host: s.host, port: s.port, database: fx.database, user: fx.poolUser, password: fx.poolPassword, sslmode: 'disable' },
        pool: { size: 20 },
        auth: { jwt: { algorithms: ['HS256'], secret: 'doctor-budget-secret-that-is-32-bytes-long' } },
      },
      process.env,
      process.cwd(),
    );
  });
  afterAll(async () => {
    const a = await adminClient(primaryServer());
    await a.query(`ALTER ROLE ${poolUser} CONNECTION LIMIT -1`).finally(() => a.end());
  });

  it('fits: 3 replicas × 20 + 5 within 200 − 3', async () => {
    const f = await budgetFindings(cfg, { replicas: 3, reserve: 5 });
    expect(f).toEqual([expect.objectContaining({ level: 'ok', check: 'connection_budget' })]);
    expect(f[0].message).toMatch(/3 replica\(s\) × pool.size 20 = 60, \+ reserve 5 = 65 fits in \d+ connections/);
  });

  it('critical when replicas × pool.size + reserve exceeds the usable connections, with the pool.size that would fit', async () => {
    const r = await adminClient(primaryServer());
    const { max, su } = (await r.query("SELECT current_setting('max_connections')::int AS max, current_setting('superuser_reserved_connections')::int AS su")).rows[0];
    await r.end();
    const usable = max - su - 0;
    const f = await budgetFindings(cfg, { replicas: 10, reserve: 5 });
    expect(f[0].level).toBe('critical');
    expect(f[0].message).toContain(`10 replica(s) × pool.size 20 = 200, + reserve 5 = 205 exceeds max_connections ${max}`);
    expect(f[0].fix).toContain(`lower pool.size to ${Math.floor((usable - 5) / 10)}`);
  });

  it("critical when the role's CONNECTION LIMIT is below replicas × pool.size", async () => {
    const a = await adminClient(primaryServer());
    await a.query(`ALTER ROLE ${poolUser} CONNECTION LIMIT 30`).finally(() => a.end());
    const f = await budgetFindings(cfg, { replicas: 2, reserve: 0 });
    expect(f.map((x) => x.level)).toEqual(['ok', 'critical']);
    expect(f[1].message).toContain('2 × 20 = 40 backend connections exceed the role');
  });

  it('parses --replicas and --reserve and refuses nonsense', () => {
    expect(budgetArgs(['--config', 'x', '--replicas', '4', '--reserve', '0'])).toEqual({ opts: { replicas: 4, reserve: 0 }, rest: ['--config', 'x'] });
    expect(budgetArgs(['--replicas', '0'])).toEqual({ error: '--replicas needs a whole number of at least 1, got "0"' });
  });
});
