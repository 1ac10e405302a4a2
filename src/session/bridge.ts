// The per-client transaction bridge: holds a backend only while the client is inside a transaction,
// injects the tenant context in front of the client's first message, forwards everything else by frame
// header, and gives the backend back when the server's ReadyForQuery says idle with nothing pending.
// References: https://www.postgresql.org/docs/current/protocol-flow.html
//             https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Pool, ReleaseMode } from '../backend/pool.js';
import { PoolError } from '../backend/pool.js';
import type { ServerConn } from '../backend/server.js';
import { Frontend, TxStatus } from '../protocol/codes.js';
import { errorResponse, type ErrorFields, readyForQuery } from '../protocol/encode.js';
import { Action, type FrameSink, FrameScanner, FrameError } from '../protocol/frames.js';
import { PIPELINED_DISCARD_ALL } from '../backend/reset.js';
import { type Readback, readbackQuery } from '../backend/readback.js';
import type { UserSlots } from '../backend/user-slots.js';
import type { GuardHook } from './guard-hook.js';
import { type ResponseOwner, ServerResponses } from './responses.js';
import { statementName } from './server-messages.js';
import { StatementCache, type StatementLimits } from './statements.js';
import type { TenantContext } from './tenant-context.js';

/** Largest client message forwarded: PostgreSQL itself refuses messages over 1 GB. */
const MAX_CLIENT_FRAME = 0x4000_0000;
/** Largest client Parse/Bind/Describe/Close the bridge reads for its statement name (64 MB). */
const MAX_CLIENT_INSPECT = 64 << 20;

export interface SessionHooks {
  /** A transaction ended on the server (ReadyForQuery 'I'). */
  transactionDone(): void;
  /** The tenant context could not be set; the client's statement did not run. */
  contextFailed(reason: string): void;
  /** The DISCARD ALL pipelined in front of this client failed; the backend was closed. */
  resetFailed(reason: string): void;
  /** No backend could be had (timeout, queue full, database unreachable). */
  acquireFailed(sqlstate: string): void;
  /** The token expired on an open connection; the client is being disconnected. */
  tokenExpired(): void;
  /** The client's tenant was suspended (tenant.deny); the client is being disconnected. */
  tenantSuspended(): void;
  /** The session ended; unregister it. */
  closed(): void;
}

export interface SessionOptions {
  client: net.Socket;
  pool: Pool;
  log: Logger;
  /** The client's tenant context; its prefix is written in front of each transaction. */
  context: TenantContext;
  /** transaction: the backend is released at the end of each transaction; session: when the client leaves. */
  mode: 'transaction' | 'session';
  statementLimits: StatementLimits;
  /** When the client's token expires (epoch ms, clock tolerance included): no transaction starts after it. */
  expiresAtMs: number;
  /** The statement guard for this client's Query and Parse messages (tenant logins; not tenant: none). */
  guard?: GuardHook;
  /** The read-back check for this client's context (tenant.readback_check), if it has one. */
  readback?: Readback;
  /** True while the client's tenant is suspended (tenant.deny): no transaction may start. */
  suspended: () => boolean;
  /** The static user's own cap, taken before the shared pool. */
  userSlots?: UserSlots;
  /** ParameterStatus values the client has been shown, to drop repeats caused by the per-transaction context. */
  shownParams: Map<string, string>;
  hooks: SessionHooks;
}

type State = 'idle' | 'acquiring' | 'active' | 'closed';

export class Session implements ResponseOwner {
  private state: State = 'idle';
  private server: ServerConn | null = null;
  private offServerClose: (() => void) | null = null;
  private readonly scanner = new FrameScanner(MAX_CLIENT_FRAME, MAX_CLIENT_INSPECT);
  private readonly statements: StatementCache;
  private readonly responses: ServerResponses;
  /** Client bytes read while waiting for a backend; the socket is paused meanwhile, so this stays small. */
  private stash: Buffer[] = [];
  /** Sync points (Query, Sync, FunctionCall) sent to this backend, and ReadyForQuery answers received. */
  private segSent = 0;
  private segDone = 0;
  /** Extended-protocol messages sent since the last Sync: the server holds state for this client. */
  private unsynced = false;
  /** Dropping client messages until the next sync point, which is then answered ReadyForQuery (like the server after an error). */
  private rejecting = false;
  /** Type of the message being dropped because the guard refuses it whole (0: none); see dropped(). */
  private refusedWhole = 0;
  /** Last transaction status the server reported. */
  private txStatus: number = TxStatus.Idle;
  private clientPaused = false;
  private serverPaused = false;

