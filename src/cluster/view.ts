// What this process knows about the cluster's workers, for the admin console's SHOW WORKERS: the primary
// pushes the list to every worker whenever a worker starts, becomes ready or exits. A single-process proxy
// (workers: 1) has no primary and shows itself as the only worker.

export interface WorkerRow {
  worker: number;
  /** OS process id, or null while the worker is being restarted. */
  pid: number | null;
  state: 'running' | 'starting' | 'restarting';
  restarts: number;
  /** The worker's share of pool.size. */
  pool_share: number;
  /** When the current process of this worker started (ISO 8601), or null while restarting. */
  started_at: string | null;
}

let current: { rows: WorkerRow[]; self: number } | null = null;

/** Called in a worker when the primary pushes the list. */
export function setWorkerView(rows: WorkerRow[], self: number): void {
  current = { rows, self };
}

/** The cluster's workers as last pushed, or this process alone when it is not a cluster worker. */
export function workerView(poolSize: number, startedAtMs: number): { rows: WorkerRow[]; self: number } {
  if (current) return current;
  return { rows: [{ worker: 0, pid: process.pid, state: 'running', restarts: 0, pool_share: poolSize, started_at: new Date(startedAtMs).toISOString() }], self: 0 };
}
