// The live view of the proxy for operators: every logged-in client and its state, the backend it holds,
// per-tenant and overall totals, and the runtime tenant suspensions. One source for the admin console,
// the JSON endpoints and the per-tenant metrics.
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ServerConn } from '../backend/server.js';
import type { SessionObserver } from '../session/observer.js';

/** Where the registry reports durations and errors (the Prometheus metrics). */
export interface RegistrySink {
  transaction(seconds: number): void;
  query(seconds: number): void;
  acquireWait(outcome: 'acquired' | 'timeout' | 'error', seconds: number): void;
  error(sqlstateClass: string, source: 'server' | 'proxy'): void;
}

/** Sums over a set of transactions (per tenant, and for the whole proxy). Times in microseconds. */
export class Totals {
  transactions = 0;
  queries = 0;
  xactUs = 0;
  queryUs = 0;
  /** Waits that ended (with a backend or without one). */
  waits = 0;
  waitUs = 0;

  query(us: number): void {
    this.queries++;
    this.queryUs += us;
  }

  transaction(us: number): void {
    this.transactions++;
    this.xactUs += us;
  }

  wait(us: number): void {
    this.waits++;
    this.waitUs += us;
  }
}

/** One tenant's running totals and current counts. */
export class TenantStats extends Totals {
  clients = 0;
  constructor(readonly tenant: string) {
    super();
  }
}

export type ClientState = 'idle' | 'waiting' | 'active';

/** Most tenants tracked; past it a tenant with no clients left and the fewest transactions is forgotten. */
const MAX_TENANTS = 100_000;

/** The registry's record of one client; the session reports to it (see SessionObserver). */
export class ClientEntry implements SessionObserver {
  state: ClientState = 'idle';
  server: ServerConn | null = null;
  readonly connectTime = new Date();
  /** When the client last changed state (epoch ms; a Date only when displayed, not per transaction). */
  private requestMs = Date.now();
  transactions = 0;
  queries = 0;
  private waitStart = 0;
  private xactStart = 0;
  private queryStart = 0;
  /** The last ReadyForQuery (or the assignment): where a pipelined next query or transaction starts. */
  private lastRfq = 0;

  constructor(
    readonly id: number,
    readonly user: string,
    readonly tenant: string | null,
    readonly socket: net.Socket,
    readonly tls: boolean,
    readonly applicationName: string,
    private readonly reg: Registry,
    private readonly stats: TenantStats | null,
    /** Ends this client with FATAL (KILL CLIENT). */
    readonly kill: () => void,
  ) {}

  /** When the client last changed state (wall clock, for display). */
  get requestTime(): Date {
    return new Date(this.requestMs);
  }

  /** How long the client has been waiting for a backend, in microseconds (0 when not waiting). */
  waitingUs(now = performance.now()): number {
    return this.state === 'waiting' ? Math.round((now - this.waitStart) * 1000) : 0;
  }

  waiting(): void {
    this.state = 'waiting';
    this.waitStart = performance.now();
    this.requestMs = performance.timeOrigin + this.waitStart;
  }

  acquired(server: ServerConn): void {
    const now = performance.now();
    this.endWait(now, 'acquired');
    this.state = 'active';
    this.server = server;
    this.xactStart = this.queryStart = this.lastRfq = now;
  }

  acquireFailed(sqlstate: string): void {
    this.endWait(performance.now(), sqlstate === '53300' ? 'timeout' : 'error');
    this.state = 'idle';
    this.reg.sink.error(sqlstate.slice(0, 2), 'proxy');
  }

  clientData(): void {
    if (this.queryStart !== 0) return;
    this.queryStart = performance.now();
    if (this.xactStart === 0) this.xactStart = this.queryStart;
  }

  /**
   * One query per sync point answered. A pipelined client sent the next query before this answer, so
   * no new chunk marks its start: it started, at the earliest, when the server finished the previous one.
   */
  readyForQuery(idle: boolean): void {
    const now = performance.now();
    const queryStart = this.queryStart || this.lastRfq;
    const xactStart = this.xactStart || this.lastRfq;
    this.queryStart = 0;
    this.lastRfq = now;
    if (queryStart !== 0) {
      const us = (now - queryStart) * 1000;
      this.queries++;
      this.reg.totals.query(us);
      this.stats?.query(us);
      this.reg.sink.query(us / 1e6);
    }
    if (idle && xactStart !== 0) {
      const us = (now - xactStart) * 1000;
      this.xactStart = 0;
      this.transactions++;
      this.reg.totals.transaction(us);
      this.stats?.transaction(us);
      this.reg.sink.transaction(us / 1e6);
    }
  }

