// The tables behind SHOW POOLS / CLIENTS / SERVERS / STATS / TENANTS / CONFIG and the JSON endpoints
// (one source for both). Column names follow PgBouncer's where the concept is the same; times are
// microseconds unless the name says otherwise.
import { performance } from 'node:perf_hooks';
import type { Pool } from '../backend/pool.js';
import type { ProxyConfig } from '../config/types.js';
import type { PauseGate } from './pause-gate.js';
import type { Registry, Totals } from './registry.js';
import { workerView } from '../cluster/view.js';

/** When this process started (SHOW WORKERS for a single-process proxy). */
const STARTED_AT_MS = Date.now();

export type Cell = string | number | null;
export interface Column {
  name: string;
  type: 'text' | 'int';
}
export interface Table {
  columns: Column[];
  rows: Cell[][];
}

/** What the views read; built once in server.ts. */
export interface AdminState {
  registry: Registry;
  pool: Pool;
  gate: PauseGate;
  /** The configuration in effect (the last one loaded). */
  config(): ProxyConfig;
}

const cols = (spec: string): Column[] =>
  spec.split(/\s+/).map((c) => {
    const [name, type] = c.split(':');
    return { name, type: type === 'i' ? 'int' : 'text' };
  });

const iso = (ms: number | Date): string => new Date(ms).toISOString();
const avg = (sum: number, n: number): number => (n === 0 ? 0 : Math.round(sum / n));

export function showPools(s: AdminState): Table {
  const cfg = s.config();
  const snap = s.pool.snapshot();
  const now = performance.now();
  let clActive = 0;
  let clWaiting = 0;
  let maxWaitUs = 0;
  const holders = s.registry.holders();
  for (const c of s.registry.clients.values()) {
    if (c.state === 'waiting') {
      clWaiting++;
      maxWaitUs = Math.max(maxWaitUs, c.waitingUs(now));
    } else clActive++;
  }
  let svActive = 0;
  let svIdle = 0;
  let svUsed = 0;
  for (const { conn, idle } of snap.conns) {
    if (idle) svIdle++;
    else if (holders.has(conn)) svActive++;
    else svUsed++;
  }
  return {
    columns: cols('database user cl_active:i cl_waiting:i sv_active:i sv_idle:i sv_used:i sv_login:i maxwait:i maxwait_us:i pool_mode pool_size:i paused'),
    rows: [
      [
        cfg.backend.database,
        cfg.backend.user,
        clActive,
        clWaiting,
        svActive,
        svIdle,
        svUsed,
        snap.stats.connecting,
        Math.floor(maxWaitUs / 1e6),
        maxWaitUs % 1_000_000,
        cfg.pool.mode,
        snap.stats.size,
        s.gate.isPaused ? 'yes' : 'no',
      ],
    ],
  };
}

export function showClients(s: AdminState): Table {
  const cfg = s.config();
  const now = performance.now();
  const rows: Cell[][] = [];
  for (const c of s.registry.clients.values()) {
    const w = c.waitingUs(now);
    rows.push([
      'C',
      c.id,
      c.user,
      cfg.backend.database,
      c.tenant,
      c.state,
      c.socket.remoteAddress ?? null,
      c.socket.remotePort ?? null,
      iso(c.connectTime),
      iso(c.requestTime),
      Math.floor(w / 1e6),
      w % 1_000_000,
      c.server?.pid ?? null,
      c.tls ? 'yes' : 'no',
      c.applicationName,
      c.transactions,
      c.queries,
    ]);
  }
  return {
    columns: cols('type id:i user database tenant state addr port:i connect_time request_time wait:i wait_us:i link:i tls application_name xact_count:i query_count:i'),
    rows,
  };
}

export function showServers(s: AdminState): Table {
  const cfg = s.config();
  const holders = s.registry.holders();
  const rows: Cell[][] = s.pool.snapshot().conns.map(({ conn, idle }) => {
    const holder = holders.get(conn);
    return [
      'S',
      conn.id,
      cfg.backend.user,
      cfg.backend.database,
      idle ? 'idle' : holder ? 'active' : 'used',
      cfg.backend.host,
      cfg.backend.port,
      iso(conn.createdAt),
      iso(conn.lastUsedAt),
      conn.pid,
      holder?.id ?? null,
      holder?.tenant ?? null,
    ];
  });
  return { columns: cols('type id:i user database state addr port:i connect_time request_time remote_pid:i link:i tenant'), rows };
}

