// The bounded backend pool: at most `size + overflow` server connections ever exist; clients wait for one
// (round-robin across tenants, FIFO within one: waiters.ts), and a connection comes back only through its
// hand-over (handover.ts): reset at once when nobody waits, or pipelined in front of the next waiting client.
// This class decides who gets a backend and what a released one does next; its parts keep the rest:
// pool-backends.ts (opening, retiring, maintenance), pool-queue.ts (waiters and their deadlines),
// pool-holds.ts (holds per tenant, saturation), deferred-resets.ts (pool.reset_delay_ms), ping.ts (pre_ping).
// Decisions by the SRE's limits (overflow, min_idle, lifetime, saturation, back-off) are in pool-policy.ts.
import type { BackendConfig, PoolConfig } from '../config/types.js';
import { BackendConnectError, type Handshake } from './connect.js';
import { DeferredResets } from './deferred-resets.js';
import { Handover, type ReadbackOutcome } from './handover.js';
import { PoolError, type PoolEvents, type PoolSettings, type PoolSnapshot, type PoolStats, type PoolWaiter, type ReleaseMode } from './pool-types.js';
import type { Readback } from './readback.js';
import { handoverReads, runEagerHandover } from './reset.js';
import { Action } from '../protocol/frames.js';
import { Backends } from './pool-backends.js';
import { Holds } from './pool-holds.js';
import { type Queued, WaitQueue } from './pool-queue.js';
import { PrePing } from './ping.js';
import type { ServerConn } from './server.js';

export class Pool implements PoolSettings {
  private readonly idle: ServerConn[] = [];
  /** Opens, retires and maintains the backends; this class decides who gets them. */
  private readonly backends: Backends;
  /** The clients waiting, served round-robin across tenants (pool.fairness), each until acquire_timeout_ms. */
  private readonly queue: WaitQueue;
  /** Idle backends whose hand-over waits for the next client (pool.reset_delay_ms) or its deadline. */
  private readonly deferred = new DeferredResets((conn, handover) => this.runDeferred(conn, handover));
  private closing = false;
  /** Who holds which backend now, per tenant, and the utilisation alerts. */
  private readonly holds: Holds;
  /** pool.pre_ping: checks an idle backend before its client gets it. */
  private readonly prePing: PrePing;
  private readonly eligible = (tenant: string | null): boolean => this.holds.mayHold(tenant);
  /** Parse bytes kept for re-preparing across all clients of this pool (pool.max_prepared_statement_bytes_total). */
  readonly retainedStatements: { used: number; limit: number };
  private readonly handoverEvents = {
    readback: (outcome: ReadbackOutcome, reason: string | null) => this.events.readback?.(outcome, reason),
  };

  constructor(
    readonly name: string,
    public cfg: PoolConfig,
    backend: BackendConfig,
    connect: (cfg: BackendConfig) => Promise<Handshake>,
    private readonly events: PoolEvents,
  ) {
    this.retainedStatements = { used: 0, limit: cfg.max_prepared_statement_bytes_total };
    this.queue = new WaitQueue(this, (q) => this.timedOut(q));
    this.backends = new Backends(this, this.idle, backend, connect, events, {
      demand: () => this.queue.eligibleCount(this.eligible),
      available: (conn) => this.makeAvailable(conn),
      closed: (conn, reason) => this.forget(conn, reason),
      unreachable: (err) => this.failWaiters(err),
      observeSaturation: () => this.holds.observe(),
    });
    this.holds = new Holds(this, this.backends, (kind, on, u) => this.events.saturation?.(kind, on, u));
    this.prePing = new PrePing(this, this.holds, events, {
      passed: (conn, waiter, tenant, waiting) => this.grantChecked(conn, waiter, tenant, waiting),
      retry: (waiter) => this.request(waiter),
      settle: (conn, handover, ok, failed) => this.settleEagerly(conn, handover, ok, failed),
    });
    this.backends.keepMinIdle();
  }