  serverError(body: Buffer): void {
    this.reg.sink.error(sqlstateClass(body), 'server');
  }

  released(): void {
    this.server = null;
    this.state = 'idle';
    this.xactStart = this.queryStart = this.lastRfq = 0;
    this.requestMs = Date.now();
  }

  /** The session ended. */
  closed(): void {
    this.reg.remove(this);
  }

  private endWait(now: number, outcome: 'acquired' | 'timeout' | 'error'): void {
    if (this.state !== 'waiting') return;
    const us = (now - this.waitStart) * 1000;
    this.reg.totals.wait(us);
    this.stats?.wait(us);
    this.reg.sink.acquireWait(outcome, us / 1e6);
  }

}

/** The SQLSTATE class (first two characters) of an ErrorResponse body, read in place. */
export function sqlstateClass(body: Buffer): string {
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const end = body.indexOf(0, i + 1);
    if (end < 0) break;
    if (body[i] === 0x43 /* 'C' */ && end - i >= 3) {
      const c = body.toString('latin1', i + 1, i + 3);
      return /^[0-9A-Z]{2}$/.test(c) ? c : 'XX';
    }
    i = end + 1;
  }
  return 'XX';
}

export interface NewClient {
  id: number;
  user: string;
  tenant: string | null;
  socket: net.Socket;
  tls: boolean;
  applicationName: string;
  kill: () => void;
}

export class Registry {
  readonly clients = new Map<number, ClientEntry>();
  readonly tenants = new Map<string, TenantStats>();
  readonly totals = new Totals();
  /** SUSPEND TENANT: refused like tenant.deny until UNSUSPEND TENANT (not persisted across restarts). */
  readonly suspended = new Set<string>();
  /** Bytes of clients that have left (live clients are read from their sockets). */
  private closedIn = 0;
  private closedOut = 0;
  readonly startedAt = Date.now();

  constructor(readonly sink: RegistrySink) {}

  add(c: NewClient): ClientEntry {
    const stats = c.tenant === null ? null : this.tenant(c.tenant);
    if (stats) stats.clients++;
    const e = new ClientEntry(c.id, c.user, c.tenant, c.socket, c.tls, c.applicationName, this, stats, c.kill);
    this.clients.set(c.id, e);
    return e;
  }

  remove(e: ClientEntry): void {
    if (!this.clients.delete(e.id)) return;
    this.closedIn += e.socket.bytesRead;
    this.closedOut += e.socket.bytesWritten;
    if (e.tenant !== null) {
      const t = this.tenants.get(e.tenant);
      if (t) t.clients--;
    }
  }

  /** Client bytes received and sent, all clients ever (read from the sockets: nothing is counted per message). */
  bytes(): { received: number; sent: number } {
    let received = this.closedIn;
    let sent = this.closedOut;
    for (const e of this.clients.values()) {
      received += e.socket.bytesRead;
      sent += e.socket.bytesWritten;
    }
    return { received, sent };
  }

  /** Which client holds each backend now. */
  holders(): Map<ServerConn, ClientEntry> {
    const m = new Map<ServerConn, ClientEntry>();
    for (const e of this.clients.values()) if (e.server) m.set(e.server, e);
    return m;
  }

  private tenant(name: string): TenantStats {
    let t = this.tenants.get(name);
    if (t) return t;
    if (this.tenants.size >= MAX_TENANTS) this.forgetOne();
    t = new TenantStats(name);
    this.tenants.set(name, t);
    return t;
  }

  private forgetOne(): void {
    let victim: TenantStats | null = null;
    for (const t of this.tenants.values()) {
      if (t.clients === 0 && (victim === null || t.transactions < victim.transactions)) victim = t;
    }
    if (victim) this.tenants.delete(victim.tenant);
  }
}
