// The client → server direction of a session: each client message decided at its header, sync points counted, the guard applied, prepared statements tracked.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
import type { ServerConn } from '../backend/server.js';
import { Frontend } from '../protocol/codes.js';
import { frame, readyForQuery } from '../protocol/encode.js';
import { Action, type FrameSink, FrameError, FrameScanner } from '../protocol/frames.js';
import type { ClientFlow } from './client-flow.js';
import { CopyInSyncs } from './copy-in.js';
import type { GuardHook } from './guard-hook.js';
import type { FirstFlight } from './retry.js';
import { deallocateTarget, statementName } from './server-messages.js';
import type { StatementCache } from './statements.js';
import type { SessionTimeouts } from './timeouts.js';

/** Largest client message forwarded: PostgreSQL itself refuses messages over 1 GB. */
const MAX_CLIENT_FRAME = 0x4000_0000;
/** Largest client Parse the bridge assembles (64 MB). */
const MAX_CLIENT_INSPECT = 64 << 20;
/**
 * Bytes of a Parse/Bind/Describe/Close read for its statement names: the rest streams through unassembled.
 * A name not complete within them is not tracked (that statement is usable within its transaction only).
 */
const PEEK_BYTES = 1024;

/** ReadyForQuery 'I', answered locally to a Sync while no backend is held: one buffer, never re-made. */
export const READY_IDLE = readyForQuery('I');

/** The scanner that walks a client's messages for its sink, with the limits above. */
export function clientScanner(): FrameScanner {
  return new FrameScanner(MAX_CLIENT_FRAME, MAX_CLIENT_INSPECT, PEEK_BYTES);
}

/** What the client sink needs from its session. */
export interface ClientSinkOwner {
  /** The client sent Terminate: the session ends once the rest of this read is handled. */
  clientTerminated(): void;
  /**
   * Session mode: a transaction starts on the backend already held (nothing pending on it). True if the
   * session refuses it (token expired, tenant suspended) and is disconnecting the client.
   */
  refusesNewTransaction(): boolean;
  /** The hand-over or context prefix in front of this hold is not answered yet. */
  prefixPending(): boolean;
  /** Transaction mode: the server said idle during this hold, and the client kept the backend (see Session). */
  readonly heldPastIdle: boolean;
}

export class ClientSink implements FrameSink {
  /** The backend the client's messages go to: set for each hold (startHold), null while none is held. */
  private server: ServerConn | null = null;
  /** The session ended: every message from then on is dropped. */
  private closed = false;
  /** Sync points (Query, Sync, FunctionCall) sent to this backend, and ReadyForQuery answers received. */
  private segSent = 0;
  private segDone = 0;
  /** Extended-protocol messages sent since the last Sync: the server holds state for this client. */
  private sinceSync = false;
  /** sinceSync was set by copyEnded(), not by a message of the client's: the server waits for a Sync after a COPY. */
  private syncOwedByCopy = false;
  /** Executes sent since the last sync point and not answered yet (counted only once no sync point is due). */
  private executes = 0;
  /**
   * The server reported an error in the messages sent after the last sync point: it now skips every message
   * up to the client's next Sync, so an Execute sent meanwhile is never answered and must not be counted
   * (it would keep quietUnsynced false, and the idle-in-transaction clock off, for good).
   */
  private skippingTillSync = false;
  /** Which counted sync points a COPY FROM STDIN swallowed (see copy-in.ts). */
  private readonly copyIn = new CopyInSyncs();
  /** Dropping client messages until the next sync point, which is then answered ReadyForQuery (like the server after an error). */
  private rejecting = false;
  /** Type of the message being dropped because the guard refuses it whole (0: none); see dropped(). */
  private refusedWhole = 0;
  /**
   * A Sync went to the server while the hand-over or prefix in front of it was unanswered. If that prefix
   * fails, the server skips the client's messages only up to this Sync and runs what follows on a backend
   * that was not reset, with the previous client's context: so nothing more is sent until it is answered.
   */
  private syncBehindPrefix = false;
  /**
   * The sync point (segSent) of a Query that is only the client's own session reset, let through by the
   * guard (guard/session-reset.ts); -1: none. It cleared the tenant context, so nothing may run after it
   * on this backend: the client's next messages wait for its ReadyForQuery, which ends the hold.
   */
  private endHoldAt = -1;
  /** The sync point just counted is the first message of the hold (nothing of the client's before it). */
  private firstOfHold = false;
  private readonly sessionMode: boolean;
  /** Largest Parse body assembled to be kept for re-preparing; larger ones are only peeked at. */
  private readonly maxKeptParse: number;