  /** Why the last attempt to open a backend connection failed, or null if it succeeded or none was made (/readyz). */
  get lastConnectError(): string | null {
    return this.backends.lastConnectError;
  }

  /** The hard cap: backends never exceed it. */
  get cap(): number {
    return this.cfg.size + this.cfg.overflow;
  }

  stats(): PoolStats {
    const open = this.backends.open;
    return {
      size: this.cfg.size,
      cap: this.cap,
      overflowOpen: Math.max(0, open - this.cfg.size),
      held: this.holds.count,
      open,
      busy: open - this.idle.length,
      idle: this.idle.length,
      connecting: this.backends.opening,
      waiting: this.queue.length,
    };
  }

  /**
   * Applies reloaded pool keys (SIGHUP). Growing takes effect at once (waiters are served by new backends);
   * shrinking closes idle backends now and busy ones at their release, never mid-transaction. Timeouts
   * apply to the next acquire and transaction.
   */
  reconfigure(next: PoolConfig): void {
    this.cfg = next;
    this.retainedStatements.limit = next.max_prepared_statement_bytes_total;
    this.queue.setFairness(next.fairness);
    this.queue.setAcquireTimeout(next.acquire_timeout_ms);
    this.backends.reconfigure();
  }

  /** Read-only view for the admin console and metrics: every open backend, whether it is idle, and the server's parameters. */
  snapshot(): PoolSnapshot {
    const idle = new Set(this.idle);
    return { stats: this.stats(), conns: [...this.backends.conns].map((conn) => ({ conn, idle: idle.has(conn) })), params: this.backends.params };
  }

  /** Server parameters for a login; opens a first connection if none was ever made. */
  async serverParams(): Promise<Map<string, string>> {
    if (this.backends.params) return this.backends.params;
    try {
      const conn = await this.acquire();
      this.release(conn, 'idle', null);
    } catch (e) {
      // The pool's own wording and SQLSTATE (a refusal, an unreachable server, a wait that timed out) go to
      // the login as they are; the login words anything else as "cannot reach the database".
      throw e;
    }
    return this.backends.params!;
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
    const tenant = waiter.tenant ?? null;
    // Waiters of the same tenant queue behind each other; one at its cap waits for its own releases.
    const conn = this.holds.mayHold(tenant) ? this.takeIdle() : null;
    if (conn) {
      const handover = this.deferred.take(conn);
      if (this.prePing.needed(conn)) {
        // A deferred reset run on its own is the check: its round trip shows the backend answers.
        return handover ? this.prePing.settle(conn, handover, waiter, tenant) : this.prePing.ping(conn, waiter, tenant);
      }
      // A deferred reset is pipelined in front of this client's first message: a backend that died meanwhile
      // fails in that hand-over, before anything of the client ran, and the session replays the transaction
      // start on another backend (session/retry.ts).
      if (handover) this.events.reset('pipelined');
      conn.lastUsedAt = Date.now();
      this.holds.hold(conn, tenant);
      this.events.acquired(0);
      waiter.granted(conn, handover);
      this.backends.keepMinIdle();
      return;
    }
    // max_waiting bounds clients queued behind busy backends; a client a new backend will serve (below the
    // cap) is not one of them, else max_waiting 0 would stop the pool from ever opening a backend.
    if (this.queue.length >= this.cfg.max_waiting + this.backends.headroom) {
      return waiter.failed(
        new PoolError(`pool "${this.name}" has ${this.queue.length} clients waiting already (pool.max_waiting); try again later`, '53300'),
      );
    }
    this.queue.push(waiter, tenant);
    this.backends.grow();
  }

  /** A pre-pinged backend answered: granted to its client if that still waits, else made available. */
  private grantChecked(conn: ServerConn, waiter: PoolWaiter, tenant: string | null, waiting: boolean): void {
    if (!waiting || this.closing) return this.makeAvailable(conn);
    this.holds.hold(conn, tenant);
    this.events.acquired(0);
    waiter.granted(conn, null);
  }

