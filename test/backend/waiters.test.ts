// Waiters that outlive their clients: a client that disconnects while waiting for a backend leaves the
// pool's queue (and its user's queue) at once, stops counting toward max_waiting, and is never served.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserSlots } from '../../src/backend/user-slots.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a waiting client that disconnects', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'pool_waiters', { pool: { size: 1, max_waiting: 2, acquire_timeout_ms: 20_000 } });
  });
  afterAll(async () => t?.close());

  it('leaves the queue, frees its max_waiting place, and is never granted a backend', async () => {
    const holder = await t.pgClient('acme');
    await holder.query('BEGIN');
    const quitters = await Promise.all([1, 2].map(() => t.pgClient('globex')));
    for (const q of quitters) void q.query('SELECT 1').catch(() => {});
    await sleep(150);
    expect(t.proxy.pool.stats().waiting).toBe(2);
    for (const q of quitters) (q as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    await sleep(150);
    expect(t.proxy.pool.stats().waiting).toBe(0);
    // Two honest clients can wait again (max_waiting 2), and are served first when the holder commits.
    const acquiredBefore = (await t.proxy.metrics.acquireWait.get()).values.find((v) => v.metricName === 'pgtp_pool_acquire_wait_seconds_count')?.value ?? 0;
    const honest = await Promise.all([1, 2].map(() => t.pgClient('globex')));
    const runs = honest.map((h) => h.query("SELECT current_setting('app.current_tenant') AS t"));
    await sleep(150);
    expect(t.proxy.pool.stats().waiting).toBe(2);
    await holder.query('COMMIT');
    for (const r of await Promise.all(runs)) expect(r.rows[0].t).toBe('globex');
    // Exactly the two honest waiters (plus the holder's COMMIT, which held its backend) were granted one.
    const acquiredAfter = (await t.proxy.metrics.acquireWait.get()).values.find((v) => v.metricName === 'pgtp_pool_acquire_wait_seconds_count')?.value ?? 0;
    expect(acquiredAfter - acquiredBefore).toBe(2);
  });
});

describe('UserSlots', () => {
  it('a withdrawn waiter is never granted and the slot goes to the next one', () => {
    const slots = new UserSlots('ops', 1, 10_000);
    const log: string[] = [];
    const waiter = (n: string) => ({ granted: () => log.push(`${n} granted`), failed: () => log.push(`${n} failed`) });
    const a = waiter('a');
    const b = waiter('b');
    const c = waiter('c');
    slots.request(a);
    slots.request(b);
    slots.request(c);
    expect(slots.waiting).toBe(2);
    expect(slots.cancelRequest(b)).toBe(true);
    expect(slots.waiting).toBe(1);
    slots.release();
    slots.release();
    expect(log).toEqual(['a granted', 'c granted']);
  });
});