  /**
   * @param maxStatementBytes the largest Parse kept for re-preparing (statement limits)
   * @param guard the statement guard for this client's Query, Parse and FunctionCall messages (tenant logins)
   */
  constructor(
    private readonly owner: ClientSinkOwner,
    private readonly flow: ClientFlow,
    private readonly statements: StatementCache,
    private readonly timeouts: SessionTimeouts,
    private readonly firstFlight: FirstFlight,
    mode: 'transaction' | 'session',
    maxStatementBytes: number,
    private readonly guard: GuardHook | undefined,
  ) {
    this.sessionMode = mode === 'session';
    this.maxKeptParse = Math.min(maxStatementBytes - 5, MAX_CLIENT_INSPECT);
  }

  /** Sync points sent to the backend that it has not answered yet. */
  get pendingSyncs(): number {
    return this.segSent - this.segDone;
  }

  /** Extended-protocol messages were sent since the last Sync: the server holds state for this client. */
  get unsynced(): boolean {
    return this.sinceSync;
  }

  /** The sync segment the server is working through (an error skips the rest of it). */
  get currentSegment(): number {
    return this.segDone;
  }

  /** A backend is held: the client's messages go to it, counted from zero. */
  startHold(server: ServerConn): void {
    this.server = server;
    this.segSent = this.segDone = 0;
    this.executes = 0;
    this.skippingTillSync = false;
    this.copyIn.reset();
    this.syncBehindPrefix = false;
    this.endHoldAt = -1;
    this.syncOwedByCopy = false;
  }

  /** The hold ends at the ReadyForQuery just answered: it closed a session reset (see endHoldAt). */
  get sessionResetAnswered(): boolean {
    return this.endHoldAt >= 0 && this.segDone >= this.endHoldAt;
  }

  /** A session reset was sent in this hold (see endHoldAt). */
  get resettingSession(): boolean {
    return this.endHoldAt >= 0;
  }

  /** The backend is no longer this client's: the rest of a frame under way is dropped. */
  endHold(): void {
    this.server = null;
  }

  /** The session ended. */
  close(): void {
    this.closed = true;
  }

  /** The server answered a sync point (ReadyForQuery). */
  answered(): void {
    // A ReadyForQuery with no sync point counted as due proves a failed COPY's Sync was un-counted wrongly
    // (copy-in.ts: the server failed the COPY before reading it, e.g. 42809 cannot copy to view, COPY FREEZE
    // refused). Counted back, else every later sync point of the hold is one short and the hold ends (the
    // backend closed) with the client's pipelined answers still due.
    if (this.segDone >= this.segSent && this.copyIn.uncertain) {
      this.segSent = this.segDone + 1;
      // That Sync was answered after all: the server no longer waits for one (see copyEnded).
      if (this.syncOwedByCopy) this.sinceSync = this.syncOwedByCopy = false;
    }
    this.segDone++;
    this.copyIn.answered();
  }

  /** The server's COPY FROM STDIN completed or failed: the Syncs it read as copy data are owed nothing. */
  copyEnded(completed: boolean): void {
    const dropped = this.copyIn.ended(completed);
    this.segSent -= dropped;
    // An Execute's COPY whose Sync the server read as copy data, and no sync point sent since: the server waits
    // for a Sync inside the Execute's transaction, as after messages sent with none (the idle-in-transaction
    // clock must run, and the backend is not idle).
    if (dropped > 0 && this.segSent === this.segDone && !this.sinceSync) {
      this.sinceSync = true;
      this.syncOwedByCopy = true;
    }
  }

  /**
   * The server answered an Execute sent after the last sync point, or (`failed`) reported an error, after
   * which it skips everything up to the client's next Sync. Call only when no sync point is due.
   */
  executeAnswered(failed: boolean): void {
    if (failed) {
      this.executes = 0;
      this.skippingTillSync = true;
    }
    else if (this.executes > 0) this.executes--;
  }

  /**
   * The client sent messages without a Sync, and the server has answered everything it can before one: it
   * waits for the client inside a transaction (PostgreSQL shows it "idle in transaction").
   */
  get quietUnsynced(): boolean {
    return this.sinceSync && this.executes === 0 && this.segSent === this.segDone;
  }

  /** Sync points are due, and none is a Sync: only Query and FunctionCall messages wait for an answer. */
  get onlySimpleDue(): boolean {
    return this.segSent > this.segDone && !this.copyIn.syncDue;
  }

  /** The client sent an extended-protocol message (Parse, Bind, Describe, Close, Execute): a Sync is owed by it now. */
  private extendedMessage(): void {
    this.sinceSync = true;
    this.syncOwedByCopy = false;
  }

  /** Syncs of a failed COPY were un-counted on a guess (copy-in.ts): the backend must be closed, not reused. */
  get copyUncertain(): boolean {
    return this.copyIn.uncertain;
  }

