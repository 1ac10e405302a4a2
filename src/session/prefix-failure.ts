// When what the proxy wrote in front of a transaction fails (the hand-over's reset, the tenant context): the client's statements are retried elsewhere or refused, never run.
import type { Logger } from 'pino';
import { errorResponse, readyForQuery } from '../protocol/encode.js';
import type { FrameScanner } from '../protocol/frames.js';
import type { WriteBatch } from '../util/write-batch.js';
import type { ClientSink } from './client-sink.js';
import { endsConnection, type FirstFlight } from './retry.js';
import type { SessionHooks } from './session-options.js';

/** What the failure handling needs from its session. */
export interface PrefixFailureOwner {
  /** Gives the backend back as broken (closed, never reused); the session holds none after. */
  discardBackend(): void;
  /** Starts the transaction again on another backend, `bytes` being the client's first. */
  startAgain(bytes: Buffer): void;
  /** The client gave this setting itself (startup parameters, `options`, or a SET it made): lowercase name. */
  clientSetting(name: string): boolean;
  /** FATAL to the client; the session ends (its backend is closed, the prefix being unanswered). */
  fatal(fields: { code: string; message: string; hint?: string }): void;
}

/** The setting a server error names (`invalid value for parameter "TimeZone": …`), lowercase; null if none. */
export function settingNamed(message: string): string | null {
  const m = /parameter "([^"]+)"/.exec(message);
  return m ? m[1].toLowerCase() : null;
}

export class PrefixFailure {
  /**
   * @param scanner the client's frame scanner (whether a message is half read)
   * @param out every write to the client
   */
  constructor(
    private readonly owner: PrefixFailureOwner,
    private readonly sink: ClientSink,
    private readonly scanner: FrameScanner,
    private readonly firstFlight: FirstFlight,
    private readonly out: WriteBatch,
    private readonly log: Logger,
    private readonly hooks: SessionHooks,
  ) {}

  /** The prefix failed: the pipelined hand-over ('reset') or the tenant context ('context'). */
  failed(kind: 'reset' | 'context', reason: string, sqlstate: string | undefined): void {
    // A failed hand-over is the previous client's doing (e.g. DISCARD ALL timed out under its settings):
    // the next client's transaction is retried on another backend, since none of it ran.
    const again = this.firstFlight.take(sqlstate, this.scanner.atBoundary, kind === 'reset');
    // A reset that failed with an ERROR is a failed reset, retried or not (a backend that ended is not).
    if (kind === 'reset' && !(again && endsConnection(sqlstate))) this.resetFailed(reason, again !== null);
    if (again) return this.retryOnAnotherBackend(again, reason);
    if (kind === 'context') return this.failContext(reason, sqlstate);
    this.refuseInFlight(
      errorResponse({
        code: '08006',
        message: `the pooled database connection could not be reset (${reason}); the statement was not run`,
        hint: 'Retry the transaction; it will get another connection.',
      }),
    );
  }

  /** The pipelined DISCARD ALL failed: counted and logged; the backend is closed and nothing of this client ran on it. */
  private resetFailed(reason: string, retried: boolean): void {
    this.hooks.resetFailed(reason);
    this.log.error(
      { event: 'RESET_FAILED', reason },
      `backend reset failed; connection closed, ${retried ? 'the transaction retried on another backend' : 'client statement not run'}`,
    );
  }

  /**
   * The backend ended before any of the client's statements ran (see retry.ts): it is discarded and the
   * same bytes go to another backend, as if the client had just sent them. The client sees nothing.
   */
  private retryOnAnotherBackend(bytes: Buffer, reason: string): void {
    this.log.info({ event: 'BACKEND_RETRY', reason }, 'backend ended before the transaction ran; retried on another backend');
    this.sink.discardPending();
    this.owner.discardBackend();
    this.owner.startAgain(bytes);
  }

  private failContext(reason: string, sqlstate: string | undefined): void {
    // A value the client gave itself (e.g. options -c TimeZone=Not/AZone) that the server refuses: the
    // client's error, as the server's FATAL at login would be, not the proxy's. The client is told once and
    // disconnected, instead of failing every statement and costing a backend each time.
    const message = sqlstate && reason.startsWith(`${sqlstate} `) ? reason.slice(sqlstate.length + 1) : reason;
    const setting = settingNamed(message);
    if (setting !== null && this.owner.clientSetting(setting)) {
      this.log.warn({ event: 'CLIENT_SETTING_REFUSED', setting, reason }, 'a session setting the client gave was refused by the server; client disconnected');
      // The server sits in the prefix's aborted transaction, skipping to a Sync: the backend is closed here,
      // whatever the client's own messages would say about what it still owes.
      this.sink.discardPending();
      this.owner.discardBackend();
      this.owner.fatal({
        code: sqlstate && sqlstate !== '' ? sqlstate : '22023',
        message,
        hint: 'The value comes from this connection\'s own settings (startup parameters, options -c / PGOPTIONS, or a SET it made): fix it and reconnect.',
      });
      return;
    }
    this.hooks.contextFailed(reason);
    this.log.error({ event: 'CONTEXT_FAILED', reason }, 'tenant context could not be set; client statement not run');
    this.refuseInFlight(
      errorResponse({
        code: sqlstate && sqlstate !== '' ? sqlstate : '08006',
        message: `tenant context could not be set, so the statement was not run: ${reason}`,
        hint: 'This is a proxy or database configuration problem; the backend connection was discarded.',
      }),
    );
  }

  /** Discards the backend and answers every sync point already sent to it with `err` (then ReadyForQuery). */
  private refuseInFlight(err: Buffer): void {
    const trailing = this.sink.unsynced || !this.scanner.atBoundary;
    const groups = this.sink.discardPending();
    this.owner.discardBackend();
    for (let i = 0; i < groups; i++) this.out.write(Buffer.concat([err, readyForQuery('I')]));
    if (trailing) {
      this.out.write(err);
      this.sink.rejectUntilSync();
    }
  }
}
