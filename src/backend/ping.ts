// pool.pre_ping: checks an idle backend with an empty simple Query before a client gets it. An empty query
// string is the cheapest round trip the server answers (EmptyQueryResponse, ReadyForQuery): nothing is parsed,
// planned or logged as a statement. The pool owns a PrePing, which runs the check (or, for a backend whose
// reset was deferred, that reset in its place) and leaves what follows to the pool.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
import { Backend, TxStatus } from '../protocol/codes.js';
import { Action } from '../protocol/frames.js';
import type { Handover } from './handover.js';
import type { Holds } from './pool-holds.js';
import type { PoolEvents, PoolSettings, PoolWaiter } from './pool-types.js';
import type { ServerConn } from './server.js';

/** Query message with an empty string: 'Q', int32 length 5, "\0". */
const EMPTY_QUERY = Buffer.from([0x51, 0, 0, 0, 5, 0]);

/** Calls `done(null)` if the backend answered idle within `timeoutMs`, else `done(reason)`; exactly once. */
export function pingBackend(conn: ServerConn, timeoutMs: number, done: (err: string | null) => void): void {
  let finished = false;
  const finish = (err: string | null): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    offClose();
    conn.detach();
    done(err);
  };
  const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
  const offClose = conn.onClose((reason) => finish(reason));
  conn.attach({
    classify: (type) => (type === Backend.ErrorResponse || type === Backend.ReadyForQuery ? Action.Inspect : Action.Drop),
    inspect: (type, body) => {
      if (type === Backend.ErrorResponse) finish('the server answered the ping with an error');
      else finish(body[0] === TxStatus.Idle ? null : `backend not idle after the ping (status ${String.fromCharCode(body[0])})`);
      return false;
    },
    write: () => {},
  });
  if (!conn.closed) conn.write(EMPTY_QUERY);
}

/** What a check needs from its pool, which keeps the decision. */
export interface PrePingOwner {
  /** The backend answered; `waiting` is false if the client withdrew meanwhile. */
  passed(conn: ServerConn, waiter: PoolWaiter, tenant: string | null, waiting: boolean): void;
  /** The backend failed the check and is closed: the client, still waiting, asks again. */
  retry(waiter: PoolWaiter): void;
  /** Runs a hand-over in its own round trip; a failed one closes the backend (the pool's settleEagerly). */
  settle(conn: ServerConn, handover: Handover, ok: () => void, failed: () => void): void;
}

export class PrePing {
  /** Waiters whose idle backend is being pre-pinged: they may still withdraw. */
  private readonly pinging = new Map<PoolWaiter, ServerConn>();

  constructor(
    private readonly pool: PoolSettings,
    private readonly holds: Holds,
    private readonly events: PoolEvents,
    private readonly owner: PrePingOwner,
  ) {}

  /** With pool.pre_ping, a backend idle longer than pre_ping_after_ms is checked before a client gets it. */
  needed(conn: ServerConn): boolean {
    return this.pool.cfg.pre_ping && Date.now() - conn.lastUsedAt >= this.pool.cfg.pre_ping_after_ms;
  }

  /** The waiter's client went away mid-check: the check's outcome returns the backend to the pool, to nobody. */
  withdraw(waiter: PoolWaiter): boolean {
    return this.pinging.delete(waiter);
  }

  /** Pings `conn`; a live one is granted, a dead one closed and the request retried: the client never knows. */
  ping(conn: ServerConn, waiter: PoolWaiter, tenant: string | null): void {
    this.pinging.set(waiter, conn);
    this.holds.hold(conn, tenant);
    pingBackend(conn, Math.min(this.pool.cfg.reset_timeout_ms, 5000), (err) => {
      const stillWaiting = this.pinging.delete(waiter);
      this.holds.unhold(conn);
      if (err !== null) {
        this.events.resetFailed(conn, `pre-ping failed: ${err}`);
        conn.destroy(`pre-ping failed: ${err}`);
        if (stillWaiting) this.owner.retry(waiter);
        return;
      }
      conn.lastUsedAt = Date.now();
      this.owner.passed(conn, waiter, tenant, stillWaiting);
    });
  }

  /** A backend whose reset was deferred: the reset runs on its own first (its round trip is the check); a failed one closes it and the request is retried. */
  settle(conn: ServerConn, handover: Handover, waiter: PoolWaiter, tenant: string | null): void {
    this.pinging.set(waiter, conn);
    this.holds.hold(conn, tenant);
    const settled = (): boolean => {
      const stillWaiting = this.pinging.delete(waiter);
      this.holds.unhold(conn);
      return stillWaiting;
    };
    this.owner.settle(
      conn,
      handover,
      () => {
        this.events.reset('eager');
        conn.lastUsedAt = Date.now();
        this.owner.passed(conn, waiter, tenant, settled());
      },
      () => {
        if (settled()) this.owner.retry(waiter);
      },
    );
  }
}
