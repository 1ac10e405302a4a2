// Live reload of the pool keys (issue 12 item 5) against real PostgreSQL: growing under load takes effect at
// once, shrinking closes idle backends first and never aborts a transaction (zero client errors, checked in
// pg_stat_activity), a changed timeout applies to the next transaction, and a bad file keeps the old config
// and logs RELOAD_FAILED naming the key.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readForReload } from '../../src/reload.js';
import { primaryServer } from '../support/pg.js';
import { backendCount, captureLogger, startTestProxy, type TestProxy } from '../support/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let t: TestProxy | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});

function withPool(t: TestProxy, pool: Record<string, unknown>) {
  return { ...t.config, pool: { ...t.config.pool, ...pool } };
}

describe('reload of pool keys', () => {
  it('grows at once and shrinks idle-first under load, with zero client errors and an open transaction intact', async () => {
    t = await startTestProxy(primaryServer(), 'reload_pool', { pool: { size: 2, acquire_timeout_ms: 30_000 } });
    const admin = await t.admin();
    const clients = await Promise.all(Array.from({ length: 12 }, () => t!.pgClient('acme')));
    const holder = await t.pgClient('globex');
    let stop = false;
    let errors = 0;
    let maxSeen = 0;
    const load = clients.map(async (c) => {
      while (!stop) {
        await c.query('BEGIN').then(() => c.query('SELECT pg_sleep(0.05)')).then(() => c.query('COMMIT')).catch(() => errors++);
      }
    });
    await sleep(300);
    expect(await backendCount(admin, t.poolUser)).toBeLessThanOrEqual(2);
    await t.proxy.reload!(withPool(t, { size: 6 }));
    const grewBy = Date.now() + 3000;
    while (Date.now() < grewBy && (maxSeen = Math.max(maxSeen, await backendCount(admin, t.poolUser))) < 6) await sleep(20);
    expect(maxSeen).toBe(6);
    // A transaction open across the shrink is never aborted.
    await holder.query('BEGIN');
    await holder.query('CREATE TEMP TABLE kept (v int) ON COMMIT DROP');
    await t.proxy.reload!(withPool(t, { size: 2 }));
    await sleep(300);
    await holder.query('INSERT INTO kept VALUES (1)');
    await holder.query('COMMIT');
    const shrunkBy = Date.now() + 5000;
    let n = 99;
    while (Date.now() < shrunkBy && (n = await backendCount(admin, t.poolUser)) > 2) await sleep(50);
    expect(n).toBeLessThanOrEqual(2);
    // And it stays within the new cap under the continuing load.
    for (let i = 0; i < 20; i++) {
      expect(await backendCount(admin, t.poolUser)).toBeLessThanOrEqual(2);
      await sleep(20);
    }
    stop = true;
    await Promise.all(load);
    expect(errors).toBe(0);
  }, 60_000);

  it('applies a changed query_timeout_ms to the next transaction', async () => {
    t = await startTestProxy(primaryServer(), 'reload_timeout', { pool: { size: 1 } });
    const c = await t.pgClient('acme');
    await c.query('SELECT pg_sleep(0.4)'); // no timeout yet
    await t.proxy.reload!(withPool(t, { query_timeout_ms: 150 }));
    const err = (await c.query('SELECT pg_sleep(5)').catch((e: unknown) => e)) as { code?: string };
    expect(err.code).toBe('57014');
  });

  it('keeps the old config on a bad file and logs RELOAD_FAILED naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgtp-reload-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, `backend: { database: d, user: u, password: p }\nauth: { jwt: { algorithms: [HS256], secret: "${'s'.repeat(40)}" } }\npool: { size: 3, min_idle: 5 }\n`);
    const lines: Array<Record<string, unknown>> = [];
    expect(readForReload(file, captureLogger(lines))).toBeNull();
    const failed = lines.find((l) => l.event === 'RELOAD_FAILED');
    expect(failed?.key).toBe('pool.min_idle');
    expect(String(failed?.msg)).toContain('pool.min_idle');
  });
});