export function showStats(s: AdminState): Table {
  const t = s.registry.totals;
  const b = s.registry.bytes();
  return {
    columns: cols(
      'database total_xact_count:i total_query_count:i total_received:i total_sent:i total_xact_time:i total_query_time:i total_wait_time:i avg_xact_time:i avg_query_time:i avg_wait_time:i',
    ),
    rows: [
      [
        s.config().backend.database,
        t.transactions,
        t.queries,
        b.received,
        b.sent,
        Math.round(t.xactUs),
        Math.round(t.queryUs),
        Math.round(t.waitUs),
        avg(t.xactUs, t.transactions),
        avg(t.queryUs, t.queries),
        avg(t.waitUs, t.waits),
      ],
    ],
  };
}

/** Per tenant: tenants seen since start, plus suspended ones never seen. */
export function showTenants(s: AdminState): Table {
  const deny = new Set(s.config().tenant.deny);
  const live = new Map<string, { active: number; waiting: number; held: number }>();
  for (const c of s.registry.clients.values()) {
    if (c.tenant === null) continue;
    let l = live.get(c.tenant);
    if (!l) live.set(c.tenant, (l = { active: 0, waiting: 0, held: 0 }));
    if (c.state === 'active') l.active++;
    if (c.state === 'waiting') l.waiting++;
    if (c.server) l.held++;
  }
  const names = new Set([...s.registry.tenants.keys(), ...deny, ...s.registry.suspended]);
  const rows: Cell[][] = [...names].sort().map((name) => {
    const t: (Totals & { clients?: number }) | undefined = s.registry.tenants.get(name);
    const l = live.get(name);
    const why = [deny.has(name) ? 'config' : '', s.registry.suspended.has(name) ? 'console' : ''].filter(Boolean).join(',');
    return [
      name,
      t?.clients ?? 0,
      l?.active ?? 0,
      l?.waiting ?? 0,
      l?.held ?? 0,
      t?.transactions ?? 0,
      t?.queries ?? 0,
      t ? avg(t.waitUs, t.waits) : 0,
      t ? avg(t.queryUs, t.queries) : 0,
      t ? avg(t.xactUs, t.transactions) : 0,
      why === '' ? 'no' : why,
    ];
  });
  return { columns: cols('tenant clients:i active:i waiting:i sv_held:i xact_count:i query_count:i avg_wait_time:i avg_query_time:i avg_xact_time:i suspended'), rows };
}

/** Keys whose last path element names a secret: shown as redacted, never their value. */
const SECRET_KEYS = new Set(['password', 'secret', 'verifier']);
/** What RELOAD (or SIGHUP) applies without a restart. */
const RELOADABLE = [/^tenant\.deny$/, /^listen\.tls\./, /^auth\.jwt\.(public_key_file|jwks_file|jwks_url)$/, /^pool\.(?!mode$)/, /^listen\.client_idle_timeout_ms$/, /^shutdown\./, /^log\.level$/];

export function showConfig(s: AdminState): Table {
  const rows: Cell[][] = [];
  const walk = (key: string, v: unknown): void => {
    const last = key.split('.').pop()!.replace(/\[\d+\]$/, '');
    if (SECRET_KEYS.has(last)) {
      rows.push([last === 'verifier' ? key.replace(/verifier$/, 'scram') : key, '<redacted>', 'no']);
      return;
    }
    if (v instanceof RegExp) v = v.source;
    if (v instanceof Map) v = Object.fromEntries(v);
    if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) v = v.join(', ');
    if (Array.isArray(v)) {
      v.forEach((x, i) => walk(`${key}[${i}]`, x));
      return;
    }
    if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) walk(key === '' ? k : `${key}.${k}`, x);
      return;
    }
    rows.push([key, v === undefined || v === null ? null : String(v), RELOADABLE.some((r) => r.test(key)) ? 'yes' : 'no']);
  };
  walk('', s.config());
  return { columns: cols('key value changeable'), rows };
}

/** A table as JSON: one object per row, keyed by column name. */
export function tableJson(t: Table): Array<Record<string, Cell>> {
  return t.rows.map((r) => Object.fromEntries(t.columns.map((c, i) => [c.name, r[i]])));
}

/**
 * The worker processes (workers > 1: as the primary last reported them, `self` marking the worker serving this
 * console connection; the other SHOW tables describe that worker only). A single process shows itself.
 */
export function showWorkers(s: AdminState): Table {
  const v = workerView(s.config().pool.size, STARTED_AT_MS);
  return {
    columns: cols('worker:i pid:i state restarts:i pool_share:i started_at self'),
    rows: v.rows.map((r) => [r.worker, r.pid, r.state, r.restarts, r.pool_share, r.started_at, r.worker === v.self ? 'yes' : 'no']),
  };
}
