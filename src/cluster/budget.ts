// The exact split of the backend budget over worker processes: shares sum to the configured caps, never more.
import type { ProxyConfig } from '../config/types.js';

/** Worker `index`'s share of `total` over `count` workers: floor(total/count), plus one for the first total%count. */
export function share(total: number, count: number, index: number): number {
  return Math.floor(total / count) + (index < total % count ? 1 : 0);
}

/**
 * The configuration one worker runs with: pool.size, each users[].pool_size and listen.max_client_conn are
 * its shares, so the workers together never exceed the configured totals. The admin endpoint is the
 * primary's alone. (validateWorkers guarantees every share is at least 1.)
 */
export function workerConfig(config: ProxyConfig, index: number, count: number): ProxyConfig {
  return {
    ...config,
    listen: { ...config.listen, max_client_conn: Math.max(1, share(config.listen.max_client_conn, count, index)) },
    admin: { ...config.admin, port: 0 },
    pool: { ...config.pool, size: share(config.pool.size, count, index) },
    users: config.users.map((u) => ({ ...u, pool_size: share(u.pool_size, count, index) })),
  };
}