  /** The waiter's client went away: it leaves the queue, stops counting toward max_waiting, and gets nothing. */
  cancelRequest(waiter: PoolWaiter): boolean {
    // Mid pre-ping: the ping's outcome returns the backend to the pool, to nobody.
    if (this.prePing.withdraw(waiter)) return true;
    return this.queue.withdraw(waiter);
  }

  /**
   * Returns a backend with the read-back check its client still owes. It goes through one hand-over:
   * pipelined to the oldest waiter if one waits and the backend is idle, otherwise reset at once. A broken
   * backend (or one whose hand-over fails) is closed.
   */
  release(conn: ServerConn, mode: ReleaseMode, readback: Readback | null): void {
    conn.detach();
    this.holds.unhold(conn);
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
    if (handover.pipelinable && conn.cancelsInFlight === 0 && !this.backends.mustRetire(conn)) {
      const q = this.queue.next(this.eligible);
      if (q) {
        this.events.reset('pipelined');
        this.grant(q, conn, handover);
        return;
      }
      if (this.cfg.reset_delay_ms > 0) {
        // Nobody waits: the next client to take it pipelines the reset (saving a round trip per
        // transaction); if none does within reset_delay_ms, it runs on its own (runDeferred).
        this.deferred.add(conn, handover, Date.now() + this.cfg.reset_delay_ms);
        this.idle.push(conn);
        return;
      }
    }
    this.resetEagerly(conn, handover);
  }

