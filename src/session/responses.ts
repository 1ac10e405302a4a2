// The server → client direction of a session: swallows the context prefix's answers (and fails closed on
// its errors), hides the ParseComplete of statements the proxy prepared again, explains pooling errors,
// keeps the client's ParameterStatus view true, and hands each ReadyForQuery to the session.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
import type net from 'node:net';
import type { ServerConn } from '../backend/server.js';
import { Backend, TxStatus } from '../protocol/codes.js';
import { decodeErrorFields, decodeParameterStatus } from '../protocol/decode.js';
import { parameterStatus } from '../protocol/encode.js';
import { Action, type FrameSink } from '../protocol/frames.js';
import { checkReadback, dataRowFields, type Readback } from '../backend/readback.js';
import type { GuardHook } from './guard-hook.js';
import { listenRefusal, statementErrorHint } from './server-messages.js';
import type { StatementCache } from './statements.js';
import { TRACKED_REPORTED, type TenantContext } from './tenant-context.js';

/** What the responses need from their session. */
export interface ResponseOwner {
  /** A ReadyForQuery after the prefix; returns true if it is to be forwarded. */
  readyForQuery(status: number): boolean;
  /** The prefix failed: the pipelined DISCARD ALL ('reset') or the tenant context ('context'). */
  prefixFailed(kind: 'reset' | 'context', reason: string, sqlstate: string | undefined): void;
  /** The sync segment the server is working through (an error skips the rest of it). */
  readonly currentSegment: number;
  pauseServer(): void;
  /** An ErrorResponse from the server is on its way to the client (counted by SQLSTATE class). */
  serverError?(body: Buffer): void;
}

export class ServerResponses implements FrameSink {
  /** CommandCompletes of the prefix still to come; while > 0 everything from the server is the prefix's. */
  private prefixLeft = 0;
  /** The prefix starts with the previous client's DISCARD ALL (backend handed over under load). */
  private resetInPrefix = false;
  /** CommandCompletes of the context part of this hold's prefix (0 for a login with no context). */
  private contextCommands = 0;
  /** The previous owner's read-back check, answered first in this prefix (pipelined handoff only). */
  private readback: Readback | null = null;
  private server: ServerConn | null = null;

  constructor(
    private readonly client: net.Socket,
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
  startHold(server: ServerConn, resetInPrefix: boolean, readback: Readback | null): void {
    this.server = server;
    this.resetInPrefix = resetInPrefix;
    this.readback = readback;
    this.contextCommands = this.context.commands;
    this.prefixLeft = this.contextCommands + (resetInPrefix ? 1 : 0);
  }

  endHold(): void {
    this.server = null;
    this.prefixLeft = 0;
  }

  /** The prefix's answers have not all arrived yet. */
  get inPrefix(): boolean {
    return this.prefixLeft > 0 || this.readback !== null;
  }

  classify(type: number): Action {
    if (this.prefixLeft > 0 || this.readback) return Action.Inspect;
    switch (type) {
      case Backend.ParseComplete:
        return this.statements.parseComplete() ? Action.Pass : Action.Drop;
      case Backend.ReadyForQuery:
      case Backend.ParameterStatus:
      case Backend.ErrorResponse:
        return Action.Inspect;
      case Backend.CommandComplete:
        return this.mode === 'transaction' ? Action.Inspect : Action.Pass;
      default:
        return Action.Pass;
    }
  }

  inspect(type: number, body: Buffer): boolean {
    if (this.readback) return this.readbackMessage(type, body);
    if (this.prefixLeft > 0) return this.prefixMessage(type, body);
    switch (type) {
      case Backend.ReadyForQuery:
        if (body[0] === TxStatus.Idle && this.mode === 'transaction' && this.server) this.settleSessionSettings(this.server);
        return this.owner.readyForQuery(body[0]);
      case Backend.ParameterStatus: {
        const [name, value] = decodeParameterStatus(body);
        if (this.shown.get(name) === value) return false;
        this.shown.set(name, value);
        return true;
      }
      case Backend.ErrorResponse:
        this.owner.serverError?.(body);
        this.statements.error(this.owner.currentSegment);
        return this.replace(this.guard?.rewrite(body) ?? statementErrorHint(body));
      default:
        return this.replace(listenRefusal(body));
    }
  }

  write(bytes: Buffer): void {
    if (!this.client.write(bytes)) this.owner.pauseServer();
  }

  begin(): void {
    this.client.cork();
  }

  end(): void {
    this.client.uncork();
  }

  /** Sends `replacement` instead of the message being inspected, if there is one. */
  private replace(replacement: Buffer | null): boolean {
    if (!replacement) return true;
    this.client.write(replacement);
    return false;
  }

  /**
   * The previous owner's read-back, a simple Query ahead of the pipeline (DISCARD ALL must stay the first
   * statement of its pipeline). Its answers end with its own ReadyForQuery. A simple Query that fails does
   * not make the server skip what follows, so an error here is reported, never turned into a refusal.
   */
  private readbackMessage(type: number, body: Buffer): boolean {
    const rb = this.readback!;
    if (type === Backend.DataRow) checkReadback(rb, dataRowFields(body));
    else if (type === Backend.ErrorResponse) rb.failed(decodeErrorFields(body).M ?? 'unknown error');
    else if (type === Backend.ReadyForQuery) this.readback = null;
    return false;
  }

  /** Swallows the prefix's answers; an error there means the context is not set: fail closed. */
  private prefixMessage(type: number, body: Buffer): boolean {
    if (type === Backend.CommandComplete) {
      this.prefixLeft--;
    } else if (type === Backend.ErrorResponse) {
      const f = decodeErrorFields(body);
      const reason = `${f.C ?? ''} ${f.M ?? 'unknown error'}`.trim();
      const inReset = this.resetInPrefix && this.prefixLeft > this.contextCommands;
      this.prefixLeft = 0;
      this.owner.prefixFailed(inReset ? 'reset' : 'context', reason, f.C);
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
