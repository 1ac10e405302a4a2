// A session's three clocks (issue 12): pool.query_timeout_ms (a query running longer is cancelled, 57014),
// pool.idle_in_transaction_timeout_ms (a client idle inside a transaction loses it: FATAL 25P03, the backend
// rolled back and reset) and listen.client_idle_timeout_ms (a client idle outside a transaction is
// disconnected: FATAL 57P05). The SQLSTATEs are the server's own for the same situations
// (statement_timeout, idle_in_transaction_session_timeout, idle_session_timeout), so drivers already handle them.
// Limits are read when a clock starts, so a reloaded value applies from the next transaction on.
import { decodeErrorFields } from '../protocol/decode.js';
import { errorResponseFromFields } from '../protocol/encode.js';

export interface TimeoutLimits {
  queryMs(): number;
  idleInTransactionMs(): number;
  clientIdleMs(): number;
}

export interface TimeoutActions {
  /** Cancel the query running on the held backend (a CancelRequest to the server). */
  cancelQuery(): void;
  /** FATAL to the client and end the session (the bridge rolls back and resets a quiet backend). */
  terminate(code: string, message: string, hint: string): void;
}

export class SessionTimeouts {
  private queryTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  /** A cancel this clock sent: the server's 57014 answer is reworded to name the key. */
  private cancelledMs = 0;

  constructor(
    private readonly limits: TimeoutLimits,
    private readonly act: TimeoutActions,
  ) {}

  /** A Query or Sync went to the server and no query clock runs: start one. */
  queryStarted(): void {
    this.stopIdle();
    if (this.queryTimer) return;
    const ms = this.limits.queryMs();
    if (ms <= 0) return;
    this.queryTimer = setTimeout(() => {
      this.queryTimer = null;
      this.cancelledMs = ms;
      this.act.cancelQuery();
    }, ms);
  }

  /** ReadyForQuery: `pending` sync points still due; `inTransaction` from its status; `held` a backend. */
  ready(pending: number, inTransaction: boolean): void {
    this.stopQuery();
    if (pending > 0) return this.queryStarted();
    this.cancelledMs = 0; // the cancelled query's error (if any) came before this ReadyForQuery
    if (inTransaction) this.startIdle(this.limits.idleInTransactionMs(), () =>
      this.act.terminate('25P03', `terminating connection due to idle-in-transaction timeout (pool.idle_in_transaction_timeout_ms = ${this.limits.idleInTransactionMs()} ms); the transaction was rolled back`, 'Commit or roll back promptly; do not hold a transaction open while waiting on something else.'),
    );
    else this.clientIdle();
  }

  /** The client is outside a transaction with nothing pending. */
  clientIdle(): void {
    const ms = this.limits.clientIdleMs();
    this.startIdle(ms, () =>
      this.act.terminate('57P05', `terminating connection due to client idle timeout (listen.client_idle_timeout_ms = ${ms} ms)`, 'Reconnect; configure your client pool to close idle connections sooner.'),
    );
  }

  /** Any client bytes: the client is not idle. */
  clientActive(): void {
    this.stopIdle();
  }

  /**
   * An ErrorResponse for the client: if it is the 57014 of a cancel this clock sent, the message says which
   * key cancelled it (the server's own text says "due to user request"). Returns the replacement, or null.
   */
  rewrite(body: Buffer): Buffer | null {
    if (this.cancelledMs === 0) return null;
    const f = decodeErrorFields(body);
    if (f.C !== '57014') return null;
    const ms = this.cancelledMs;
    this.cancelledMs = 0;
    return errorResponseFromFields({
      ...f,
      M: `canceling statement due to query timeout (pool.query_timeout_ms = ${ms} ms)`,
      H: 'Make the query faster, or raise pool.query_timeout_ms (statement_timeout on the server applies as well).',
    } as Record<string, string>);
  }

  stop(): void {
    this.stopQuery();
    this.stopIdle();
  }

  private startIdle(ms: number, fire: () => void): void {
    this.stopIdle();
    if (ms <= 0) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      fire();
    }, ms);
    this.idleTimer.unref();
  }

  private stopQuery(): void {
    if (this.queryTimer) clearTimeout(this.queryTimer);
    this.queryTimer = null;
  }

  private stopIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}