  /**
   * The client holding `conn` went away while the previous client's read-back, pipelined in front of its hold,
   * was unanswered. The backend is closed (what the client sent may be half written, or still running), but
   * only once that read-back is judged (bounded by reset_timeout_ms): else hanging up, or having an accomplice
   * hang up, would make another client's check vanish as READBACK_SKIPPED. The client's own query is cancelled
   * after the read-back answered, never before (it would fail that read-back: a false READBACK_FAILED).
   */
  closeAfterReadback(conn: ServerConn, handover: Handover, readback: Readback | null): void {
    conn.detach();
    this.holds.unhold(conn);
    if (readback) this.events.readback?.('skipped', 'the client went away during the hand-over in front of its transaction; the backend is closed');
    let finished = false;
    const finish = (why: string): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      offClose();
      handover.abandon(why);
      if (!conn.closed) this.cancel(conn);
      conn.destroy('closed by the proxy: its client went away during the hand-over');
    };
    const timer = setTimeout(() => finish(`the read-back did not answer within ${this.cfg.reset_timeout_ms} ms`), this.cfg.reset_timeout_ms);
    const offClose = conn.onClose((reason) => finish(reason));
    conn.attach({
      classify: (type) => (handoverReads(type) ? Action.Inspect : Action.Drop),
      inspect: (type, body) => {
        const v = handover.answer(type, body);
        if (v.state !== 'more' || !handover.readbackDue) finish('the read-back was judged');
        return false;
      },
      write: () => {},
    });
  }

  /**
   * Cancels whatever the backend runs now. The backend is not reset or reused until the server has
   * processed the request, so a late cancel can never hit the next client's query.
   */
  cancel(conn: ServerConn): void {
    this.backends.cancel(conn);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.deferred.stop();
    this.backends.close();
    this.holds.stop();
    for (const q of this.queue.drain()) q.waiter.failed(new PoolError('the proxy is shutting down', '57P01'));
    this.backends.destroyAll('proxy shutting down');
    // A cancel still on its way must arrive: PostgreSQL does not notice a closed socket while a query runs,
    // so without it the query (and its locks) would outlive the proxy. Bounded by backend.connect_timeout_ms.
    await this.backends.cancelsSettled();
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

  /** Resets the backend in its own round trip, then makes it available (a failed reset closed it). */
  private resetEagerly(conn: ServerConn, handover: Handover): void {
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

  /** A deferred hand-over whose deadline passed: its backend leaves the idle list while it runs on its own. */
  private runDeferred(conn: ServerConn, handover: Handover): void {
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.resetEagerly(conn, handover);
  }

  private takeIdle(): ServerConn | null {
    // LIFO: the most recently used connection is the warmest; older ones age out via idle_timeout.
    for (;;) {
      const conn = this.idle.pop();
      if (!conn) return null;
      if (conn.closed) continue; // never hand out a dead backend
      return conn; // lastUsedAt still says how long it idled: request() decides on pre_ping, then stamps it
    }
  }

  private makeAvailable(conn: ServerConn): void {
    if (conn.closed) return;
    if (this.backends.mustRetire(conn)) {
      // Recycled by age, or above a cap lowered by reload: closed here, at a release, never mid-transaction.
      this.backends.retire(conn, this.backends.open > this.cap ? 'pool shrunk by reload' : 'max_lifetime_ms reached');
      return;
    }
    const q = this.queue.next(this.eligible);
    if (q) {
      this.grant(q, conn, null);
    } else {
      this.idle.push(conn);
      this.holds.observe();
    }
  }

  private grant(q: Queued, conn: ServerConn, handover: Handover | null): void {
    this.holds.hold(conn, q.tenant);
    conn.lastUsedAt = Date.now();
    this.events.acquired((conn.lastUsedAt - q.enqueuedAt) / 1000);
    q.waiter.granted(conn, handover);
  }

  /** A waiter's acquire_timeout_ms passed: 53300, saying how full the pool is and what to change. */
  private timedOut(q: Queued): void {
    const s = this.stats();
    // Below the cap, the wait was for the database, not for other clients: a login that failed (the server
    // refusing: max_connections, a role's CONNECTION LIMIT) or one still under way (a server slow to answer).
    // Raising pool.size would not help then, so the message says what did happen.
    const connectError = this.backends.lastConnectError;
    const belowCap = s.open + s.connecting < s.cap;
    const cause =
      connectError !== null && belowCap
        ? `; opening a new backend connection failed: ${connectError}`
        : s.connecting > 0
          ? `; ${s.connecting} new backend connection(s) still being opened: the database is slow to accept logins (backend.connect_timeout_ms ${this.backends.connectTimeoutMs})`
          : '';
    q.waiter.failed(
      new PoolError(
        `no backend connection free in pool "${this.name}" after waiting ${this.cfg.acquire_timeout_ms} ms ` +
          `(cap ${s.cap} = pool.size ${s.size} + pool.overflow ${s.cap - s.size}, ${s.busy} busy, ${s.waiting} other clients waiting` +
          `${this.cfg.tenant_max_backends > 0 && q.tenant !== null && !this.holds.mayHold(q.tenant) ? `; this tenant holds pool.tenant_max_backends ${this.cfg.tenant_max_backends}` : ''}` +
          `${cause}); ${cause ? 'check the database' : 'retry, shorten transactions, or raise pool.size / pool.overflow'}`,
        '53300',
      ),
    );
  }

  /** A backend closed: what the pool kept of it goes (its deferred hand-over, its client's hold, its idle slot). */
  private forget(conn: ServerConn, reason: string): void {
    this.deferred.abandon(conn, reason);
    this.holds.unhold(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** A connect failed with no backend left to wait for: waiting is pointless, so the waiters are told why now. */
  private failWaiters(err: Error): void {
    const e = err instanceof BackendConnectError ? err : new BackendConnectError(err.message);
    // The server answered with an error (a wrong backend password, max_connections, a role's CONNECTION
    // LIMIT, starting up): it is reached, and its message ("<host> refused the connection: ...") says why.
    // A resource limit keeps its class-53 SQLSTATE, as the server gives it to a direct client.
    const refused = e.sqlstate !== '08006' && e.sqlstate !== '08P01';
    const sqlstate = e.sqlstate === '28000' || e.sqlstate === '28P01' ? '08004' : e.sqlstate.startsWith('53') ? e.sqlstate : '08006';
    const message = refused ? `the database refused a new backend connection: ${e.message}` : `cannot reach the database: ${e.message}`;
    for (const q of this.queue.drain()) q.waiter.failed(new PoolError(message, sqlstate, e.message));
  }
}
