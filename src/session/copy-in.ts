// Which of a client's counted sync points a COPY FROM STDIN swallowed, decided from what the server says.
//
// Once the server answers a COPY's Execute (or Query) with CopyInResponse, it reads every later message as
// copy data until CopyDone or CopyFail, and drops a Sync or Flush it reads meanwhile (copyfromparse.c,
// CopyGetData). libpq's PQexecParams sends Sync right after Execute and another after CopyDone: two Syncs,
// one ReadyForQuery. Counted as sync points, the first would keep the backend held for good.
//
// The proxy must never count LOW: a ReadyForQuery it did not expect would release the backend while the
// server still owes this client answers, and those would reach the next client. So a Sync is un-counted
// only when the server's own answer proves it was read in copy mode:
//  - the COPY completed (CommandComplete): the server read everything up to the CopyDone as copy data, so
//    every Sync sent between the COPY and its CopyDone was dropped. Exact.
//  - the COPY failed (ErrorResponse) with none of its copy messages sent yet: the server failed it before
//    reading anything (a view, COPY FREEZE refused, a trigger, a cancel), so every Sync is answered: none
//    is un-counted.
//  - the COPY failed after one of its copy messages was sent: the Syncs sent before that copy message were
//    read in copy mode, unless the server failed before reading anything and the client had sent data
//    without waiting for CopyInResponse (libpq never does). That cannot be seen from here, so those Syncs are
//    un-counted and the backend is closed at the end of the hold instead of being reused: if the guess was
//    wrong, the surplus answers die with it (and a ReadyForQuery with nothing counted as due counts one back).
//    Syncs sent after a copy message of a failed COPY stay counted (no driver sends them).
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY
import { Frontend } from '../protocol/codes.js';

/** Copy ends (CopyDone, CopyFail) remembered past the base; more only costs exactness (the backend is closed). */
const MAX_TRACKED_ENDS = 4096;

export class CopyInSyncs {
  /** Per sync point sent and not answered, oldest first: its type, and the running copy counts before it. */
  private readonly types: number[] = [];
  private readonly msgsBefore: number[] = [];
  private readonly endsBefore: number[] = [];
  /** Copy messages (CopyData, CopyDone, CopyFail) and copy ends (CopyDone, CopyFail) sent in this hold. */
  private msgs = 0;
  private ends = 0;
  /**
   * Where in the client's stream the server has read up to, as far as a COPY is concerned: the later of the
   * last answered sync point and the CopyDone of the last completed COPY. A COPY now running was sent after
   * it. (A second COPY of one Query, `COPY a FROM STDIN; COPY b FROM STDIN`, or of one sync segment starts
   * after the first one's CopyDone, not after the sync point.)
   */
  private baseMsgs = 0;
  private baseEnds = 0;
  /** msgs (copy messages sent) right after each copy end: endMsgs[k] for end number endsOffset + k + 1. */
  private readonly endMsgs: number[] = [];
  private endsOffset = 0;
  /** endMsgs filled up once in this hold: no more ends are recorded (they would be misnumbered). */
  private untracked = false;
  private suspect = false;

  /** A new hold: nothing sent yet. */
  reset(): void {
    this.types.length = this.msgsBefore.length = this.endsBefore.length = 0;
    this.msgs = this.ends = this.baseMsgs = this.baseEnds = 0;
    this.endMsgs.length = 0;
    this.endsOffset = 0;
    this.untracked = false;
    this.suspect = false;
  }

  /** A Sync is among the sync points sent and not answered (the others are Query and FunctionCall). */
  get syncDue(): boolean {
    return this.types.includes(Frontend.Sync);
  }

  /** A failed COPY's Syncs were un-counted on a guess: the backend must not serve another client. */
  get uncertain(): boolean {
    return this.suspect;
  }

  /** The client sent a sync point (Query, Sync or FunctionCall). */
  syncPoint(type: number): void {
    this.types.push(type);
    this.msgsBefore.push(this.msgs);
    this.endsBefore.push(this.ends);
  }