  /** The backend is discarded with what was sent to it: returns how many sync points it still owed; nothing is pending after. */
  discardPending(): number {
    const owed = this.segSent - this.segDone;
    this.segSent = this.segDone = 0;
    this.executes = 0;
    this.skippingTillSync = false;
    this.copyIn.reset();
    this.sinceSync = this.syncOwedByCopy = false;
    return owed;
  }

  /** Drops the client's messages until its next sync point, which is answered ReadyForQuery. */
  rejectUntilSync(): void {
    this.rejecting = true;
  }

  classify(type: number, length: number): Action {
    if (this.closed) return Action.Drop;
    if (type === Frontend.Terminate) {
      this.owner.clientTerminated();
      return Action.Drop;
    }
    if (this.rejecting) {
      if (type === Frontend.Query || type === Frontend.Sync || type === Frontend.FunctionCall) {
        this.rejecting = false;
        this.flow.answerLocally(READY_IDLE);
      }
      return Action.Drop;
    }
    if (!this.server) {
      // No backend is held (the session is idle): nothing is pending on any backend here, so a lone Sync or
      // Flush can be answered locally; anything else waits for a backend.
      if (type === Frontend.Sync) {
        this.flow.answerLocally(READY_IDLE);
        return Action.Drop;
      }
      // Copy messages outside a hold are the tail of a COPY the server already failed (the client's stream
      // was still on its way); a server outside copy mode ignores them, so they need no backend.
      if (type === Frontend.Flush || type === Frontend.CopyData || type === Frontend.CopyDone || type === Frontend.CopyFail) return Action.Drop;
      return Action.Stall;
    }
    // Nothing runs after a session reset on this backend (see endHoldAt).
    if (this.endHoldAt >= 0) return Action.Stall;
    // Held back until the prefix in front of an already sent Sync is answered (see syncBehindPrefix).
    if (this.syncBehindPrefix) {
      if (this.owner.prefixPending()) return Action.Stall;
      this.syncBehindPrefix = false;
    }
    // Session mode keeps the backend, so a new transaction there starts here: check the token first. So does
    // a transaction-mode client that kept its backend past the server's idle ReadyForQuery (a Parse trailing
    // its Sync): else it could run transactions forever after its token expired or its tenant was suspended.
    if (this.pendingSyncs === 0 && (this.sessionMode ? !this.sinceSync : this.owner.heldPastIdle) && this.owner.refusesNewTransaction()) {
      return Action.Drop;
    }
    switch (type) {
      case Frontend.Query:
      case Frontend.Sync:
      case Frontend.FunctionCall:
        this.firstOfHold = this.segSent === 0 && !this.sinceSync;
        this.segSent++;
        this.copyIn.syncPoint(type);
        this.sinceSync = false;
        this.syncOwedByCopy = false;
        this.executes = 0;
        if (type === Frontend.Sync) this.skippingTillSync = false; // (a Query or FunctionCall does not end the server's skip)
        if (type === Frontend.Sync && this.owner.prefixPending()) this.syncBehindPrefix = true;
        this.timeouts.queryStarted();
        if (type === Frontend.Query) this.statements.simpleQuery();
        if (type === Frontend.Sync) return Action.Pass;
        // Without the guard a Query's first bytes are read only for a SQL DEALLOCATE (see sqlDeallocated()),
        // which matters only while statements are tracked.
        if (!this.guard) return type === Frontend.Query && !this.statements.tracksNothing ? Action.Peek : Action.Pass;
        return this.screen(type, length);
      case Frontend.Parse:
        // The guard reads the whole statement or refuses it whole (see screen()); otherwise a Parse small
        // enough to be kept for re-preparing is assembled once, any other only peeked at for its name.
        this.extendedMessage();
        if (this.guard) return this.screen(type, length);
        return length - 4 <= this.maxKeptParse ? Action.Inspect : Action.Peek;
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Close:
        // Their statement names (at the start) decide whether a statement must be prepared again first.
        this.extendedMessage();
        return Action.Peek;
      case Frontend.Execute:
        this.extendedMessage();
        if (!this.skippingTillSync) this.executes++;
        return Action.Pass;
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        this.copyIn.copyMessage(type);
        return Action.Pass;
      default:
        return Action.Pass; // Flush belongs to the sync point already counted.
    }
  }

