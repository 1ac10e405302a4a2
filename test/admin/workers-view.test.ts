// SHOW WORKERS reads the list the cluster primary pushes to each worker (src/cluster/view.ts); without one it
// shows this process alone.
import { describe, expect, it } from 'vitest';
import { setWorkerView, workerView } from '../../src/cluster/view.js';

describe('worker view', () => {
  it('is this process alone until a primary pushes the cluster list, then that list with self marked', () => {
    const alone = workerView(8, 0);
    expect(alone.rows).toHaveLength(1);
    expect(alone.rows[0]).toMatchObject({ worker: 0, pid: process.pid, state: 'running', pool_share: 8 });
    setWorkerView(
      [
        { worker: 0, pid: 11, state: 'running', restarts: 0, pool_share: 3, started_at: '2026-01-01T00:00:00.000Z' },
        { worker: 1, pid: null, state: 'restarting', restarts: 2, pool_share: 2, started_at: null },
      ],
      1,
    );
    const v = workerView(8, 0);
    expect(v.self).toBe(1);
    expect(v.rows.map((r) => [r.worker, r.state, r.restarts, r.pool_share])).toEqual([
      [0, 'running', 0, 3],
      [1, 'restarting', 2, 2],
    ]);
  });
});
