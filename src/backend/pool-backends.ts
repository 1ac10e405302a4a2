// The pool's open backends: opened within the cap (backing off while the server is unreachable), retired politely, and kept to the limits.
import type { BackendConfig } from '../config/types.js';
import { type Handshake, sendCancel } from './connect.js';
import { Backoff, idleToClose, recycleAt } from './pool-policy.js';
import type { PoolEvents, PoolSettings } from './pool-types.js';
import { ServerConn } from './server.js';

/** How long a retired backend's server may take to close the socket after Terminate before it is cut. */
const RETIRE_WAIT_MS = 2000;

/** What the backends need from their pool, which keeps every grant and release decision. */
export interface BackendsOwner {
  /** How many waiting clients a new backend could serve now (pool.tenant_max_backends applied). */
  demand(): number;
  /** A backend just opened: granted to a waiter or made idle. */
  available(conn: ServerConn): void;
  /** A backend closed: the pool lets go of what it kept of it (a deferred hand-over, its client's hold, its idle slot). */
  closed(conn: ServerConn, reason: string): void;
  /** A connect failed with no backend open or opening: waiting is pointless, so the waiters are told why now. */
  unreachable(err: Error): void;
  /** Maintenance changed what is open: utilisation is looked at again (POOL_SATURATED / POOL_RECOVERED). */
  observeSaturation(): void;
}

export class Backends {
  private readonly all = new Set<ServerConn>();
  private connecting = 0;
  /** Backends sent Terminate whose server process has not closed the socket yet: still counted in the cap. */
  private retiring = 0;
  /** When each backend is due for recycling (max_lifetime_ms with jitter). */
  private readonly recycleDue = new WeakMap<ServerConn, number>();
  private readonly backoff = new Backoff();
  private retryTimer: NodeJS.Timeout | null = null;
  private maintenanceTimer: NodeJS.Timeout | null = null;
  private closing = false;
  /** CancelRequests on their way to the server; the pool's close() waits for them. */
  private readonly cancelsSent = new Set<Promise<void>>();
  private newestParams: Map<string, string> | null = null;
  private connectError: string | null = null;

  /**
   * @param idle the pool's idle backends (read here, changed by the pool only)
   */
  constructor(
    private readonly pool: PoolSettings,
    private readonly idle: readonly ServerConn[],
    private readonly backend: BackendConfig,
    private readonly connect: (cfg: BackendConfig) => Promise<Handshake>,
    private readonly events: PoolEvents,
    private readonly owner: BackendsOwner,
  ) {
    this.armMaintenance();
  }

  /** How many backends are open, idle or held. */
  get open(): number {
    return this.all.size;
  }

  /** Every open backend, idle or held. */
  get conns(): ReadonlySet<ServerConn> {
    return this.all;
  }

  /** Connects started and not finished yet. */
  get opening(): number {
    return this.connecting;
  }

  /** Server ParameterStatus values from the newest handshake, shown to clients at login. */
  get params(): Map<string, string> | null {
    return this.newestParams;
  }

  /** Why the last attempt to open a backend connection failed, or null if it succeeded or none was made (/readyz). */
  get lastConnectError(): string | null {
    return this.connectError;
  }

  /** Backends that may still be opened (or are being opened) under the cap: waiters they will serve are not queued behind busy ones. */
  get headroom(): number {
    return Math.max(0, this.pool.cap - this.all.size - this.retiring);
  }

  /** backend.connect_timeout_ms, for messages about a login still under way. */
  get connectTimeoutMs(): number {
    return this.backend.connect_timeout_ms;
  }

  /** Applies reloaded pool keys: the maintenance period, then its decisions at once, then growth for the waiters. */
  reconfigure(): void {
    this.armMaintenance();
    this.maintain();
    this.grow();
  }

  /** Past its recycling age, or more backends open than the (reloaded) cap allows. */
  mustRetire(conn: ServerConn): boolean {
    return this.all.size > this.pool.cap || Date.now() >= (this.recycleDue.get(conn) ?? Infinity);
  }

  /** Opens connections while clients that may be served wait, and the cap allows. */
  grow(): void {
    while (this.owner.demand() > this.connecting && this.all.size + this.connecting + this.retiring < this.pool.cap && this.openOne());
  }

  /** Keeps min_idle backends ready ahead of demand (steady ones only: never into overflow). */
  keepMinIdle(): void {
    while (this.idle.length + this.connecting < this.pool.cfg.min_idle && this.all.size + this.connecting + this.retiring < this.pool.cfg.size && this.openOne());
  }

