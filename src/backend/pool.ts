// The bounded backend pool: at most `size` server connections ever exist; clients wait FIFO for one,
// and a connection comes back only after the janitor's reset has succeeded on it.
import type { BackendConfig, PoolConfig } from '../config/types.js';
import { BackendConnectError, type Handshake, sendCancel } from './connect.js';
import { resetServer } from './reset.js';
import { ServerConn } from './server.js';

export class PoolError extends Error {
  constructor(
    message: string,
    public readonly sqlstate: string,
  ) {
    super(message);
    this.name = 'PoolError';
  }
}

/** How a client hands a backend back. */
export type ReleaseMode = 'idle' | 'in-transaction' | 'broken';

interface Waiter {
  resolve(conn: ServerConn): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  enqueuedAt: number;
  done: boolean;
}

export interface PoolEvents {
  opened(conn: ServerConn): void;
  closed(conn: ServerConn, reason: string): void;
  acquired(waitSeconds: number): void;
  resetFailed(conn: ServerConn, reason: string): void;
  reset(mode: 'eager' | 'pipelined'): void;
  connectFailed(err: Error): void;
}

export interface PoolStats {
  size: number;
  open: number;
  busy: number;
  idle: number;
  connecting: number;
  waiting: number;
}

export class Pool {
  private readonly idle: ServerConn[] = [];
  private readonly all = new Set<ServerConn>();
  private connecting = 0;
  private readonly queue: Waiter[] = [];
  private waiting = 0;
  private closing = false;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Server ParameterStatus values from the newest handshake, shown to clients at login. */
  private params: Map<string, string> | null = null;
  /** Why the last attempt to open a backend connection failed, or null if it succeeded or none was made (/readyz). */
  lastConnectError: string | null = null;

  constructor(
    readonly name: string,
    private readonly cfg: PoolConfig,
    private readonly backend: BackendConfig,
    private readonly connect: (cfg: BackendConfig) => Promise<Handshake>,
    private readonly events: PoolEvents,
  ) {
    if (cfg.idle_timeout_ms > 0) {
      this.idleTimer = setInterval(() => this.closeIdle(), Math.min(cfg.idle_timeout_ms, 10_000));
      this.idleTimer.unref();
    }
  }

  stats(): PoolStats {
    const open = this.all.size;
    return { size: this.cfg.size, open, busy: open - this.idle.length, idle: this.idle.length, connecting: this.connecting, waiting: this.waiting };
  }

  /** Server parameters for a login; opens a first connection if none was ever made. */
  async serverParams(): Promise<Map<string, string>> {
    if (this.params) return this.params;
    const conn = await this.acquire();
    this.release(conn, 'idle');
    return this.params!;
  }

  /** Resolves with a clean backend; rejects with PoolError 53300 after acquire_timeout_ms. */
  acquire(): Promise<ServerConn> {
    if (this.closing) return Promise.reject(new PoolError('the proxy is shutting down', '57P01'));
    const conn = this.takeIdle();
    if (conn) {
      this.events.acquired(0);
      return Promise.resolve(conn);
    }
    if (this.waiting >= this.cfg.max_waiting) {
      return Promise.reject(
        new PoolError(`pool "${this.name}" has ${this.waiting} clients waiting already (pool.max_waiting); try again later`, '53300'),
      );
    }
    return new Promise<ServerConn>((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        enqueuedAt: Date.now(),
        done: false,
        timer: setTimeout(() => {
          if (w.done) return;
          w.done = true;
          this.waiting--;
          const s = this.stats();
          reject(
            new PoolError(
              `no backend connection free in pool "${this.name}" after waiting ${this.cfg.acquire_timeout_ms} ms ` +
                `(pool.size ${s.size}, all busy, ${s.waiting} other clients waiting); retry, shorten transactions, or raise pool.size`,
              '53300',
            ),
          );
        }, this.cfg.acquire_timeout_ms),
      };
      this.queue.push(w);
      this.waiting++;
      this.grow();
    });
  }

  /**
   * Returns a backend. It is reset (rolled back first if left in a transaction) and only then reused;
   * a broken one, or one whose reset fails, is closed.
   */
  release(conn: ServerConn, mode: ReleaseMode): void {
    conn.detach();
    if (conn.closed) return;
    if (mode === 'broken' || this.closing) {
      conn.destroy(mode === 'broken' ? 'closed by the proxy: not in a reusable state' : 'proxy shutting down');
      return;
    }
    if (conn.fresh) {
      this.makeAvailable(conn);
      return;
    }
    // A client is waiting right now: hand the backend over with its reset still to run, pipelined in front
    // of that client's first message (see PIPELINED_DISCARD_ALL). This saves a round trip per transaction
    // under load; with no one waiting, the reset runs at once so nothing (locks, LISTEN) idles in the pool.
    if (mode === 'idle' && conn.cancelsInFlight === 0) {
      const w = this.nextWaiter();
      if (w) {
        conn.needsReset = true;
        this.events.reset('pipelined');
        this.grant(w, conn);
        return;
      }
    }
    void conn
      .cancelsSettled()
      .then(() => resetServer(conn, mode === 'in-transaction', this.cfg.reset_timeout_ms))
      .then((r) => {
        if (r.ok) {
          this.events.reset('eager');
          this.makeAvailable(conn);
        } else {
          if (!this.closing) this.events.resetFailed(conn, r.reason); // close() destroying a backend mid-reset is no failure
          conn.destroy(`reset failed: ${r.reason}`);
        }
      });
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
    for (const w of this.queue.splice(0)) {
      if (w.done) continue;
      w.done = true;
      clearTimeout(w.timer);
      w.reject(new PoolError('the proxy is shutting down', '57P01'));
    }
    this.waiting = 0;
    for (const conn of [...this.all]) conn.destroy('proxy shutting down');
  }

  private takeIdle(): ServerConn | null {
    // LIFO: the most recently used connection is the warmest; older ones age out via idle_timeout.
    const conn = this.idle.pop();
    if (!conn) return null;
    conn.lastUsedAt = Date.now();
    return conn;
  }

  private makeAvailable(conn: ServerConn): void {
    if (conn.closed) return;
    const w = this.nextWaiter();
    if (w) this.grant(w, conn);
    else this.idle.push(conn);
  }

  /** The oldest waiter still waiting (timed-out ones are skipped lazily). */
  private nextWaiter(): Waiter | null {
    for (;;) {
      const w = this.queue.shift();
      if (!w) return null;
      if (!w.done) return w;
    }
  }

  private grant(w: Waiter, conn: ServerConn): void {
    w.done = true;
    this.waiting--;
    clearTimeout(w.timer);
    conn.lastUsedAt = Date.now();
    this.events.acquired((Date.now() - w.enqueuedAt) / 1000);
    w.resolve(conn);
  }

  /** Opens connections while clients wait and the bound allows. */
  private grow(): void {
    while (this.waiting > this.connecting && this.all.size + this.connecting < this.cfg.size && !this.closing) {
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
            for (const w of this.queue.splice(0)) {
              if (w.done) continue;
              w.done = true;
              clearTimeout(w.timer);
              w.reject(new PoolError(`cannot reach the database: ${e.message}`, e.sqlstate === '28000' || e.sqlstate === '28P01' ? '08004' : '08006'));
            }
            this.waiting = 0;
          }
        },
      );
    }
  }

  private forget(conn: ServerConn, reason: string): void {
    this.all.delete(conn);
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
