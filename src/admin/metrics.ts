// Prometheus metrics (prom-client) on a private registry: pool gauges read at scrape time, counters
// and the acquire-wait histogram updated by the proxy. Labels have bounded cardinality only.
import client from 'prom-client';
import type { PoolStats } from '../backend/pool.js';

export class Metrics {
  readonly registry = new client.Registry();
  readonly transactions = new client.Counter({
    name: 'pgtp_transactions_total',
    help: 'Transactions completed on a backend (ReadyForQuery idle).',
    registers: [this.registry],
  });
  readonly acquireWait = new client.Histogram({
    name: 'pgtp_pool_acquire_wait_seconds',
    help: 'Time a client waited for a backend connection.',
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly acquireTimeouts = new client.Counter({
    name: 'pgtp_pool_acquire_failures_total',
    help: 'Clients that got no backend (timeout, queue full, database unreachable), by SQLSTATE.',
    labelNames: ['sqlstate'],
    registers: [this.registry],
  });
  readonly authFailures = new client.Counter({
    name: 'pgtp_auth_failures_total',
    help: 'Refused logins, by reason.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly clientLogins = new client.Counter({
    name: 'pgtp_client_logins_total',
    help: 'Successful client logins.',
    registers: [this.registry],
  });
  readonly clients = new client.Gauge({
    name: 'pgtp_client_connections',
    help: 'Client connections open now (logged in).',
    registers: [this.registry],
  });
  readonly backendOpened = new client.Counter({
    name: 'pgtp_backend_connections_opened_total',
    help: 'Backend connections opened.',
    registers: [this.registry],
  });
  readonly backendClosed = new client.Counter({
    name: 'pgtp_backend_connections_closed_total',
    help: 'Backend connections closed.',
    registers: [this.registry],
  });
  readonly backendConnectFailures = new client.Counter({
    name: 'pgtp_backend_connect_failures_total',
    help: 'Failed attempts to open a backend connection.',
    registers: [this.registry],
  });
  readonly resets = new client.Counter({
    name: 'pgtp_backend_resets_total',
    help: 'DISCARD ALL resets, by how they ran: eager (own round trip, backend idle in pool) or pipelined (in front of the next waiting client).',
    labelNames: ['mode'],
    registers: [this.registry],
  });
  readonly resetFailures = new client.Counter({
    name: 'pgtp_backend_reset_failures_total',
    help: 'Backends closed because DISCARD ALL failed or did not leave them idle.',
    registers: [this.registry],
  });
  readonly contextFailures = new client.Counter({
    name: 'pgtp_tenant_context_failures_total',
    help: 'Transactions refused because the tenant context could not be set (fail closed).',
    registers: [this.registry],
  });
  readonly cancels = new client.Counter({
    name: 'pgtp_cancel_requests_total',
    help: 'CancelRequests received, by outcome.',
    labelNames: ['outcome'],
    registers: [this.registry],
  });

  constructor(poolStats: () => PoolStats, poolName: string) {
    const gauge = (name: string, help: string, pick: (s: PoolStats) => number): void => {
      new client.Gauge({
        name,
        help,
        labelNames: ['pool'],
        registers: [this.registry],
        collect() {
          this.set({ pool: poolName }, pick(poolStats()));
        },
      });
    };
    gauge('pgtp_pool_size', 'Configured maximum backend connections (pool.size).', (s) => s.size);
    gauge('pgtp_pool_open', 'Backend connections open now.', (s) => s.open);
    gauge('pgtp_pool_busy', 'Backend connections assigned to a client or being reset.', (s) => s.busy);
    gauge('pgtp_pool_idle', 'Backend connections idle in the pool.', (s) => s.idle);
    gauge('pgtp_pool_waiting', 'Clients waiting for a backend connection.', (s) => s.waiting);
    client.collectDefaultMetrics({ register: this.registry, prefix: 'pgtp_process_' });
  }
}
