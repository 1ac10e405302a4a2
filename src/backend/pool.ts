// The bounded backend pool: at most `size` server connections ever exist; clients wait FIFO for one,
// and a connection comes back only through its hand-over (handover.ts): reset at once when nobody waits,
// or pipelined in front of the next waiting client.
import type { BackendConfig, PoolConfig } from '../config/types.js';
import { BackendConnectError, type Handshake, sendCancel } from './connect.js';
import { Handover, type ReadbackOutcome } from './handover.js';
import type { Readback } from './readback.js';
import { runEagerHandover } from './reset.js';
import { ServerConn } from './server.js';

export class PoolError extends Error {
  constructor(
    message: string,
    public readonly sqlstate: string,
    /** The underlying cause without this error's own wording (e.g. the connect error), for callers that add theirs. */
    public readonly detail: string = message,
  ) {
    super(message);
    this.name = 'PoolError';
  }
}

/** How a client hands a backend back. */
export type ReleaseMode = 'idle' | 'in-transaction' | 'broken';

/**
 * A client asking for a backend. Exactly one of the two is called, synchronously from the pool (never from
 * a microtask): a backend handed over from another client's ReadyForQuery is owned by the waiter before the
 * rest of that network read is dispatched, so a FATAL in the same read reaches the waiter.
 */
export interface PoolWaiter {
  /** A live backend; `handover` (if not null) must be written in front of the client's first message. */
  granted(conn: ServerConn, handover: Handover | null): void;
  failed(err: PoolError): void;
}

interface Queued {
  waiter: PoolWaiter;
  enqueuedAt: number;
  deadline: number;
}

export interface PoolEvents {
  opened(conn: ServerConn): void;
  closed(conn: ServerConn, reason: string): void;
  acquired(waitSeconds: number): void;
  resetFailed(conn: ServerConn, reason: string): void;
  reset(mode: 'eager' | 'pipelined'): void;
  connectFailed(err: Error): void;
  /** A client's read-back check ran, failed, or could not run (backend closed): counted, never silent. */
  readback?(outcome: ReadbackOutcome, reason: string | null): void;
}

export interface PoolStats {
  size: number;
  open: number;
  busy: number;
  idle: number;
  connecting: number;
  waiting: number;
}

export interface PoolSnapshot {
  stats: PoolStats;
  conns: Array<{ conn: ServerConn; idle: boolean }>;
  /** From the newest handshake; null before the first backend was opened. */
  params: Map<string, string> | null;
}

export class Pool {
  private readonly idle: ServerConn[] = [];
  private readonly all = new Set<ServerConn>();
  private connecting = 0;
  /** FIFO; every waiter has the same timeout, so deadlines are in order and one timer serves them all. */
  private readonly queue: Queued[] = [];
  private deadlineTimer: NodeJS.Timeout | null = null;
  /**
   * Idle backends whose hand-over is deferred (pool.reset_delay_ms): pipelined in front of the next client
   * that takes them, or run eagerly once their deadline passes, so session-level locks, LISTEN and temp
   * tables a client left are released within that bound even if nobody comes. Insertion order is deadline
   * order (one delay for all), so one timer serves them.
   */
  private readonly deferred = new Map<ServerConn, { handover: Handover; deadline: number }>();
  private deferTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Server ParameterStatus values from the newest handshake, shown to clients at login. */
  private params: Map<string, string> | null = null;
  /** Parse bytes kept for re-preparing across all clients of this pool (pool.max_prepared_statement_bytes_total). */
  readonly retainedStatements: { used: number; readonly limit: number };
  /** Why the last attempt to open a backend connection failed, or null if it succeeded or none was made (/readyz). */
  lastConnectError: string | null = null;
  private readonly handoverEvents = {
    readback: (outcome: ReadbackOutcome, reason: string | null) => this.events.readback?.(outcome, reason),
  };

  constructor(
    readonly name: string,
    readonly cfg: PoolConfig,
    private readonly backend: BackendConfig,
    private readonly connect: (cfg: BackendConfig) => Promise<Handshake>,
    private readonly events: PoolEvents,
  ) {
    this.retainedStatements = { used: 0, limit: cfg.max_prepared_statement_bytes_total };
    if (cfg.idle_timeout_ms > 0) {
      this.idleTimer = setInterval(() => this.closeIdle(), Math.min(cfg.idle_timeout_ms, 10_000));
      this.idleTimer.unref();
    }
  }

  stats(): PoolStats {
    const open = this.all.size;
    return { size: this.cfg.size, open, busy: open - this.idle.length, idle: this.idle.length, connecting: this.connecting, waiting: this.queue.length };
  }

  /** Read-only view for the admin console and metrics: every open backend, whether it is idle, and the server's parameters. */
  snapshot(): PoolSnapshot {
    const idle = new Set(this.idle);
    return { stats: this.stats(), conns: [...this.all].map((conn) => ({ conn, idle: idle.has(conn) })), params: this.params };
  }

