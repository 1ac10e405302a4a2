// Validates the top-level `workers` key: how many worker processes split the pool budget (see src/cluster/).
import { availableParallelism } from 'node:os';
import { ConfigError, type StaticUser } from './types.js';
import { show } from './validate.js';

/** More workers than this buys nothing but IPC and per-process memory. */
export const MAX_WORKERS = 256;

/**
 * `workers: N | auto` (default 1). Every worker must get at least one backend of pool.size and of each
 * users[].pool_size (the budget is split exactly, never rounded up), so N may not exceed them; `auto` is one
 * worker per CPU, lowered to fit those caps.
 */
export function validateWorkers(raw: unknown, poolSize: number, users: StaticUser[], cpus: number = availableParallelism()): number {
  const smallestUserCap = Math.min(...users.map((u) => u.pool_size));
  if (raw === undefined || raw === null) return 1;
  if (raw === 'auto') return Math.max(1, Math.min(cpus, MAX_WORKERS, poolSize, smallestUserCap));
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1 || raw > MAX_WORKERS) {
    throw new ConfigError('workers', `must be "auto" or an integer from 1 to ${MAX_WORKERS}, got ${show(raw)}`);
  }
  if (raw > poolSize) {
    throw new ConfigError('workers', `${raw} workers cannot split pool.size ${poolSize}: each worker needs at least one backend; lower workers or raise pool.size`);
  }
  const tight = users.find((u) => u.pool_size < raw);
  if (tight) {
    throw new ConfigError(
      'workers',
      `${raw} workers cannot split users "${tight.name}" pool_size ${tight.pool_size}: each worker needs at least one backend of it; lower workers or raise that pool_size`,
    );
  }
  return raw;
}
