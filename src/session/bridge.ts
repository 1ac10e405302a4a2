// The per-client transaction bridge: holds a backend only while the client is inside a transaction,
// injects the tenant context in front of the client's first message, forwards everything else by frame
// header, and gives the backend back when the server's ReadyForQuery says idle with nothing pending.
// Session owns the client's lifecycle; client-sink.ts and responses.ts handle the two directions, and
// backend-wait.ts, client-flow.ts, prefix-failure.ts and partial-message.ts one concern each.
// References: https://www.postgresql.org/docs/current/protocol-flow.html
//             https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY
import type { Handover } from '../backend/handover.js';
import { PoolError, type ReleaseMode } from '../backend/pool-types.js';
import type { ServerConn } from '../backend/server.js';
import { Frontend, TxStatus } from '../protocol/codes.js';
import { commandComplete, type ErrorFields } from '../protocol/encode.js';
import type { FrameError } from '../protocol/frames.js';
import { type ResponseOwner, ServerResponses } from './responses.js';
import { StatementCache } from './statements.js';
import { FirstFlight } from './retry.js';
import { WriteBatch } from '../util/write-batch.js';
import { SessionTimeouts } from './timeouts.js';
import { ClientFlow } from './client-flow.js';
import { BackendWait } from './backend-wait.js';
import { ClientSink, type ClientSinkOwner, clientScanner, READY_IDLE } from './client-sink.js';
import { PartialMessageWatch } from './partial-message.js';
import { PrefixFailure } from './prefix-failure.js';
import { deallocateTarget, firstWordAt } from './server-messages.js';
import type { SessionOptions } from './session-options.js';

/** What a client is told when the proxy shuts down: the server's own code for an administrator shutdown. */
const SHUTTING_DOWN: ErrorFields = { code: '57P01', message: 'terminating connection: pg-tenant-proxy is shutting down', hint: 'Reconnect; another proxy instance will serve you.' };

type State = 'idle' | 'acquiring' | 'active' | 'closed';

export class Session implements ResponseOwner, ClientSinkOwner {
  private state: State = 'idle';
  private server: ServerConn | null = null;
  private offServerClose: (() => void) | null = null;
  private readonly scanner = clientScanner();
  private readonly statements: StatementCache;
  private readonly responses: ServerResponses;
  /** Every write to the client goes through here: batched while a server read is handled, in order. */
  private readonly out: WriteBatch;
  /** Which socket is paused and why, and the client bytes kept while waiting for a backend. */
  private readonly flow: ClientFlow;
  /** Where the client's messages go, and the sync points they count (client-sink.ts). */
  private readonly sink: ClientSink;
  /** Last transaction status the server reported. */
  private txStatus: number = TxStatus.Idle;
  /** pool.partial_message_timeout_ms for a client holding a backend with a message half sent. */
  private readonly partial: PartialMessageWatch;
  /** Set by drain(): the session ends at its next transaction end. */
  private draining = false;
  /**
   * Transaction mode: the server said idle (ReadyForQuery 'I') but the client kept the backend, because more
   * of its messages were under way (a pipeline, or a Parse sent after its Sync). Its next transaction then
   * starts on this backend without an acquire, so the checks of a transaction start run at its next message.
   */
  private keptPastIdle = false;
  /** Client bytes wait in the stash behind an unanswered prefix (see holdBack). */
  private heldBack = false;
  /** The client's bytes held until the prefix is answered, for the transparent retry (retry.ts). */
  private readonly firstFlight = new FirstFlight();
  /** query, idle-in-transaction and client-idle clocks (timeouts.ts). */
  private readonly timeouts: SessionTimeouts;
  /** What this session waits on while 'acquiring': the gate, its user's slot, then the pool. */
  private readonly wait: BackendWait;
  /** Retry or refusal when the hand-over or tenant context in front of a transaction fails. */
  private readonly prefixFailure: PrefixFailure;
  /** A cancel asked for while the previous client's read-back was unanswered: sent once it is (see cancelOn). */
  private cancelAfterReadback = false;

