// The exact budget split, the `workers` key's validation, and cancel keys that name their worker.
import { describe, expect, it } from 'vitest';
import { share, workerConfig } from '../../src/cluster/budget.js';
import { ownerOf } from '../../src/cluster/cancel-router.js';
import { parseConfig } from '../../src/config/load.js';
import { validateWorkers } from '../../src/config/workers.js';
import { CancelRegistry } from '../../src/session/cancel-registry.js';

const BASE = `
backend: { database: app, user: pool, password: x }
auth: { jwt: { algorithms: [HS256], secret: "0123456789abcdef0123456789abcdef" } }
`;

describe('budget split', () => {
  it('shares sum exactly to the total and differ by at most one', () => {
    for (let total = 1; total <= 40; total++) {
      for (let n = 1; n <= total; n++) {
        const s = Array.from({ length: n }, (_, i) => share(total, n, i));
        expect(s.reduce((a, b) => a + b, 0)).toBe(total);
        expect(Math.max(...s) - Math.min(...s)).toBeLessThanOrEqual(1);
        expect(Math.min(...s)).toBeGreaterThanOrEqual(1);
      }
    }
    expect([0, 1, 2].map((i) => share(10, 3, i))).toEqual([4, 3, 3]);
  });

  it('a worker config carries its shares of pool.size, users[].pool_size and max_client_conn, and no admin port', () => {
    const c = parseConfig(`${BASE}workers: 3\npool: { size: 10 }\nlisten: { max_client_conn: 100 }\n`);
    const w = [0, 1, 2].map((i) => workerConfig(c, i, 3));
    expect(w.map((x) => x.pool.size)).toEqual([4, 3, 3]);
    expect(w.map((x) => x.listen.max_client_conn)).toEqual([34, 33, 33]);
    expect(w.every((x) => x.admin.port === 0)).toBe(true);
  });

  it('pool.overflow and min_idle split like size (min_idle clamped to the share), tenant_max_backends at least 1 each', () => {
    const c = parseConfig(`${BASE}workers: 3\npool: { size: 4, overflow: 5, min_idle: 4, tenant_max_backends: 2 }\n`);
    const w = [0, 1, 2].map((i) => workerConfig(c, i, 3));
    expect(w.map((x) => x.pool.size)).toEqual([2, 1, 1]);
    expect(w.map((x) => x.pool.overflow)).toEqual([2, 2, 1]);
    // The caps sum to size + overflow: the workers together never open more than the configured hard cap.
    expect(w.reduce((a, x) => a + x.pool.size + x.pool.overflow, 0)).toBe(9);
    expect(w.map((x) => x.pool.min_idle)).toEqual([2, 1, 1]);
    expect(w.map((x) => x.pool.tenant_max_backends)).toEqual([1, 1, 1]);
    const uncapped = parseConfig(`${BASE}workers: 2\npool: { size: 4 }\n`);
    expect(workerConfig(uncapped, 1, 2).pool.tenant_max_backends).toBe(0);
    expect(workerConfig(parseConfig(`${BASE}workers: 2\npool: { size: 8, tenant_max_backends: 7 }\n`), 0, 2).pool.tenant_max_backends).toBe(4);
  });
});

describe('workers key', () => {
  it('defaults to 1, takes N or auto, and refuses what cannot be split', () => {
    expect(parseConfig(BASE).workers).toBe(1);
    expect(parseConfig(`${BASE}workers: 2\n`).workers).toBe(2);
    expect(() => parseConfig(`${BASE}workers: 0\n`)).toThrow(/^config: workers: must be "auto" or an integer from 1 to 256, got 0$/);
    expect(() => parseConfig(`${BASE}workers: two\n`)).toThrow(/config: workers: must be "auto"/);
    expect(() => parseConfig(`${BASE}workers: 5\npool: { size: 4 }\n`)).toThrow(/config: workers: 5 workers cannot split pool.size 4/);
    expect(validateWorkers('auto', 20, [], 8)).toBe(8);
    expect(validateWorkers('auto', 3, [], 8)).toBe(3); // never more workers than backends
    expect(validateWorkers('auto', 20, [{ name: 'ops', pool_size: 2 } as never], 8)).toBe(2);
    expect(() => validateWorkers(4, 20, [{ name: 'ops', pool_size: 2 } as never])).toThrow(/users "ops" pool_size 2/);
  });
});

describe('sharded cancel keys', () => {
  it("worker i of n issues only pids with pid % n === i; the secret stays 4 random bytes", () => {
    for (const [index, count] of [[0, 2], [1, 2], [2, 3], [6, 7]]) {
      const r = new CancelRegistry({ index, count });
      const secrets = new Set<string>();
      for (let k = 0; k < 200; k++) {
        const key = r.register({ cancel: () => {} });
        expect(ownerOf(key.pid, count)).toBe(index);
        expect(key.pid).toBeGreaterThan(0);
        expect(key.pid).toBeLessThanOrEqual(0x7fffffff);
        expect(key.secret.length).toBe(4);
        secrets.add(key.secret.toString('hex'));
      }
      expect(secrets.size).toBeGreaterThan(190);
    }
  });

  it('a routed key with the wrong secret cancels nothing', () => {
    const r = new CancelRegistry({ index: 1, count: 2 });
    let cancelled = 0;
    const key = r.register({ cancel: () => cancelled++ });
    const wrong = Buffer.from(key.secret);
    wrong[3] ^= 1;
    expect(r.cancel(key.pid, wrong)).toBe(false);
    expect(cancelled).toBe(0);
    expect(r.cancel(key.pid, key.secret)).toBe(true);
    expect(cancelled).toBe(1);
  });
});