  dropped(type: number, length: number): void {
    // A message the guard refuses unread: its substitute fails in its place (see guard-hook.ts).
    const refused = this.refusedWhole;
    this.refusedWhole = 0;
    if (refused !== type || !this.guard || !this.server) return;
    const substitute = this.guard.substitute(type, length);
    if (type === Frontend.FunctionCall) this.statements.simpleQuery(); // its substitute is a simple Query
    // Tracked like the client's own Parse, so the statement bookkeeping stays aligned with the server.
    const inject = type === Frontend.Parse ? this.statementMessage(type, substitute.subarray(5), substitute, true) : null;
    if (inject) this.server.write(inject);
    this.server.write(substitute);
  }

  inspect(type: number, body: Buffer, own: Buffer | null): boolean {
    const server = this.server;
    if (!server) return false;
    if (this.guard && type === Frontend.FunctionCall) {
      // Only read when tenant.function_call_allow is set: an OID not on it is refused in place.
      const replacement = this.guard.functionCall(body);
      if (!replacement) return true;
      this.statements.simpleQuery(); // its substitute is a simple Query
      server.write(replacement);
      return false;
    }
    if (this.guard && (type === Frontend.Query || type === Frontend.Parse)) {
      // In transaction mode a Query that is only a session reset (asyncpg's Pool.release) may run as the only
      // thing of its hold (see endHoldAt).
      const resetAllowed = !this.sessionMode && this.firstOfHold;
      const replacement = type === Frontend.Query ? this.guard.query(body, resetAllowed) : this.guard.parse(body);
      if (replacement && !Buffer.isBuffer(replacement)) {
        this.endHoldAt = this.segSent;
        if (replacement.dropsStatements) this.statements.sqlDeallocate(null);
        return true;
      }
      if (replacement) {
        // Tracked like the client's own Parse, so the statement bookkeeping stays aligned with the server.
        const inject = type === Frontend.Parse ? this.statementMessage(type, replacement.subarray(5), replacement, true) : null;
        if (inject) server.write(inject);
        server.write(replacement);
        return false;
      }
      if (type === Frontend.Query) {
        this.sqlDeallocated(body, body.length);
        return true;
      }
    }
    const inject = this.statementMessage(type, body, own, true);
    if (inject) server.write(inject);
    return true;
  }

  peek(type: number, head: Buffer, bodyLength: number): void {
    const server = this.server;
    if (!server) return;
    if (type === Frontend.Query) {
      this.sqlDeallocated(head, bodyLength);
      return;
    }
    const inject = this.statementMessage(type, head, null, head.length === bodyLength);
    if (inject) server.write(inject);
  }

  write(bytes: Buffer): void {
    const server = this.server;
    if (!server) return; // backend gone mid-frame: the rest of that frame is dropped
    if (!server.write(bytes)) this.flow.pauseClient(server); // (while batching, told at the batch's end instead)
  }

  /**
   * A simple Query that is a SQL DEALLOCATE: the statement cache forgets what it removes, so the proxy
   * neither prepares it again nor answers a later Parse of the name with the old definition (42P05).
   */
  private sqlDeallocated(head: Buffer, bodyLength: number): void {
    if (head.length !== bodyLength) return;
    const target = deallocateTarget(head);
    if (target !== undefined) this.statements.sqlDeallocate(target);
  }

  /** A guarded tenant's Query, Parse or FunctionCall: read by the guard, or refused whole (see dropped()). */
  private screen(type: number, length: number): Action {
    const screen = this.guard!.screen(type, length);
    if (screen === 'inspect') return Action.Inspect;
    if (screen === 'pass') return Action.Pass;
    this.refusedWhole = type;
    return Action.Drop;
  }

  /**
   * Tracks the client's prepared statements; returns a Parse to send before this message, or null.
   * `body` may be only the message's first bytes (`whole` false); `own` is the whole frame if the scanner
   * assembled it in a buffer of its own (kept without another copy).
   */
  private statementMessage(type: number, body: Buffer, own: Buffer | null, whole: boolean): Buffer | null {
    let ref: ReturnType<typeof statementName>;
    try {
      ref = statementName(type, body);
    } catch {
      if (whole) throw new FrameError(`malformed message type 0x${type.toString(16)}: a name is not NUL-terminated`);
      // A name longer than the bytes peeked at: not tracked. A Parse still takes its place in the queue.
      this.firstFlight.spoil();
      if (type === Frontend.Parse) this.statements.clientParse(null, null, this.segSent);
      return null;
    }
    if (!ref) return null;
    if (ref.kind !== 'use' && ref.name !== '') this.firstFlight.spoil();
    if (ref.kind === 'parse') {
      const keep = whole ? (own ?? frame(Frontend.Parse, body)) : null;
      return this.statements.clientParse(ref.name, keep, this.segSent);
    }
    if (ref.kind === 'use') return this.statements.clientUses(ref.name, this.segSent);
    this.statements.clientClose(ref.name);
    return null;
  }
}
