// The server → client direction of a session: feeds a pipelined hand-over's answers to its Handover,
// swallows the context prefix's answers (and fails closed on its errors), drops notifications in
// transaction mode, hides the ParseComplete of statements the proxy prepared again, explains pooling errors,
// keeps the client's ParameterStatus view true, and hands each ReadyForQuery to the session.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
import type { WriteBatch } from '../util/write-batch.js';
import type { ServerConn } from '../backend/server.js';
import { Backend, TxStatus } from '../protocol/codes.js';
import { decodeErrorFields, decodeParameterStatus } from '../protocol/decode.js';
import { parameterStatus } from '../protocol/encode.js';
import { Action, type FrameSink } from '../protocol/frames.js';
import type { Handover } from '../backend/handover.js';
import { handoverReads } from '../backend/reset.js';
import type { GuardHook } from './guard-hook.js';
import { LISTEN_COMPLETE_LENGTH, listenRefusal, statementErrorHint } from './server-messages.js';
import type { StatementCache } from './statements.js';
import { TRACKED_REPORTED, type TenantContext } from './tenant-context.js';

const TRACKED_REPORTED_NAMES: readonly string[] = [...TRACKED_REPORTED.values()];

/** What the responses need from their session. */
export interface ResponseOwner {
  /** A ReadyForQuery after the prefix; returns true if it is to be forwarded. */
  readyForQuery(status: number): boolean;
  /** The prefix failed: the pipelined hand-over ('reset') or the tenant context ('context'). */
  prefixFailed(kind: 'reset' | 'context', reason: string, sqlstate: string | undefined): void;
  /** The sync segment the server is working through (an error skips the rest of it). */
  readonly currentSegment: number;
  pauseServer(): void;
  /** An ErrorResponse from the server is on its way to the client (counted by SQLSTATE class). */
  serverError?(body: Buffer): void;
  /** The session's own wording of an error (e.g. a query_timeout_ms cancel), or null. */
  rewriteError?(body: Buffer): Buffer | null;
  /** The hand-over and the context prefix of this hold were answered without error. */
  prefixAnswered(): void;
  /** The previous client's read-back in front of this hold was answered (or will never be): see readbackDue. */
  readbackAnswered?(): void;
  /** The server's COPY FROM STDIN ended: completed (CommandComplete) or failed (ErrorResponse). See copy-in.ts. */
  copyInEnded(completed: boolean): void;
  /** The hold holds the client's own session reset: its ReadyForQuery settles nothing (see Session). */
  readonly resettingSession: boolean;
  /** An Execute was answered (CommandComplete, EmptyQueryResponse, PortalSuspended), or `failed`: an ErrorResponse. */
  executeAnswered(failed: boolean): void;
}

export class ServerResponses implements FrameSink {
  /** CommandCompletes of the prefix still to come; while > 0 everything from the server is the prefix's. */
  private prefixLeft = 0;
  /** The pipelined hand-over whose answers come first in this hold (backend handed over under load). */
  private handover: Handover | null = null;
  private server: ServerConn | null = null;
  /** The server is in COPY FROM STDIN (CopyInResponse seen, not yet ended). */
  private copyingIn = false;
  /**
   * The server's reported values of the tracked settings when they were last settled, and whether the client
   * has been shown a ParameterStatus since: if neither changed, settling again would change nothing.
   */
  private settledKey: string | null = null;
  private shownSinceSettle = false;

  constructor(
    /** The client socket's writes, batched per server read. */
    private readonly client: WriteBatch,
    private readonly statements: StatementCache,
    private readonly context: TenantContext,
    /** ParameterStatus values the client has been shown. */
    private readonly shown: Map<string, string>,
    private readonly mode: 'transaction' | 'session',
    private readonly owner: ResponseOwner,
    /** Rewrites the errors of statements the guard replaced. */
    private readonly guard?: GuardHook,
  ) {}

  /** A transaction starts on `server`; its first answers belong to the prefix. */
  startHold(server: ServerConn, handover: Handover | null): void {
    this.server = server;
    this.handover = handover;
    this.prefixLeft = this.context.commands;
  }

  endHold(): void {
    this.server = null;
    this.prefixLeft = 0;
    this.copyingIn = false;
    // The hold ended before the hand-over's answers arrived: the backend is being closed (see Session).
    this.handover?.abandon('the client holding the backend went away before the reset completed');
    this.handover = null;
  }

  /** The previous client's read-back, pipelined in front of this hold, may still be running on the server. */
  get readbackDue(): boolean {
    return this.handover?.readbackDue ?? false;
  }

  /** Takes out the pipelined hand-over if the previous client's read-back in it is still unanswered (see Pool.closeAfterReadback). */
  takeHandoverWithReadbackDue(): Handover | null {
    const h = this.handover;
    if (!h || !h.readbackDue) return null;
    this.handover = null;
    return h;
  }

  /** The prefix's answers have not all arrived yet. */
  get inPrefix(): boolean {
    return this.prefixLeft > 0 || this.handover !== null;
  }