  constructor(private readonly o: SessionOptions) {
    this.statements = new StatementCache(o.statementLimits);
    this.responses = new ServerResponses(o.client, this.statements, o.context, o.shownParams, o.mode, this, o.guard);
    const { client } = o;
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('drain', () => this.resumeServer());
    client.on('close', () => this.onClientGone());
    client.on('error', () => this.onClientGone());
  }

  /** Bytes that arrived with the login, before the session existed. */
  start(initial: Buffer | null): void {
    if (initial && initial.length > 0) this.onClientData(initial);
  }

  /** True while the client's query runs on a backend: a CancelRequest should reach that backend. */
  get runningOn(): ServerConn | null {
    return this.state === 'active' && (this.pendingSyncs > 0 || this.unsynced) ? this.server : null;
  }

  /** Ends the session from outside (shutdown): FATAL to the client, backend cleaned or closed. */
  terminate(fields: ErrorFields): void {
    if (this.state === 'closed') return;
    this.o.client.end(errorResponse({ ...fields, severity: 'FATAL' }));
    this.onClientGone();
  }

  // ---- client → server ------------------------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    if (this.state === 'acquiring') {
      this.stash.push(chunk);
      return;
    }
    if (this.state === 'closed') return;
    let rest: Buffer | null;
    // Batch what this chunk forwards into one writev; the server socket may change during the chunk.
    const server = this.server;
    server?.socket.cork();
    try {
      rest = this.scanner.feed(chunk, this.clientSink);
    } catch (e) {
      this.fatal({ code: '08P01', message: `invalid message from client: ${(e as FrameError).message}` });
      return;
    } finally {
      server?.socket.uncork();
    }
    if (rest && this.state === 'idle') this.acquire(rest);
  }

  private acquire(first: Buffer): void {
    if (this.refusedAtTransactionStart()) return;
    this.state = 'acquiring';
    this.stash = [first];
    this.pauseClient();
    const slots = this.o.userSlots;
    const acquired = slots
      ? slots.acquire().then(() =>
          this.o.pool.acquire().catch((e: unknown) => {
            slots.release();
            throw e;
          }),
        )
      : this.o.pool.acquire();
    acquired.then(
      (server) => this.onAcquired(server),
      (err: Error) => this.onAcquireFailed(err),
    );
  }

  /**
   * A verified token is checked once at login; a long-lived connection must still stop when it expires.
   * Called at the start of each transaction, before anything of it reaches a backend: if expired, the
   * client gets FATAL 28P01 and is disconnected.
   */
  private refusedAtTransactionStart(): boolean {
    if (this.o.suspended()) {
      this.o.hooks.tenantSuspended();
      this.fatal({ code: '28000', message: 'this tenant is suspended: new transactions are refused' });
      return true;
    }
    if (Date.now() < this.o.expiresAtMs) return false;
    this.o.hooks.tokenExpired();
    this.fatal({ code: '28P01', message: `token expired at ${new Date(this.o.expiresAtMs).toISOString()}; reconnect with a fresh token` });
    return true;
  }

  private onAcquired(server: ServerConn): void {
    if (this.state !== 'acquiring') {
      this.o.userSlots?.release();
      this.o.pool.release(server, 'idle');
      return;
    }
    this.state = 'active';
    this.server = server;
    server.fresh = false;
    server.attach(this.responses);
    this.offServerClose = server.onClose((reason) => this.onServerGone(reason));
    const reset = server.needsReset;
    server.needsReset = false;
    // The previous owner's read-back check rides in front of the pipelined reset (eager resets do their own).
    const readback = reset ? server.readback : null;
    server.readback = null;
    this.responses.startHold(server, reset, readback);
    this.segSent = this.segDone = 0;
    this.statements.newBackend();
    // The reset (if still due), the prefix and the client's first messages leave in one writev.
    server.socket.cork();
    if (readback) server.write(readbackQuery(readback.setting));
    if (reset) server.write(PIPELINED_DISCARD_ALL);
    server.write(this.o.context.prefix);
    this.drainStash();
    server.socket.uncork();
  }

  private onAcquireFailed(err: Error): void {
    if (this.state !== 'acquiring') return;
    this.state = 'idle';
    const pe = err instanceof PoolError ? err : new PoolError(err.message, '08006');
    this.o.hooks.acquireFailed(pe.sqlstate);
    this.o.log.warn({ event: 'ACQUIRE_FAILED', sqlstate: pe.sqlstate, err: pe.message }, 'no backend for client');
    this.o.client.write(errorResponse({ code: pe.sqlstate, message: pe.message }));
    this.rejecting = true;
    this.drainStash();
  }

  private drainStash(): void {
    const chunks = this.stash;
    this.stash = [];
    this.resumeClient();
    for (let i = 0; i < chunks.length; i++) {
      if (this.state === 'acquiring') {
        // A new transaction began inside the stash: keep the rest for when its backend arrives.
        this.stash.push(...chunks.slice(i));
        return;
      }
      this.onClientData(chunks[i]);
    }
  }

  private readonly clientSink: FrameSink = {
    classify: (type, length) => {
      if (this.state === 'closed') return Action.Drop;
      if (type === Frontend.Terminate) {
        queueMicrotask(() => this.onClientGone());
        return Action.Drop;
      }
      if (this.rejecting) {
        if (type === Frontend.Query || type === Frontend.Sync || type === Frontend.FunctionCall) {
          this.rejecting = false;
          this.o.client.write(readyForQuery('I'));
        }
        return Action.Drop;
      }
      if (this.state === 'idle') {
        // Nothing is pending on any backend here, so a lone Sync or Flush can be answered locally.
        if (type === Frontend.Sync) {
          this.o.client.write(readyForQuery('I'));
          return Action.Drop;
        }
        if (type === Frontend.Flush) return Action.Drop;
        return Action.Stall;
      }
      // Session mode keeps the backend, so a new transaction there starts here: check the token first.
      if (this.o.mode === 'session' && this.pendingSyncs === 0 && !this.unsynced && this.txStatus === TxStatus.Idle && this.refusedAtTransactionStart()) {
        return Action.Drop;
      }
      switch (type) {
        case Frontend.Query:
        case Frontend.Sync:
        case Frontend.FunctionCall:
          this.segSent++;
          this.unsynced = false;
          if (type === Frontend.Query) this.statements.simpleQuery();
          return type === Frontend.Sync || !this.o.guard ? Action.Pass : this.screen(type, length);
        case Frontend.Parse:
          this.unsynced = true;
          if (this.o.guard) return this.screen(type, length);
          return length - 4 <= MAX_CLIENT_INSPECT ? Action.Inspect : Action.Pass;
        case Frontend.Bind:
        case Frontend.Describe:
        case Frontend.Close:
          // Their statement names decide whether a statement must be prepared again first. Larger
          // messages pass unread: their statements are usable within the transaction only.
          this.unsynced = true;
          return length - 4 <= MAX_CLIENT_INSPECT ? Action.Inspect : Action.Pass;
        case Frontend.Execute:
          this.unsynced = true;
          return Action.Pass;
        default:
          return Action.Pass; // Flush and COPY messages belong to the sync point already counted.
      }
    },
    dropped: (type, length) => {
      // A message the guard refuses unread: its substitute fails in its place (see guard-hook.ts).
      const refused = this.refusedWhole;
      this.refusedWhole = 0;
      if (refused !== type || !this.o.guard || !this.server) return;
      const substitute = this.o.guard.substitute(type, length);
      if (type === Frontend.FunctionCall) this.statements.simpleQuery(); // its substitute is a simple Query
      // Tracked like the client's own Parse, so the statement bookkeeping stays aligned with the server.
      const inject = type === Frontend.Parse ? this.statementMessage(type, substitute.subarray(5)) : null;
      if (inject) this.server.write(inject);
      this.server.write(substitute);
    },
    inspect: (type, body) => {
      const server = this.server;
      if (!server) return false;
      if (this.o.guard && type === Frontend.FunctionCall) {
        // Only read when tenant.function_call_allow is set: an OID not on it is refused in place.
        const replacement = this.o.guard.functionCall(body);
        if (!replacement) return true;
        this.statements.simpleQuery(); // its substitute is a simple Query
        server.write(replacement);
        return false;
      }
      if (this.o.guard && (type === Frontend.Query || type === Frontend.Parse)) {
        const replacement = type === Frontend.Query ? this.o.guard.query(body) : this.o.guard.parse(body);
        if (replacement) {
          // Tracked like the client's own Parse, so the statement bookkeeping stays aligned with the server.
          const inject = type === Frontend.Parse ? this.statementMessage(type, replacement.subarray(5)) : null;
          if (inject) server.write(inject);
          server.write(replacement);
          return false;
        }
        if (type === Frontend.Query) return true;
      }
      const inject = this.statementMessage(type, body);
      if (inject) server.write(inject);
      return true;
    },
    write: (bytes) => {
      const server = this.server;
      if (!server) return; // backend gone mid-frame: the rest of that frame is dropped
      if (!server.write(bytes)) this.pauseClient(server);
    },
  };

  /** A guarded tenant's Query, Parse or FunctionCall: read by the guard, or refused whole (see dropped()). */
  private screen(type: number, length: number): Action {
    const screen = this.o.guard!.screen(type, length);
    if (screen === 'inspect') return Action.Inspect;
    if (screen === 'pass') return Action.Pass;
    this.refusedWhole = type;
    return Action.Drop;
  }

  /** Tracks the client's prepared statements; returns a Parse to send before this message, or null. */
  private statementMessage(type: number, body: Buffer): Buffer | null {
    const ref = statementName(type, body);
    if (!ref) return null;
    if (ref.kind === 'parse') return this.statements.clientParse(ref.name, body, this.segSent);
    if (ref.kind === 'use') return this.statements.clientUses(ref.name, this.segSent);
    this.statements.clientClose(ref.name);
    return null;
  }

  // ---- the session side of server → client (see responses.ts) -----------------------------------

  get currentSegment(): number {
    return this.segDone;
  }

  prefixFailed(kind: 'reset' | 'context', reason: string, sqlstate: string | undefined): void {
    if (kind === 'reset') this.failReset(reason);
    else this.failContext(reason, sqlstate);
  }

  /** Sync points sent to the backend that it has not answered yet. */
  private get pendingSyncs(): number {
    return this.segSent - this.segDone;
  }

  readyForQuery(status: number): boolean {
    this.txStatus = status;
    this.segDone++;
    if (status === TxStatus.Idle) this.o.hooks.transactionDone();
    if (this.o.mode === 'session') return true;
    if (status !== TxStatus.Idle || this.pendingSyncs > 0 || this.unsynced || !this.scanner.atBoundary) return true;
    // The transaction is over and the server owes this client nothing: hand the backend back.
    this.o.client.write(readyForQuery('I'));
    this.releaseServer('idle');
    return false;
  }

  private failContext(reason: string, sqlstate: string | undefined): void {
    this.o.hooks.contextFailed(reason);
    this.o.log.error({ event: 'CONTEXT_FAILED', reason }, 'tenant context could not be set; client statement not run');
    this.refuseInFlight(
      errorResponse({
        code: sqlstate && sqlstate !== '' ? sqlstate : '08006',
        message: `tenant context could not be set, so the statement was not run: ${reason}`,
        hint: 'This is a proxy or database configuration problem; the backend connection was discarded.',
      }),
    );
  }

  /** The pipelined DISCARD ALL failed: the backend is closed and nothing of this client ran on it. */
  private failReset(reason: string): void {
    this.o.hooks.resetFailed(reason);
    this.o.log.error({ event: 'RESET_FAILED', reason }, 'backend reset failed; connection closed, client statement not run');
    this.refuseInFlight(
      errorResponse({
        code: '08006',
        message: `the pooled database connection could not be reset (${reason}); the statement was not run`,
        hint: 'Retry the transaction; it will get another connection.',
      }),
    );
  }

  /** Discards the backend and answers every sync point already sent to it with `err` (then ReadyForQuery). */
  private refuseInFlight(err: Buffer): void {
    const groups = this.pendingSyncs;
    const trailing = this.unsynced || !this.scanner.atBoundary;
    this.segDone = this.segSent;
    this.unsynced = false;
    this.releaseServer('broken');
    for (let i = 0; i < groups; i++) this.o.client.write(Buffer.concat([err, readyForQuery('I')]));
    if (trailing) {
      this.o.client.write(err);
      this.rejecting = true;
    }
  }

  private releaseServer(mode: ReleaseMode): void {
    const server = this.server;
    if (!server) return;
    this.server = null;
    this.responses.endHold();
    this.offServerClose?.();
    this.offServerClose = null;
    if (this.serverPaused) {
      this.serverPaused = false;
      server.socket.resume();
    }
    if (this.state === 'active') this.state = 'idle';
    this.txStatus = TxStatus.Idle;
    this.resumeClient();
    this.o.userSlots?.release();
    // What this client's context should still be, checked by whoever resets the backend next.
    if (mode !== 'broken' && this.o.readback) server.readback = this.o.readback;
    this.o.pool.release(server, mode);
  }

  private onServerGone(reason: string): void {
    this.server = null;
    this.offServerClose = null;
    this.responses.endHold();
    this.o.userSlots?.release();
    this.o.log.warn({ event: 'BACKEND_LOST', reason }, 'backend connection lost during a transaction');
    this.fatal({ code: '08006', message: `the database connection was lost during the transaction (${reason}); reconnect and retry` });
  }

  // ---- lifecycle and flow control ----------------------------------------------------------------

  private fatal(fields: ErrorFields): void {
    if (this.state === 'closed') return;
    this.o.client.end(errorResponse({ ...fields, severity: 'FATAL' }));
    this.onClientGone();
  }

  private onClientGone(): void {
    if (this.state === 'closed') return;
    const wasActive = this.state === 'active';
    this.state = 'closed';
    this.stash = [];
    if (wasActive && this.server) {
      // Mid-transaction: a quiet backend inside a transaction block is rolled back and reset. One still
      // working for this client is closed, and its query cancelled first: PostgreSQL does not notice a
      // closed socket while a query runs, and would keep its locks until the query ends.
      const quiet = this.pendingSyncs === 0 && !this.unsynced && this.scanner.atBoundary && !this.responses.inPrefix;
      // (Idle and quiet happens in session mode: the client simply left; the backend is reset and reused.)
      if (!quiet) this.o.pool.cancel(this.server);
      this.releaseServer(!quiet ? 'broken' : this.txStatus === TxStatus.Idle ? 'idle' : 'in-transaction');
    }
    this.o.client.destroy();
    this.o.hooks.closed();
  }

  private pauseClient(server?: ServerConn): void {
    if (this.clientPaused) return;
    this.clientPaused = true;
    this.o.client.pause();
    if (server) server.socket.once('drain', () => this.resumeClient());
  }

  private resumeClient(): void {
    if (!this.clientPaused || this.state === 'acquiring') return;
    this.clientPaused = false;
    this.o.client.resume();
  }

  pauseServer(): void {
    if (this.serverPaused || !this.server) return;
    this.serverPaused = true;
    this.server.socket.pause();
  }

  private resumeServer(): void {
    if (!this.serverPaused) return;
    this.serverPaused = false;
    this.server?.socket.resume();
  }
}