  /** Server parameters for a login; opens a first connection if none was ever made. */
  async serverParams(): Promise<Map<string, string>> {
    if (this.params) return this.params;
    try {
      const conn = await this.acquire();
      this.release(conn, 'idle', null);
    } catch (e) {
      // The login path words its own "cannot reach the database": hand it the cause only.
      if (e instanceof PoolError) throw new BackendConnectError(e.detail, e.sqlstate);
      throw e;
    }
    return this.params!;
  }

  /** Promise form of request(), for callers off the hot path: resolves with a clean backend. */
  acquire(): Promise<ServerConn> {
    return new Promise((resolve, reject) => {
      this.request({
        granted: (conn, handover) => {
          if (!handover) return resolve(conn);
          this.settleEagerly(conn, handover, () => resolve(conn), (reason) => reject(new PoolError(`backend reset failed: ${reason}`, '08006')));
        },
        failed: reject,
      });
    });
  }

  /**
   * Asks for a backend: an idle one is granted synchronously, before this returns; otherwise the waiter
   * queues (FIFO) until a backend is released or opened, or fails with 53300 after acquire_timeout_ms.
   */
  request(waiter: PoolWaiter): void {
    if (this.closing) return waiter.failed(new PoolError('the proxy is shutting down', '57P01'));
    const conn = this.takeIdle();
    if (conn) {
      const d = this.deferred.get(conn);
      if (d) {
        this.deferred.delete(conn);
        this.events.reset('pipelined');
      }
      this.events.acquired(0);
      return waiter.granted(conn, d ? d.handover : null);
    }
    if (this.queue.length >= this.cfg.max_waiting) {
      return waiter.failed(
        new PoolError(`pool "${this.name}" has ${this.queue.length} clients waiting already (pool.max_waiting); try again later`, '53300'),
      );
    }
    const now = Date.now();
    this.queue.push({ waiter, enqueuedAt: now, deadline: now + this.cfg.acquire_timeout_ms });
    this.armDeadline();
    this.grow();
  }

  /** The waiter's client went away: it leaves the queue, stops counting toward max_waiting, and gets nothing. */
  cancelRequest(waiter: PoolWaiter): boolean {
    const i = this.queue.findIndex((q) => q.waiter === waiter);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    if (this.queue.length === 0) this.disarmDeadline();
    return true;
  }

  /**
   * Returns a backend with the read-back check its client still owes. It goes through one hand-over:
   * pipelined to the oldest waiter if one waits and the backend is idle, otherwise reset at once. A broken
   * backend (or one whose hand-over fails) is closed.
   */
  release(conn: ServerConn, mode: ReleaseMode, readback: Readback | null): void {
    conn.detach();
    if (conn.closed || mode === 'broken' || this.closing) {
      // A closed backend takes its session state with it: there is nothing left to read back. Said, not skipped silently.
      const why = conn.closed ? 'the backend connection was already closed' : mode === 'broken' ? 'the backend was released broken and is closed' : 'the proxy is shutting down';
      if (readback) this.events.readback?.('skipped', why);
      conn.destroy(mode === 'broken' ? 'closed by the proxy: not in a reusable state' : 'proxy shutting down');
      return;
    }
    if (conn.fresh && !readback) {
      this.makeAvailable(conn);
      return;
    }
    const handover = new Handover(mode === 'in-transaction', readback, this.handoverEvents);
    // A client is waiting right now: hand the backend over with its reset pipelined in front of that client's
    // first message. This saves a round trip per transaction under load; with no one waiting, the reset runs
    // at once so nothing (locks, LISTEN, temp tables) idles in the pool.
    if (handover.pipelinable && conn.cancelsInFlight === 0) {
      const q = this.queue.shift();
      if (q) {
        if (this.queue.length === 0) this.disarmDeadline();
        this.events.reset('pipelined');
        this.grant(q, conn, handover);
        return;
      }
      if (this.cfg.reset_delay_ms > 0) {
        // Nobody waits: the next client to take it pipelines the reset (saving a round trip per
        // transaction); if none does within reset_delay_ms, it runs on its own (runDeferred).
        this.deferred.set(conn, { handover, deadline: Date.now() + this.cfg.reset_delay_ms });
        this.idle.push(conn);
        this.armDeferred();
        return;
      }
    }
    this.settleEagerly(
      conn,
      handover,
      () => {
        this.events.reset('eager');
        this.makeAvailable(conn);
      },
      () => {},
    );
  }