  /** The client sent CopyData, CopyDone or CopyFail. */
  copyMessage(type: number): void {
    this.msgs++;
    if (type === Frontend.CopyData) return;
    this.ends++;
    // Bounded: a client sending endless CopyDones between two answers only loses exactness (see ended()).
    if (this.endMsgs.length >= MAX_TRACKED_ENDS) this.untracked = true;
    if (!this.untracked) this.endMsgs.push(this.msgs);
  }

  /** The server answered the oldest sync point (ReadyForQuery). */
  answered(): void {
    if (this.types.length === 0) return;
    this.types.shift();
    const msgs = this.msgsBefore.shift()!;
    const ends = this.endsBefore.shift()!;
    // The sync point is at or after the base unless a completed COPY's CopyDone came after it.
    if (ends >= this.baseEnds) this.moveBase(msgs, ends);
  }

  private moveBase(msgs: number, ends: number): void {
    this.baseMsgs = msgs;
    this.baseEnds = ends;
    // Ends before the base can never end a COPY again.
    const drop = Math.min(ends - this.endsOffset, this.endMsgs.length);
    if (drop > 0) {
      this.endMsgs.splice(0, drop);
      this.endsOffset += drop;
    }
  }

  /**
   * The COPY the server is running ended: `completed` (CommandComplete) or failed (ErrorResponse). Returns how
   * many counted sync points the server dropped; they are removed here, and the caller un-counts them.
   */
  ended(completed: boolean): number {
    // The COPY belongs to the oldest unanswered sync point. Sent by Query, the Query itself is answered;
    // sent by Execute, that segment's Sync is the first one the server may have dropped.
    // Copy messages sent before the COPY (a failed one's tail) do not count: the base is the Query itself,
    // or, for an Execute, the last answered sync point (a stray one in between only makes this count high).
    const byQuery = this.types.length > 0 && this.types[0] !== Frontend.Sync;
    const from = byQuery ? 1 : 0;
    // A Query's first COPY starts after the Query; a later one of the same Query after the last CopyDone.
    const afterQuery = byQuery && this.endsBefore[0] >= this.baseEnds;
    const baseMsgs = afterQuery ? this.msgsBefore[0] : this.baseMsgs;
    const baseEnds = afterQuery ? this.endsBefore[0] : this.baseEnds;
    if (completed) {
      // This COPY read up to the first copy end after its base: a later COPY starts after that CopyDone.
      const k = baseEnds - this.endsOffset;
      if (k >= 0 && k < this.endMsgs.length) this.moveBase(this.endMsgs[k], baseEnds + 1);
      else {
        // Not tracked (over MAX_TRACKED_ENDS): the ends count stays exact, the copy-message count is a guess,
        // so the backend is closed at the end of the hold rather than reused.
        this.suspect = true;
        this.moveBase(this.msgs, baseEnds + 1);
      }
    }
    // A failed COPY read the Syncs before its first copy message only if it read that copy message too: the
    // server fails a COPY before reading anything (a view, COPY FREEZE refused, a BEFORE STATEMENT trigger,
    // a cancel before its first read), or after reading data, never in between (it holds cancels while it
    // reads, and a Sync or Flush is read in the same loop as the data behind it). libpq sends no copy data
    // before CopyInResponse, so for it the two cases are told apart exactly: no copy message sent yet, the
    // Syncs were not read and are answered; one sent, they were read and dropped.
    if (!completed && this.msgs === baseMsgs) return 0;
    let i = from;
    while (
      i < this.types.length &&
      this.types[i] === Frontend.Sync &&
      (completed ? this.endsBefore[i] === baseEnds : this.msgsBefore[i] === baseMsgs)
    ) {
      i++;
    }
    const dropped = i - from;
    if (dropped > 0) {
      this.types.splice(from, dropped);
      this.msgsBefore.splice(from, dropped);
      this.endsBefore.splice(from, dropped);
      if (!completed) this.suspect = true;
    }
    return dropped;
  }
}
