// The lazy timer fires once, no earlier than its latest deadline, never after a clear, and sooner when a
// shorter limit is set.
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { LazyTimer } from '../../src/session/lazy-timer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('LazyTimer', () => {
  it('a deadline moved on keeps it from firing until the latest one has passed', async () => {
    const fired: number[] = [];
    const t = new LazyTimer(() => fired.push(performance.now()), true);
    const start = performance.now();
    t.set(40);
    await sleep(25);
    t.set(40); // due at ~65 now
    await sleep(25);
    expect(fired).toHaveLength(0);
    await sleep(60);
    expect(fired).toHaveLength(1);
    expect(fired[0] - start).toBeGreaterThanOrEqual(64);
    t.stop();
  });

  it('a cleared timer never fires; a stopped one neither', async () => {
    let n = 0;
    const t = new LazyTimer(() => n++, true);
    t.set(20);
    t.clear();
    expect(t.isSet).toBe(false);
    await sleep(50);
    const u = new LazyTimer(() => n++, true);
    u.set(20);
    u.stop();
    await sleep(50);
    expect(n).toBe(0);
  });

  it('a shorter limit set while armed for a later one fires on time', async () => {
    let at = 0;
    const t = new LazyTimer(() => (at = performance.now()), true);
    const start = performance.now();
    t.set(5_000);
    t.set(20);
    await sleep(80);
    expect(at).toBeGreaterThan(0);
    expect(at - start).toBeLessThan(1_000);
  });
});