  /**
   * Cancels whatever the backend runs now. The backend is not reset or reused until the server has
   * processed the request, so a late cancel can never hit the next client's query.
   */
  cancel(conn: ServerConn): void {
    if (conn.closed) return;
    conn.cancelStarted();
    void sendCancel(this.backend, conn.pid, conn.secret).finally(() => conn.cancelFinished());
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.idleTimer) clearInterval(this.idleTimer);
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.disarmDeadline();
    for (const q of this.queue.splice(0)) q.waiter.failed(new PoolError('the proxy is shutting down', '57P01'));
    for (const conn of [...this.all]) conn.destroy('proxy shutting down');
  }

  /** Runs the hand-over in its own round trip (after any cancel in flight settles); closes the backend if it fails. */
  private settleEagerly(conn: ServerConn, handover: Handover, ok: () => void, failed: (reason: string) => void): void {
    conn.whenCancelsSettled(() =>
      runEagerHandover(conn, handover, this.cfg.reset_timeout_ms, (r) => {
        if (r.ok) return ok();
        if (!this.closing) this.events.resetFailed(conn, r.reason); // close() destroying a backend mid-reset is no failure
        conn.destroy(`reset failed: ${r.reason}`);
        failed(r.reason);
      }),
    );
  }

  private armDeferred(): void {
    if (this.deferTimer) return;
    const first = this.deferred.values().next();
    if (first.done) return;
    this.deferTimer = setTimeout(() => this.runDeferred(), Math.max(0, first.value.deadline - Date.now()));
  }

  /** Deferred hand-overs past their deadline run now, in their own round trip. */
  private runDeferred(): void {
    this.deferTimer = null;
    const now = Date.now();
    for (const [conn, d] of this.deferred) {
      if (d.deadline > now) break;
      this.deferred.delete(conn);
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      this.settleEagerly(
        conn,
        d.handover,
        () => {
          this.events.reset('eager');
          this.makeAvailable(conn);
        },
        () => {},
      );
    }
    this.armDeferred();
  }

  private takeIdle(): ServerConn | null {
    // LIFO: the most recently used connection is the warmest; older ones age out via idle_timeout.
    for (;;) {
      const conn = this.idle.pop();
      if (!conn) return null;
      if (conn.closed) continue; // never hand out a dead backend
      conn.lastUsedAt = Date.now();
      return conn;
    }
  }

  private makeAvailable(conn: ServerConn): void {
    if (conn.closed) return;
    const q = this.queue.shift();
    if (q) {
      if (this.queue.length === 0) this.disarmDeadline();
      this.grant(q, conn, null);
    } else this.idle.push(conn);
  }

  private grant(q: Queued, conn: ServerConn, handover: Handover | null): void {
    conn.lastUsedAt = Date.now();
    this.events.acquired((conn.lastUsedAt - q.enqueuedAt) / 1000);
    q.waiter.granted(conn, handover);
  }

  private armDeadline(): void {
    if (this.deadlineTimer || this.queue.length === 0) return;
    this.deadlineTimer = setTimeout(() => this.expireWaiters(), Math.max(0, this.queue[0].deadline - Date.now()));
  }

  private disarmDeadline(): void {
    if (!this.deadlineTimer) return;
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
  }

  private expireWaiters(): void {
    this.deadlineTimer = null;
    const now = Date.now();
    const expired: Queued[] = [];
    while (this.queue.length > 0 && this.queue[0].deadline <= now) expired.push(this.queue.shift()!);
    this.armDeadline();
    for (const q of expired) {
      const s = this.stats();
      q.waiter.failed(
        new PoolError(
          `no backend connection free in pool "${this.name}" after waiting ${this.cfg.acquire_timeout_ms} ms ` +
            `(pool.size ${s.size}, all busy, ${s.waiting} other clients waiting); retry, shorten transactions, or raise pool.size`,
          '53300',
        ),
      );
    }
  }

  /** Opens connections while clients wait and the bound allows. */
  private grow(): void {
    while (this.queue.length > this.connecting && this.all.size + this.connecting < this.cfg.size && !this.closing) {
      this.connecting++;
      this.connect(this.backend).then(
        (hs) => {
          this.connecting--;
          this.lastConnectError = null;
          this.params = hs.params;
          const conn = new ServerConn(hs);
          this.all.add(conn);
          conn.onClose((reason) => this.forget(conn, reason));
          this.events.opened(conn);
          if (this.closing) conn.destroy('proxy shutting down');
          else this.makeAvailable(conn);
        },
        (err: Error) => {
          this.connecting--;
          this.lastConnectError = err.message;
          this.events.connectFailed(err);
          // With no connection left to wait for, waiting is pointless: tell the waiters why now.
          if (this.all.size === 0 && this.connecting === 0) {
            const e = err instanceof BackendConnectError ? err : new BackendConnectError(err.message);
            const sqlstate = e.sqlstate === '28000' || e.sqlstate === '28P01' ? '08004' : '08006';
            this.disarmDeadline();
            for (const q of this.queue.splice(0)) q.waiter.failed(new PoolError(`cannot reach the database: ${e.message}`, sqlstate, e.message));
          }
        },
      );
    }
  }

  private forget(conn: ServerConn, reason: string): void {
    this.all.delete(conn);
    const d = this.deferred.get(conn);
    if (d) {
      this.deferred.delete(conn);
      d.handover.abandon(reason);
    }
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.events.closed(conn, reason);
    this.grow();
  }

  private closeIdle(): void {
    const cutoff = Date.now() - this.cfg.idle_timeout_ms;
    for (const conn of [...this.idle]) {
      if (conn.lastUsedAt < cutoff) conn.destroy('idle timeout');
    }
  }
}
