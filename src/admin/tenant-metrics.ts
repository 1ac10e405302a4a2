// Per-tenant Prometheus series with bounded cardinality. Every label value is a series Prometheus keeps
// in memory and on disk, and tenant ids come from tokens: one series per tenant would let 100,000 tenants
// (or a burst of new ones) blow up the monitoring system. So only the top K tenants by activity
// (transactions since start, metrics.tenant_top_k) get their own `tenant` label; all others are summed
// under tenant="other". Any scrape has at most K+1 tenant values per metric. A tenant that enters the top
// K moves its running total out of "other", which then drops once (rate() reads it as a counter reset).
import client from 'prom-client';
import type { Registry } from './registry.js';

export const OTHER = 'other';

interface Row {
  transactions: number;
  xactSeconds: number;
  waitSeconds: number;
  clients: number;
  waiting: number;
  held: number;
}

const zero = (): Row => ({ transactions: 0, xactSeconds: 0, waitSeconds: 0, clients: 0, waiting: 0, held: 0 });

/** The label each tenant is reported under: itself for the top K by transactions, else "other". */
export function topTenants(registry: Registry, k: number): Set<string> {
  if (k === 0) return new Set();
  const all = [...registry.tenants.values()];
  all.sort((a, b) => b.transactions - a.transactions || (a.tenant < b.tenant ? -1 : 1));
  return new Set(all.slice(0, k).map((t) => t.tenant));
}

/** Groups the registry's tenants into at most K+1 label values, for one scrape. */
export function tenantRows(registry: Registry, k: number): Map<string, Row> {
  const top = topTenants(registry, k);
  const rows = new Map<string, Row>([[OTHER, zero()]]);
  const row = (tenant: string): Row => {
    const label = top.has(tenant) ? tenant : OTHER;
    let r = rows.get(label);
    if (!r) rows.set(label, (r = zero()));
    return r;
  };
  for (const t of registry.tenants.values()) {
    const r = row(t.tenant);
    r.transactions += t.transactions;
    r.xactSeconds += t.xactUs / 1e6;
    r.waitSeconds += t.waitUs / 1e6;
    r.clients += t.clients;
  }
  for (const c of registry.clients.values()) {
    if (c.tenant === null) continue;
    const r = row(c.tenant);
    if (c.state === 'waiting') r.waiting++;
    if (c.server) r.held++;
  }
  return rows;
}

/** Registers the per-tenant metrics; their values are computed from the registry at scrape time. */
export function registerTenantMetrics(reg: client.Registry, registry: () => Registry | null, k: number): void {
  let cache: { at: number; rows: Map<string, Row> } | null = null;
  // One grouping per scrape, shared by all the metrics below: a scrape collects them in registration
  // order, and the first one recomputes. A lone read of another one recomputes if the grouping is old.
  const rows = (fresh: boolean): Map<string, Row> => {
    const now = Date.now();
    const r = registry();
    if (!r) return new Map();
    if (fresh || !cache || now - cache.at > 1000) cache = { at: now, rows: tenantRows(r, k) };
    return cache.rows;
  };
  let first = true;
  const counter = (name: string, help: string, pick: (r: Row) => number): void => {
    const recompute = first;
    first = false;
    new client.Counter({
      name,
      help,
      labelNames: ['tenant'],
      registers: [reg],
      collect() {
        this.reset();
        for (const [tenant, r] of rows(recompute)) this.inc({ tenant }, pick(r));
      },
    });
  };
  const gauge = (name: string, help: string, pick: (r: Row) => number): void => {
    new client.Gauge({
      name,
      help,
      labelNames: ['tenant'],
      registers: [reg],
      collect() {
        this.reset();
        for (const [tenant, r] of rows(false)) this.set({ tenant }, pick(r));
      },
    });
  };
  const top = `top ${k} tenants by transactions, the rest as tenant="other"`;
  counter('pgtp_tenant_transactions_total', `Transactions completed, per tenant (${top}).`, (r) => r.transactions);
  counter('pgtp_tenant_transaction_seconds_total', `Time spent in transactions holding a backend, per tenant (${top}).`, (r) => r.xactSeconds);
  counter('pgtp_tenant_acquire_wait_seconds_total', `Time spent waiting for a backend, per tenant (${top}).`, (r) => r.waitSeconds);
  gauge('pgtp_tenant_clients', `Client connections open now, per tenant (${top}).`, (r) => r.clients);
  gauge('pgtp_tenant_waiting', `Clients waiting for a backend now, per tenant (${top}).`, (r) => r.waiting);
  gauge('pgtp_tenant_backends_held', `Backends held now, per tenant (${top}).`, (r) => r.held);
}