  /**
   * Closes an idle backend the limits retire (age, overflow, idle, shrink) politely, and keeps counting it
   * against the cap until the server has closed the socket: only then is its process (and its
   * pg_stat_activity entry) gone, so a replacement never makes PostgreSQL see more than the cap.
   */
  retire(conn: ServerConn, reason: string): void {
    if (conn.closed) return;
    this.retiring++;
    const sock = conn.socket;
    const timer = setTimeout(() => sock.destroy(), RETIRE_WAIT_MS);
    timer.unref();
    sock.once('close', () => {
      clearTimeout(timer);
      this.retiring--;
      this.grow();
      this.keepMinIdle();
    });
    conn.terminate(reason);
  }

  /** Sends a CancelRequest for what `conn` runs now; the backend is not reset or reused until the server processed it. */
  cancel(conn: ServerConn): void {
    if (conn.closed) return;
    conn.cancelStarted();
    const sent = sendCancel(this.backend, conn.pid, conn.secret).finally(() => {
      conn.cancelFinished();
      this.cancelsSent.delete(sent);
    });
    this.cancelsSent.add(sent);
  }

  /** Settles once every CancelRequest sent so far has (bounded by backend.connect_timeout_ms). */
  cancelsSettled(): Promise<unknown> {
    return Promise.allSettled([...this.cancelsSent]);
  }

  /** Shutdown: nothing opens any more and the timers stop (destroyAll() closes what is open). */
  close(): void {
    this.closing = true;
    if (this.maintenanceTimer) clearInterval(this.maintenanceTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  destroyAll(reason: string): void {
    for (const conn of [...this.all]) conn.destroy(reason);
  }

  /** Starts one connect unless backing off after failures (then retries when the back-off ends). False: not started. */
  private openOne(): boolean {
    if (this.closing) return false;
    const wait = this.backoff.waitMs(Date.now());
    if (wait > 0) {
      if (!this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.grow();
          this.keepMinIdle();
        }, wait);
        this.retryTimer.unref();
      }
      return false;
    }
    this.connecting++;
    this.connect(this.backend).then(
      (hs) => {
        this.connecting--;
        this.connectError = null;
        if (this.backoff.down) this.events.reachability?.(true, null, 0);
        this.backoff.succeeded();
        this.newestParams = hs.params;
        const conn = new ServerConn(hs);
        this.all.add(conn);
        this.recycleDue.set(conn, recycleAt(Date.now(), this.pool.cfg.max_lifetime_ms));
        conn.onClose((reason) => this.forget(conn, reason));
        this.events.opened(conn);
        if (this.closing) conn.destroy('proxy shutting down');
        else this.owner.available(conn);
      },
      (err: Error) => {
        this.connecting--;
        this.connectError = err.message;
        const wasDown = this.backoff.down;
        const retryIn = this.backoff.failed(Date.now());
        if (!wasDown) this.events.reachability?.(false, err.message, retryIn);
        this.events.connectFailed(err);
        // With no connection left to wait for, waiting is pointless: tell the waiters why now.
        if (this.all.size === 0 && this.connecting === 0) this.owner.unreachable(err);
        else this.grow(); // arms the retry timer for the waiters still there
      },
    );
    return true;
  }

  private forget(conn: ServerConn, reason: string): void {
    this.all.delete(conn);
    this.owner.closed(conn, reason);
    this.events.closed(conn, reason);
    this.grow();
    this.keepMinIdle();
  }

  /** Runs the limits' periodic decisions: idle, overflow and aged backends closed; min_idle kept. */
  private maintain(): void {
    if (this.closing) return;
    const now = Date.now();
    for (const conn of idleToClose(this.idle, this.all.size, this.pool.cfg, now)) this.retire(conn, this.all.size > this.pool.cfg.size ? 'overflow idle timeout' : 'idle timeout');
    // (destroy() tells forget() synchronously, so all.size falls as we go.)
    for (const conn of [...this.idle]) {
      if (this.all.size > this.pool.cap) this.retire(conn, 'pool shrunk by reload');
      else if (now >= (this.recycleDue.get(conn) ?? Infinity)) this.retire(conn, 'max_lifetime_ms reached');
    }
    this.owner.observeSaturation();
    this.keepMinIdle();
  }

  /** One timer for maintain(), as often as the shortest of the limits it enforces needs (100 ms to 10 s). */
  private armMaintenance(): void {
    if (this.maintenanceTimer) clearInterval(this.maintenanceTimer);
    const c = this.pool.cfg;
    const periods = [c.overflow > 0 ? c.overflow_idle_ms : 0, c.idle_timeout_ms, c.max_lifetime_ms / 10, c.min_idle > 0 ? 1000 : 0].filter((p) => p > 0);
    const every = Math.max(100, Math.min(10_000, ...periods.map((p) => p / 2)));
    this.maintenanceTimer = setInterval(() => this.maintain(), every);
    this.maintenanceTimer.unref();
  }
}