  constructor(private readonly o: SessionOptions) {
    this.timeouts = new SessionTimeouts(
      {
        queryMs: () => o.pool.cfg.query_timeout_ms,
        idleInTransactionMs: () => o.pool.cfg.idle_in_transaction_timeout_ms,
        clientIdleMs: () => o.clientIdleMs?.() ?? 0,
      },
      {
        cancelQuery: () => this.cancelOn(this.server),
        terminate: (code, message, hint) => {
          this.o.log.warn({ event: code === '25P03' ? 'IDLE_IN_TRANSACTION_TIMEOUT' : 'CLIENT_IDLE_TIMEOUT' }, message);
          this.fatal({ code, message, hint });
        },
      },
    );
    this.wait = new BackendWait(o.pool, o.userSlots, o.gate, o.tenant ?? null, {
      granted: (server, handover) => this.onAcquired(server, handover),
      failed: (err) => this.onAcquireFailed(err),
    });
    this.statements = new StatementCache(o.statementLimits, o.pool.retainedStatements);
    this.out = new WriteBatch(o.client);
    this.flow = new ClientFlow(o.client, this.out, () => this.state === 'acquiring');
    this.sink = new ClientSink(this, this.flow, this.statements, this.timeouts, this.firstFlight, o.mode, o.statementLimits.maxBytes, o.guard);
    this.responses = new ServerResponses(this.out, this.statements, o.context, o.shownParams, o.mode, this, o.guard);
    this.partial = new PartialMessageWatch(() => o.pool.cfg.partial_message_timeout_ms, o.log, {
      midMessage: () => this.state === 'active' && !this.scanner.atBoundary,
      readPaused: () => this.flow.paused,
      fatal: (fields) => this.fatal(fields),
    });
    const restart = {
      discardBackend: () => {
        this.releaseServer('broken');
        this.releaseHeldBack();
      },
      startAgain: (bytes: Buffer) => this.acquire(bytes),
      clientSetting: (name: string) => o.context.clientSetting(name),
      fatal: (fields: ErrorFields) => this.fatal(fields),
    };
    this.prefixFailure = new PrefixFailure(restart, this.sink, this.scanner, this.firstFlight, this.out, o.log, o.hooks);
    const { client } = o;
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('drain', () => this.flow.clientDrained(this.server));
    client.on('close', () => this.onClientGone());
    client.on('error', () => this.onClientGone());
  }

  /** Bytes that arrived with the login, before the session existed. */
  start(initial: Buffer | null): void {
    this.timeouts.clientIdle();
    if (initial && initial.length > 0) this.onClientData(initial);
  }

  /** True while the client's query runs on a backend: a CancelRequest should reach that backend. */
  get runningOn(): ServerConn | null {
    return this.state === 'active' && (this.sink.pendingSyncs > 0 || this.sink.unsynced) ? this.server : null;
  }

  /** The client's CancelRequest (its proxy-issued key matched): cancels its query, if one runs. */
  cancelQuery(): void {
    this.cancelOn(this.runningOn);
  }

  /**
   * Cancels what runs on `server` for this client. While the previous client's read-back, pipelined in front
   * of this hold, is unanswered, the server may be running it: a cancel then fails that read-back, and the
   * previous client (another tenant) is disconnected with a false READBACK_FAILED. So the cancel waits for
   * the read-back's answer (its own ReadyForQuery: one round trip), and is dropped if the hold ends first.
   * A cancel that strikes the DISCARD ALL or this client's own context prefix fails closed (responses.ts).
   */
  private cancelOn(server: ServerConn | null): void {
    if (!server) return;
    if (this.responses.readbackDue) {
      this.cancelAfterReadback = true;
      return;
    }
    this.o.pool.cancel(server);
  }

  readbackAnswered(): void {
    if (!this.cancelAfterReadback) return;
    this.cancelAfterReadback = false;
    this.cancelOn(this.runningOn);
  }

  /**
   * Shutdown (drain.ts): a client outside a transaction gets FATAL 57P01 now; one inside a transaction may
   * finish it and gets 57P01 when it ends. drain.ts terminates whoever is left at its deadline.
   */
  drain(): void {
    this.draining = true;
    // (Session mode holds a backend while idle: idle there means no transaction and nothing pending.)
    const idleInSession = this.state === 'active' && this.txStatus === TxStatus.Idle && this.sink.pendingSyncs === 0 && !this.sink.unsynced && this.scanner.atBoundary;
    if (this.state !== 'active' || idleInSession) this.terminate(SHUTTING_DOWN);
  }

