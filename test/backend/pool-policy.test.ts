// Unit tests of the pool's policy decisions and its tenant-fair waiter queue (no server needed).
import { describe, expect, it } from 'vitest';
import { Backoff, idleToClose, recycleAt, Saturation } from '../../src/backend/pool-policy.js';

const SATURATION_RECOVERY_MS = 5000;
import { Waiters } from '../../src/backend/waiters.js';

const w = (tenant: string | null, i: number) => ({ tenant, enqueuedAt: i, deadline: 1000 + i, i });

describe('tenant-fair waiters', () => {
  it('serves tenants round-robin, FIFO within a tenant', () => {
    const q = new Waiters<ReturnType<typeof w>>('tenant');
    for (let i = 0; i < 5; i++) q.push(w('flood', i));
    q.push(w('quiet', 5));
    q.push(w('quiet', 6));
    const order = [];
    for (let x = q.next(); x; x = q.next()) order.push(`${x.tenant}${x.i}`);
    expect(order).toEqual(['flood0', 'quiet5', 'flood1', 'quiet6', 'flood2', 'flood3', 'flood4']);
  });

  it('fifo mode keeps arrival order; a capped tenant is skipped in tenant mode and keeps its place', () => {
    const f = new Waiters<ReturnType<typeof w>>('fifo');
    [w('a', 0), w('a', 1), w('b', 2)].forEach((x) => f.push(x));
    expect([f.next()!.i, f.next()!.i, f.next()!.i]).toEqual([0, 1, 2]);
    const t = new Waiters<ReturnType<typeof w>>('tenant');
    [w('a', 0), w('a', 1), w('b', 2)].forEach((x) => t.push(x));
    expect(t.next((tenant) => tenant !== 'a')!.i).toBe(2);
    expect(t.next((tenant) => tenant !== 'a')).toBeNull();
    expect(t.eligibleCount(() => true)).toBe(2);
    expect(t.next()!.i).toBe(0);
  });

  it('expires by deadline across tenants and removes a withdrawn waiter', () => {
    const q = new Waiters<ReturnType<typeof w>>('tenant');
    const items = [w('a', 0), w('b', 1), w('a', 5), w('b', 9)];
    items.forEach((x) => q.push(x));
    expect(q.earliestDeadline()).toBe(1000);
    expect(q.remove(items[2])).toBe(true);
    expect(q.expire(1001).map((x) => x.i)).toEqual([0, 1]);
    expect(q.length).toBe(1);
    expect(q.earliestDeadline()).toBe(1009);
  });
});

describe('pool policy', () => {
  it('recycles within [90 %, 100 %] of max_lifetime_ms, never for 0', () => {
    expect(recycleAt(0, 0)).toBe(Infinity);
    expect(recycleAt(1000, 300_000, () => 0)).toBe(301_000);
    expect(recycleAt(1000, 300_000, () => 1)).toBe(271_000);
  });

  it('closes overflow backends after overflow_idle_ms and steady ones only above min_idle', () => {
    const now = 100_000;
    const idle = [{ lastUsedAt: now - 50_000 }, { lastUsedAt: now - 40_000 }, { lastUsedAt: now - 100 }];
    const lim = { size: 2, overflow_idle_ms: 30_000, idle_timeout_ms: 0, min_idle: 0 };
    // 4 open, size 2: two may go, but only those idle 30 s or more.
    expect(idleToClose(idle, 4, lim, now)).toEqual([idle[0], idle[1]]);
    expect(idleToClose(idle, 3, lim, now)).toEqual([idle[0]]);
    expect(idleToClose(idle, 2, lim, now)).toEqual([]);
    // steady: idle_timeout 10 s, min_idle 2 keeps two idle.
    expect(idleToClose(idle, 3, { ...lim, size: 3, idle_timeout_ms: 10_000, min_idle: 2 }, now)).toEqual([idle[0]]);
  });

  it('flags saturation once, recovers once with hysteresis', () => {
    const seen: string[] = [];
    let now = 1;
    const s = new Saturation((k, on) => seen.push(`${k}:${on}`), () => SATURATION_RECOVERY_MS, () => now);
    for (const u of [0.5, 0.8, 0.9, 0.75, 0.81, 0.71]) s.observe('cap', u, 0.8);
    // Below the band, but only for an instant (a release before the next grant): still saturated.
    s.observe('cap', 0.69, 0.8);
    now += SATURATION_RECOVERY_MS - 1;
    s.observe('cap', 0.5, 0.8);
    s.observe('cap', 0.85, 0.8); // back up: the below-band clock starts again
    now += 10;
    s.observe('cap', 0.5, 0.8);
    expect(seen).toEqual(['cap:true']);
    now += SATURATION_RECOVERY_MS;
    s.observe('cap', 0.5, 0.8);
    s.observe('cap', 0.85, 0.8);
    s.observe('overflow', NaN, 0.8);
    expect(seen).toEqual(['cap:true', 'cap:false', 'cap:true']);
    s.stop();
  });

  it('backs off exponentially with jitter up to 5 s, and resets on success', () => {
    const b = new Backoff(100, 5000, () => 1);
    expect([b.failed(0), b.failed(0), b.failed(0)]).toEqual([100, 200, 400]);
    for (let i = 0; i < 10; i++) b.failed(0);
    expect(b.failed(0)).toBe(5000);
    expect(b.down).toBe(true);
    b.succeeded();
    expect(b.waitMs(0)).toBe(0);
    const low = new Backoff(100, 5000, () => 0);
    expect(low.failed(0)).toBe(50);
  });
});
