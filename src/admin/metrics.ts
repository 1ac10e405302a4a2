// Prometheus metrics (prom-client) on a private registry: pool gauges read at scrape time, counters
// and histograms updated by the proxy. Labels have bounded cardinality only (see tenant-metrics.ts).
import client from 'prom-client';
import type { PoolSnapshot, PoolStats } from '../backend/pool-types.js';
import type { Registry, RegistrySink } from './registry.js';
import { registerTenantMetrics } from './tenant-metrics.js';
import { HotCounter, HotHistogram } from './hot-metrics.js';

/** Seconds, from 0.5 ms (a pooled point query) to 30 s (a long report or a stuck lock). */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function counter<L extends string = never>(registry: client.Registry, name: string, help: string, labelNames: L[] = []): client.Counter<L> {
  return new client.Counter({ name, help, labelNames, registers: [registry] });
}

export class Metrics {
  readonly registry = new client.Registry();
  // Updated per transaction: hot-metrics.ts (no label hashing per update).
  readonly transactions = new HotCounter(this.registry, 'pgtp_transactions_total', 'Transactions completed on a backend (ReadyForQuery idle).');
  readonly acquireWait = new HotHistogram(
    this.registry,
    'pgtp_pool_acquire_wait_seconds',
    'Time a client waited for a backend at the start of a transaction (PAUSE included), by outcome: acquired, timeout (53300), error.',
    [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    'outcome',
    ['acquired', 'timeout', 'error'],
  );
  readonly transactionDuration = new HotHistogram(this.registry, 'pgtp_transaction_duration_seconds', 'Transactions: from the backend assignment (or first statement) to ReadyForQuery idle.', DURATION_BUCKETS);
  readonly queryDuration = new HotHistogram(this.registry, 'pgtp_query_duration_seconds', 'Queries: from the client sending a statement to the server ReadyForQuery (one per sync point).', DURATION_BUCKETS);
  readonly errors = counter(this.registry, 'pgtp_errors_total', 'Errors sent to clients, by SQLSTATE class (first two characters) and source: server or proxy.', ['class', 'source']);
  readonly resetOutcomes = new HotCounter(this.registry, 'pgtp_backend_reset_outcomes_total', 'Backend resets (DISCARD ALL) by outcome: ok (own round trip), pipelined (in front of the next client), or failed (backend closed).', 'outcome', ['ok', 'pipelined', 'failed']);
  /** What the registry reports to; set up in the constructor. */
  readonly sink: RegistrySink;
  private watched: Registry | null = null;
  readonly acquireTimeouts = counter(this.registry, 'pgtp_pool_acquire_failures_total', 'Clients that got no backend (timeout, queue full, database unreachable), by SQLSTATE.', ['sqlstate']);
  readonly authFailures = counter(this.registry, 'pgtp_auth_failures_total', 'Refused logins, by reason.', ['reason']);
  readonly clientLogins = counter(this.registry, 'pgtp_client_logins_total', 'Successful client logins.');
  readonly clients = new client.Gauge({ name: 'pgtp_client_connections', help: 'Client connections open now (logged in).', registers: [this.registry] });
  readonly backendOpened = counter(this.registry, 'pgtp_backend_connections_opened_total', 'Backend connections opened.');
  readonly backendClosed = counter(this.registry, 'pgtp_backend_connections_closed_total', 'Backend connections closed.');
  readonly backendConnectFailures = counter(this.registry, 'pgtp_backend_connect_failures_total', 'Failed attempts to open a backend connection.');
  readonly resets = new HotCounter(this.registry, 'pgtp_backend_resets_total', 'DISCARD ALL resets, by how they ran: eager (own round trip, backend idle in pool) or pipelined (in front of the next waiting client).', 'mode', ['eager', 'pipelined']);
  readonly resetFailures = counter(this.registry, 'pgtp_backend_reset_failures_total', 'Backends closed because DISCARD ALL failed or did not leave them idle.');
  readonly contextFailures = counter(this.registry, 'pgtp_tenant_context_failures_total', 'Transactions refused because the tenant context could not be set (fail closed).');
  readonly securityEvents = counter(this.registry, 'pgtp_security_events_total', 'Security events, by event: AUTH_FAILED, TOKEN_EXPIRED, TENANT_STATEMENT_BLOCKED, TENANT_CONTEXT_TAMPERED, READBACK_FAILED, TENANT_SUSPENDED, RESET_FAILED.', ['event']);
  readonly readbackChecks = new HotCounter(this.registry, 'pgtp_readback_checks_total', 'Read-back checks of a tenant context at the end of a hold, by outcome: intact, tampered, failed (could not be verified: client disconnected), skipped (backend closed, nothing to read back).', 'outcome', ['intact', 'tampered', 'failed', 'skipped']);
  readonly cancels = counter(this.registry, 'pgtp_cancel_requests_total', 'CancelRequests received, by outcome.', ['outcome']);

  constructor(snapshot: () => PoolSnapshot, poolName: string, tenantTopK = 20) {
    const poolStats = () => snapshot().stats;
    const { acquireWait, transactionDuration, queryDuration, errors } = this;
    this.sink = {
      transaction: (s) => transactionDuration.observe(s),
      query: (s) => queryDuration.observe(s),
      acquireWait: (outcome, s) => acquireWait.observe(s, outcome),
      error: (cls, source) => errors.inc({ class: cls, source }),
    };
    const watched = (): Registry | null => this.watched;
    // Bytes are read from the client sockets' own counters at scrape time: nothing is counted per message.
    const bytes = (name: string, help: string, pick: (b: { received: number; sent: number }) => number): void => {
      new client.Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          const r = watched();
          this.reset();
          if (r) this.inc(pick(r.bytes()));
        },
      });
    };
    bytes('pgtp_client_received_bytes_total', 'Bytes received from clients (logged-in sessions).', (b) => b.received);
    bytes('pgtp_client_sent_bytes_total', 'Bytes sent to clients (logged-in sessions).', (b) => b.sent);
    new client.Gauge({
      name: 'pgtp_backends',
      help: 'Backend connections by state: idle (in the pool), active (held by a client), resetting (between clients), connecting.',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const snap = snapshot();
        const holders = watched()?.holders();
        let idle = 0;
        let active = 0;
        for (const { conn, idle: isIdle } of snap.conns) {
          if (isIdle) idle++;
          else if (holders?.has(conn)) active++;
        }
        this.set({ state: 'idle' }, idle);
        this.set({ state: 'active' }, active);
        this.set({ state: 'resetting' }, snap.conns.length - idle - active);
        this.set({ state: 'connecting' }, snap.stats.connecting);
      },
    });
    registerTenantMetrics(this.registry, watched, tenantTopK);
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
    gauge('pgtp_pool_utilization_ratio', 'Backends assigned or being reset, as a fraction of pool.size (alert above 0.8; above 1 while overflow backends are in use: see pgtp_pool_utilisation for the cap).', (s) => (s.size === 0 ? 0 : s.busy / s.size));
    // ---- pool limits (issue 12): the cap, overflow and utilisation the PrometheusRule alerts on --------
    gauge('pgtp_pool_cap', 'Hard cap of backend connections: pool.size + pool.overflow.', (s) => s.cap);
    gauge('pgtp_pool_overflow_open', 'Backend connections open beyond pool.size.', (s) => s.overflowOpen);
    gauge('pgtp_pool_overflow_limit', 'pool.overflow: backends allowed beyond pool.size.', (s) => s.cap - s.size);
    gauge('pgtp_pool_held', 'Backend connections checked out by a client now.', (s) => s.held);
    gauge('pgtp_pool_utilisation', 'Checked-out backends as a fraction of the cap (pool.alert_threshold applies).', (s) => s.held / s.cap);
    gauge('pgtp_pool_overflow_utilisation', 'Overflow backends open as a fraction of pool.overflow (0 when overflow is 0).', (s) => (s.cap === s.size ? 0 : s.overflowOpen / (s.cap - s.size)));
    // ---- end pool limits ------------------------------------------------------------------------------
    client.collectDefaultMetrics({ register: this.registry, prefix: 'pgtp_process_' });
  }

  /** The live registry the per-tenant, bytes and backend-state metrics read at scrape time. */
  watch(registry: Registry): void {
    this.watched = registry;
  }
}