  /** Ends the session from outside (shutdown): FATAL to the client, backend cleaned or closed. */
  terminate(fields: ErrorFields): void {
    this.fatal(fields);
  }

  // ---- client → server ------------------------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    if (this.state === 'acquiring' || this.heldBack) {
      this.flow.keep(chunk);
      return;
    }
    if (this.state === 'closed') return;
    if (this.state === 'active') this.o.observer?.clientData();
    this.timeouts.clientActive();
    if (this.firstFlight.holding && this.responses.inPrefix) this.firstFlight.record(chunk);
    let rest: Buffer | null;
    // What this chunk forwards leaves in one write; the server may change during the chunk (the batch
    // belongs to the one held at its start).
    const server = this.server;
    server?.begin();
    try {
      rest = this.scanner.feed(chunk, this.sink);
    } catch (e) {
      this.fatal({ code: '08P01', message: `invalid message from client: ${(e as FrameError).message}` });
      return;
    } finally {
      if (server && !server.end() && server === this.server) this.flow.pauseClient(server);
    }
    if (rest && this.state === 'idle') {
      const after = this.answeredWithoutBackend(rest);
      if (after === null) this.acquire(rest);
      else if (after.length > 0) this.onClientData(after);
      else if (this.state === 'idle') this.timeouts.clientIdle();
    } else if (rest && this.state === 'active') this.holdBack(rest);
    else {
      this.partial.check();
      this.idleIfQuiet();
      // Answered here with no backend (a lone Sync, a Flush): clientActive() stopped the client-idle clock above.
      if (this.state === 'idle') this.timeouts.clientIdle();
    }
  }

  /**
   * A transaction that is only a SQL `DEALLOCATE` of statements the proxy keeps for this client (psycopg 3,
   * PHP PDO and Rails evict protocol-level statements that way, between transactions): none of them exists
   * on any backend while the client holds none, so a backend would answer 26000 where a direct connection
   * succeeds. Answered here as the server would, and the statements forgotten. Returns the bytes after
   * that Query, or null if `bytes` does not start with such a whole Query.
   */
  private answeredWithoutBackend(bytes: Buffer): Buffer | null {
    if (bytes.length < 6 || bytes[0] !== Frontend.Query) return null;
    const end = 1 + bytes.readUInt32BE(1);
    if (end > bytes.length || end > 1 + 4 + 1024 || firstWordAt(bytes, 5) < 0) return null; // (the NUL ending the text stops the scan)
    const target = deallocateTarget(bytes.subarray(5, end));
    if (target === undefined || (target !== null && !this.statements.remembers(target))) return null;
    // A transaction start like any other: a suspended tenant or an expired token is refused here too, else
    // such a client could keep its connection (and reset the client-idle clock) for good.
    if (this.refusedAtTransactionStart()) return Buffer.alloc(0);
    this.statements.sqlDeallocate(target);
    this.out.write(commandComplete(target === null ? 'DEALLOCATE ALL' : 'DEALLOCATE'));
    this.out.write(READY_IDLE);
    return bytes.subarray(end);
  }

  /**
   * The client pipelined past a Sync while the hand-over and prefix in front of it are unanswered (see
   * ClientSink.syncBehindPrefix): the rest waits, unread, until they are answered or the backend is
   * discarded. Such a first flight is not retried transparently (its bytes are split).
   */
  private holdBack(rest: Buffer): void {
    this.heldBack = true;
    this.firstFlight.spoil();
    this.flow.startStash(rest);
    this.flow.pauseClient();
  }

  /** The prefix was answered, or the backend discarded: the held-back bytes go on (to a new backend if need be). */
  private releaseHeldBack(): void {
    if (!this.heldBack) return;
    queueMicrotask(() => {
      if (!this.heldBack || this.state === 'closed') return;
      this.heldBack = false;
      this.drainStash();
    });
  }

  prefixPending(): boolean {
    return this.responses.inPrefix;
  }

  prefixAnswered(): void {
    this.releaseHeldBack();
  }

  private acquire(first: Buffer): void {
    if (this.refusedAtTransactionStart()) return;
    this.state = 'acquiring';
    this.flow.startStash(first);
    this.o.observer?.waiting();
    // Held at the gate while the proxy is paused (admin PAUSE): not read meanwhile.
    if (this.wait.begin()) this.flow.pauseClient();
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

  private onAcquired(server: ServerConn, handover: Handover | null): void {
    if (this.state !== 'acquiring') {
      // Unreachable while waiters are withdrawn when their client goes (onClientGone); kept fail-safe.
      this.o.userSlots?.release();
      if (handover) {
        handover.abandon('the waiting client went away');
        this.o.pool.release(server, 'broken', null);
      } else this.o.pool.release(server, 'idle', null);
      return;
    }
    if (server.closed) {
      // Died between its release and now: nothing of this client was sent; wait for another backend.
      handover?.abandon(server.closeReason);
      this.wait.requestPool();
      return;
    }
    this.state = 'active';
    this.server = server;
    this.o.observer?.acquired(server);
    server.fresh = false;
    server.attach(this.responses);
    this.offServerClose = server.onClose(this.serverClosed);
    this.responses.startHold(server, handover);
    this.sink.startHold(server);
    this.statements.newBackend();
    // The hand-over (if one is due), the prefix and the client's first messages leave in one write.
    this.firstFlight.begin();
    server.begin();
    const context = this.o.context;
    const prefix = context.transactionPrefix();
    if (handover) for (const part of handover.parts('pipelined', context.reseeds)) server.write(part);
    if (prefix.length > 0) server.write(prefix);
    this.drainStash();
    if (!server.end() && server === this.server) this.flow.pauseClient(server);
    this.partial.check();
  }

  private onAcquireFailed(err: Error): void {
    if (this.state !== 'acquiring') return;
    this.wait.giveUp();
    this.state = 'idle';
    const pe = err instanceof PoolError ? err : new PoolError(err.message, '08006');
    this.o.hooks.acquireFailed(pe.sqlstate);
    this.o.observer?.acquireFailed(pe.sqlstate);
    this.o.log.warn({ event: 'ACQUIRE_FAILED', sqlstate: pe.sqlstate, err: pe.message }, 'no backend for client');
    // FATAL, and the connection closed: what the server itself does with 53300 ("too many clients") and
    // 08006 (connection lost), and what PgBouncer does on query_wait_timeout. A non-fatal error here lands
    // on whatever statement started the transaction, typically BEGIN, which a real server never fails
    // that way: psycopg 3.1's `with conn.transaction()` then counts a transaction that never began and
    // raises AssertionError on that connection forever. A closed connection every driver and pool handles.
    this.fatal({ code: pe.sqlstate, message: pe.message, hint: 'Reconnect and retry; the connection was closed because no database connection could be had for it.' });
  }

  private drainStash(): void {
    const chunks = this.flow.takeStash();
    for (let i = 0; i < chunks.length; i++) {
      if (this.state === 'acquiring') {
        // A new transaction began inside the stash: keep the rest for when its backend arrives.
        this.flow.keepFrom(chunks, i);
        return;
      }
      this.onClientData(chunks[i]);
    }
  }

  // ---- the session side of client → server (see client-sink.ts) --------------------------------

  clientTerminated(): void {
    queueMicrotask(() => this.onClientGone());
  }

  refusesNewTransaction(): boolean {
    return this.txStatus === TxStatus.Idle && this.refusedAtTransactionStart();
  }

  get resettingSession(): boolean {
    return this.sink.resettingSession;
  }

  get heldPastIdle(): boolean {
    return this.keptPastIdle;
  }

  // ---- the session side of server → client (see responses.ts) -----------------------------------

  executeAnswered(failed: boolean): void {
    if (this.sink.pendingSyncs > 0) {
      // An error while only Query/FunctionCall messages are due: if it came from extended messages sent before
      // them with no Sync, the server skips them too and waits for a Sync inside a transaction, and nothing
      // will answer them; the idle-in-transaction clock ends that (as idle_in_transaction_session_timeout
      // would directly). If it came from the Query itself, its ReadyForQuery follows at once and resets it.
      if (failed && this.sink.onlySimpleDue) this.timeouts.idleInTransaction();
      return; // an answer of an earlier sync segment
    }
    this.sink.executeAnswered(failed);
    this.idleIfQuiet();
  }

  /**
   * A hold with messages sent after the last Sync and everything before one answered: the server waits for
   * the client inside a transaction, so the idle-in-transaction clock runs, as after ReadyForQuery 'T'.
   * Else a client could keep a backend for good by never sending a Sync (a lone Parse, Execute + Flush).
   */
  private idleIfQuiet(): void {
    if (this.state !== 'active' || !this.scanner.atBoundary) return;
    if (this.sink.quietUnsynced) return this.timeouts.idleInTransaction();
    // Nothing due and nothing unsynced: the client's bytes were no sync point (a Flush), so no ReadyForQuery
    // will restart the clock that clientActive() stopped. Inside a transaction that is the idle-in-transaction
    // clock; outside one (session mode), the client-idle clock.
    if (this.sink.pendingSyncs > 0 || this.sink.unsynced) return;
    if (this.txStatus !== TxStatus.Idle) this.timeouts.idleInTransaction();
    else this.timeouts.clientIdle();
  }

  copyInEnded(completed: boolean): void {
    this.sink.copyEnded(completed);
  }

  serverError(body: Buffer): void {
    this.o.observer?.serverError(body);
  }

  get currentSegment(): number {
    return this.sink.currentSegment;
  }

  prefixFailed(kind: 'reset' | 'context', reason: string, sqlstate: string | undefined): void {
    this.prefixFailure.failed(kind, reason, sqlstate);
  }

  rewriteError(body: Buffer): Buffer | null {
    return this.timeouts.rewrite(body);
  }

  pauseServer(): void {
    this.flow.pauseServer(this.server);
  }

  readyForQuery(status: number): boolean {
    this.txStatus = status;
    this.sink.answered();
    this.o.observer?.readyForQuery(status === TxStatus.Idle);
    this.firstFlight.done();
    this.timeouts.ready(this.sink.pendingSyncs, status !== TxStatus.Idle);
    if (status === TxStatus.Idle) this.o.hooks.transactionDone();
    // The server ended a transaction and the client has already sent more (a pipeline one query deep or
    // deeper, a Parse behind the Sync): that is a new transaction starting on this backend without an acquire.
    // Checked here, as at an acquire: else a client that always keeps one query in flight would never meet the
    // check, and would run on for good after its tenant was suspended or its token expired.
    if (status === TxStatus.Idle && (this.sink.pendingSyncs > 0 || this.sink.unsynced || !this.scanner.atBoundary) && this.refusedAtTransactionStart()) return false;
    if (this.o.mode === 'session') {
      if (this.draining && status === TxStatus.Idle && this.sink.pendingSyncs === 0 && !this.sink.unsynced) queueMicrotask(() => this.terminate(SHUTTING_DOWN));
      return true;
    }
    if (this.sink.sessionResetAnswered) return this.endAfterSessionReset(status);
    if (status !== TxStatus.Idle || this.sink.pendingSyncs > 0 || this.sink.unsynced || !this.scanner.atBoundary) {
      if (status === TxStatus.Idle) {
        this.keptPastIdle = true;
        // Kept for messages sent after the last Sync (a Parse in the same write as the Query): if the server
        // has answered all it can, it now waits inside a transaction, and only this clock ends the hold.
        this.idleIfQuiet();
      }
      return true;
    }
    // The transaction is over and the server owes this client nothing: hand the backend back (closed instead
    // if a failed COPY left the count of what it owes a guess: copy-in.ts).
    return this.endHold(this.sink.copyUncertain ? 'broken' : 'idle', true);
  }

  /** The server's last ReadyForQuery ends the hold: the client is told, the backend goes back. Returns false (not forwarded). */
  private endHold(mode: ReleaseMode, readback: boolean): false {
    this.out.write(READY_IDLE);
    this.releaseServer(mode, null, readback);
    this.releaseHeldBack();
    if (this.draining) this.terminate(SHUTTING_DOWN);
    return false;
  }

  /**
   * The client's own session reset (guard/session-reset.ts) was answered: it cleared the tenant context, so
   * the hold ends here whatever the client sent behind it (that waits, and starts a new hold with a fresh
   * context). Its session settings go back to those of its login, as RESET ALL does on a direct connection.
   */
  private endAfterSessionReset(status: number): boolean {
    this.o.context.resetSession();
    if (status !== TxStatus.Idle) {
      // Cannot happen (a reset is let through only as the first message of a hold, outside a transaction): fail closed.
      this.fatal({ code: '08P01', message: 'a session reset left a transaction open on the server; reconnect' });
      return false;
    }
    // Nothing of the client's ran under the context before the reset (it was the hold's first message), and
    // the reset cleared the context: there is nothing for the read-back to check.
    return this.endHold('idle', false);
  }

  private releaseServer(mode: ReleaseMode, judgeFirst: Handover | null = null, readback = true): void {
    const server = this.server;
    if (!server) return;
    this.server = null;
    this.keptPastIdle = false;
    this.cancelAfterReadback = false;
    this.sink.endHold();
    this.o.observer?.released();
    this.responses.endHold();
    this.offServerClose?.();
    this.offServerClose = null;
    this.flow.resumeServer(server);
    if (this.state === 'active') this.state = 'idle';
    this.txStatus = TxStatus.Idle;
    this.flow.resumeClient();
    this.o.userSlots?.release();
    // What this client's context should still be: checked by the backend's hand-over (or said to be skipped).
    const readbackOwed = readback ? (this.o.readback ?? null) : null;
    if (judgeFirst) this.o.pool.closeAfterReadback(server, judgeFirst, readbackOwed);
    else this.o.pool.release(server, mode, readbackOwed);
  }

  private readonly serverClosed = (reason: string): void => this.onServerGone(reason);

  private onServerGone(reason: string): void {
    this.server = null;
    this.sink.endHold();
    this.o.observer?.released();
    this.offServerClose = null;
    this.responses.endHold();
    this.o.userSlots?.release();
    this.o.log.warn({ event: 'BACKEND_LOST', reason }, 'backend connection lost during a transaction');
    this.fatal({ code: '08006', message: `the database connection was lost during the transaction (${reason}); reconnect and retry` });
  }

  // ---- end of the session ---------------------------------------------------------------------------

  /** FATAL to the client (flushed before its socket closes: ClientFlow.endWithFatal), then the session ends. */
  private fatal(fields: ErrorFields): void {
    if (this.state === 'closed') return;
    this.flow.endWithFatal(fields);
    this.onClientGone(false);
  }

  private onClientGone(destroy = true): void {
    if (this.state === 'closed') return;
    const wasActive = this.state === 'active';
    if (this.state === 'acquiring') this.wait.withdraw();
    this.statements.dispose();
    this.timeouts.stop();
    this.partial.stop();
    this.state = 'closed';
    this.sink.close();
    this.flow.dropStash();
    if (wasActive && this.server) {
      // Mid-transaction: a quiet backend inside a transaction block is rolled back and reset. One still
      // working for this client is closed, and its query cancelled first: PostgreSQL does not notice a
      // closed socket while a query runs, and would keep its locks until the query ends.
      const quiet = this.sink.pendingSyncs === 0 && !this.sink.unsynced && this.scanner.atBoundary && !this.responses.inPrefix && !this.sink.copyUncertain;
      // (Idle and quiet happens in session mode: the client simply left; the backend is reset and reused.)
      // The previous client's read-back still unanswered in front of this hold: judged before the close.
      const judgeFirst = quiet ? null : this.responses.takeHandoverWithReadbackDue();
      if (!quiet && !judgeFirst) this.o.pool.cancel(this.server);
      this.releaseServer(!quiet ? 'broken' : this.txStatus === TxStatus.Idle ? 'idle' : 'in-transaction', judgeFirst);
    }
    // (Bytes still arriving from a client being told FATAL are ignored: the state is closed.)
    if (destroy) this.o.client.destroy();
    this.o.hooks.closed();
  }
}
