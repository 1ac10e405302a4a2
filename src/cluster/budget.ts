// The exact split of the backend budget over worker processes: shares sum to the configured caps, never more.
import type { ProxyConfig } from '../config/types.js';

/** Worker `index`'s share of `total` over `count` workers: floor(total/count), plus one for the first total%count. */
export function share(total: number, count: number, index: number): number {
  return Math.floor(total / count) + (index < total % count ? 1 : 0);
}

/**
 * The configuration one worker runs with: pool.size, pool.overflow, each users[].pool_size and
 * listen.max_client_conn are its shares, so the workers together never exceed the configured totals (each
 * worker's hard cap is size_i + overflow_i; their sum is size + overflow). pool.min_idle is split the same
 * way and clamped to the worker's size_i. pool.tenant_max_backends (0: no cap) is split too, but at least 1
 * per worker: with fewer than `count` allowed, a tenant may hold one backend in each worker. The admin
 * endpoint is the primary's alone. (validateWorkers guarantees every size share is at least 1.)
 */
export function workerConfig(config: ProxyConfig, index: number, count: number): ProxyConfig {
  const size = share(config.pool.size, count, index);
  const tenantMax = config.pool.tenant_max_backends;
  return {
    ...config,
    listen: { ...config.listen, max_client_conn: Math.max(1, share(config.listen.max_client_conn, count, index)) },
    admin: { ...config.admin, port: 0 },
    pool: {
      ...config.pool,
      size,
      overflow: share(config.pool.overflow, count, index),
      min_idle: Math.min(size, share(config.pool.min_idle, count, index)),
      tenant_max_backends: tenantMax === 0 ? 0 : Math.max(1, share(tenantMax, count, index)),
    },
    users: config.users.map((u) => ({ ...u, pool_size: share(u.pool_size, count, index) })),
  };
}