  classify(type: number, length: number): Action {
    if (this.handover) return handoverReads(type) ? Action.Inspect : Action.Drop;
    if (this.prefixLeft > 0) {
      // The prefix's own answers are counted by type at their header: its CommandCompletes end it, an error
      // or a ReadyForQuery is read (see prefixMessage), and the rest (ParseComplete, BindComplete, the
      // set_config row, notices) is dropped unread.
      if (type === Backend.CommandComplete) {
        if (--this.prefixLeft === 0) this.owner.prefixAnswered();
        return Action.Drop;
      }
      return type === Backend.ErrorResponse || type === Backend.ReadyForQuery ? Action.Inspect : Action.Drop;
    }
    switch (type) {
      case Backend.NotificationResponse:
        // In transaction mode no LISTEN outlives its transaction (DISCARD ALL runs UNLISTEN * before reuse),
        // so any notification here was meant for a subscription that is not this client's: never forwarded.
        return this.mode === 'transaction' ? Action.Drop : Action.Pass;
      case Backend.ParseComplete:
        return this.statements.parseComplete() ? Action.Pass : Action.Drop;
      case Backend.CopyInResponse:
        this.copyingIn = true;
        return Action.Pass;
      case Backend.ReadyForQuery:
      case Backend.ParameterStatus:
      case Backend.ErrorResponse:
        return Action.Inspect;
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended:
        this.owner.executeAnswered(false);
        return Action.Pass;
      case Backend.CommandComplete:
        if (this.copyingIn) {
          this.copyingIn = false;
          this.owner.copyInEnded(true);
        }
        this.owner.executeAnswered(false);
        // Only a LISTEN's tag is rewritten; its length alone rules out every other command.
        return this.mode === 'transaction' && length === LISTEN_COMPLETE_LENGTH ? Action.Inspect : Action.Pass;
      default:
        return Action.Pass;
    }
  }

  inspect(type: number, body: Buffer): boolean {
    if (this.handover) return this.handoverMessage(type, body);
    if (this.prefixLeft > 0) return this.prefixMessage(type, body);
    switch (type) {
      case Backend.ReadyForQuery:
        if (body[0] === TxStatus.Idle && this.mode === 'transaction' && this.server && !this.owner.resettingSession) {
          const key = this.server.reportedKey(TRACKED_REPORTED_NAMES);
          if (key !== this.settledKey || this.shownSinceSettle) {
            this.settleSessionSettings(this.server);
            this.settledKey = key;
            this.shownSinceSettle = false;
          }
        }
        return this.owner.readyForQuery(body[0]);
      case Backend.ParameterStatus: {
        const [name, value] = decodeParameterStatus(body);
        if (this.shown.get(name) === value) return false;
        this.shown.set(name, value);
        this.shownSinceSettle = true;
        return true;
      }
      case Backend.ErrorResponse:
        if (this.copyingIn) {
          this.copyingIn = false;
          this.owner.copyInEnded(false);
        }
        this.owner.executeAnswered(true);
        this.owner.serverError?.(body);
        this.statements.error(this.owner.currentSegment);
        return this.replace(this.owner.rewriteError?.(body) ?? this.guard?.rewrite(body) ?? statementErrorHint(body));
      default:
        return this.replace(listenRefusal(body));
    }
  }

  write(bytes: Buffer): void {
    if (!this.client.write(bytes)) this.owner.pauseServer();
  }

  begin(): void {
    this.client.begin();
  }

  end(): void {
    if (!this.client.end()) this.owner.pauseServer();
  }

  /** Sends `replacement` instead of the message being inspected, if there is one. */
  private replace(replacement: Buffer | null): boolean {
    if (!replacement) return true;
    this.client.write(replacement);
    return false;
  }

  /** The pipelined hand-over's answers, judged by the Handover exactly as on the eager path. */
  private handoverMessage(type: number, body: Buffer): boolean {
    const readbackDue = this.handover!.readbackDue;
    const v = this.handover!.answer(type, body);
    if (readbackDue && !(v.state === 'more' && this.handover!.readbackDue)) this.owner.readbackAnswered?.();
    if (v.state === 'done') {
      this.handover = null;
      if (this.prefixLeft === 0) this.owner.prefixAnswered();
    } else if (v.state === 'failed') {
      // The server skips everything up to the client's first Sync, and nothing after it was sent
      // (ClientSink.syncBehindPrefix): nothing of this client ran. Fail closed.
      this.handover = null;
      this.prefixLeft = 0;
      this.owner.prefixFailed('reset', v.reason, v.sqlstate);
    }
    return false;
  }

  /** The prefix's error or early ReadyForQuery (its CommandCompletes are counted in classify): fail closed. */
  private prefixMessage(type: number, body: Buffer): boolean {
    if (type === Backend.ErrorResponse) {
      const f = decodeErrorFields(body);
      const reason = `${f.C ?? ''} ${f.M ?? 'unknown error'}`.trim();
      this.prefixLeft = 0;
      this.owner.prefixFailed('context', reason, f.C);
    } else if (type === Backend.ReadyForQuery) {
      // Only reachable if the server answered a client Sync while skipping after a prefix error.
      this.prefixLeft = 0;
      this.owner.prefixFailed('context', 'server skipped the tenant context', undefined);
    }
    return false;
  }

  /**
   * End of a transaction: keep the client's own changes to reported settings for its next transactions,
   * and show it any value its statements now see that it was not told about (a RESET on a backend that had
   * already reported the default sends no ParameterStatus of its own).
   */
  private settleSessionSettings(server: ServerConn): void {
    this.context.settle(server.reported);
    for (const reported of TRACKED_REPORTED.values()) {
      const value = server.reported.get(reported);
      if (value === undefined || this.shown.get(reported) === value) continue;
      this.shown.set(reported, value);
      this.client.write(parameterStatus(reported, value));
    }
  }
}
