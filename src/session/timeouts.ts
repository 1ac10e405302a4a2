// A session's three clocks (issue 12): pool.query_timeout_ms (a query running longer is cancelled, 57014),
// pool.idle_in_transaction_timeout_ms (a client idle inside a transaction loses it: FATAL 25P03, the backend
// rolled back and reset) and listen.client_idle_timeout_ms (a client idle outside a transaction is
// disconnected: FATAL 57P05). The SQLSTATEs are the server's own for the same situations
// (statement_timeout, idle_in_transaction_session_timeout, idle_session_timeout), so drivers already handle them.
// Limits are read when a clock starts, so a reloaded value applies from the next transaction on.
import { decodeErrorFields } from '../protocol/decode.js';
import { errorResponseFromFields } from '../protocol/encode.js';
import { LazyTimer } from './lazy-timer.js';

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
  private readonly query: LazyTimer;
  private readonly idle: LazyTimer;
  /** What the idle clock is for while it runs, and its limit then (for the message). */
  private idleKind: 'transaction' | 'client' = 'client';
  private idleMs = 0;
  private queryMs = 0;
  /** A cancel this clock sent: the server's 57014 answer is reworded to name the key. */
  private cancelledMs = 0;

  constructor(
    private readonly limits: TimeoutLimits,
    private readonly act: TimeoutActions,
  ) {
    this.query = new LazyTimer(() => {
      this.cancelledMs = this.queryMs;
      this.act.cancelQuery();
    }, false);
    this.idle = new LazyTimer(() => {
      if (this.idleKind === 'transaction') {
        this.act.terminate('25P03', `terminating connection due to idle-in-transaction timeout (pool.idle_in_transaction_timeout_ms = ${this.idleMs} ms); the transaction was rolled back`, 'Commit or roll back promptly; do not hold a transaction open while waiting on something else.');
      } else {
        this.act.terminate('57P05', `terminating connection due to client idle timeout (listen.client_idle_timeout_ms = ${this.idleMs} ms)`, 'Reconnect; configure your client pool to close idle connections sooner.');
      }
    }, true);
  }

  /** A Query or Sync went to the server and no query clock runs: start one. */
  queryStarted(): void {
    this.idle.clear();
    if (this.query.isSet) return;
    this.queryMs = this.limits.queryMs();
    this.query.set(this.queryMs);
  }

  /** ReadyForQuery: `pending` sync points still due; `inTransaction` from its status. */
  ready(pending: number, inTransaction: boolean): void {
    this.query.clear();
    if (pending > 0) return this.queryStarted();
    this.cancelledMs = 0; // the cancelled query's error (if any) came before this ReadyForQuery
    if (inTransaction) this.startIdle('transaction', this.limits.idleInTransactionMs());
    else this.clientIdle();
  }

  /** The server waits for the client inside a transaction that no ReadyForQuery has reported (no Sync sent). */
  idleInTransaction(): void {
    this.startIdle('transaction', this.limits.idleInTransactionMs());
  }

  /** The client is outside a transaction with nothing pending. */
  clientIdle(): void {
    this.startIdle('client', this.limits.clientIdleMs());
  }

  /** Any client bytes: the client is not idle. */
  clientActive(): void {
    this.idle.clear();
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
    this.query.stop();
    this.idle.stop();
  }

  private startIdle(kind: 'transaction' | 'client', ms: number): void {
    this.idleKind = kind;
    this.idleMs = ms;
    this.idle.set(ms);
  }
}
