// The one owner of a backend's hand-over from one client to the next: what the backend still owes (a
// rollback, the previous client's read-back check, DISCARD ALL, a fresh random() seed), the bytes that
// settle it, and how the server's answers are judged. It runs in one of two ways, with the same judging:
//  - eager: nobody is waiting, so it runs at once in its own round trip (simple Query messages);
//  - pipelined: the backend goes straight to a waiting client, and the bytes are written in front of that
//    client's context prefix (the read-back as a simple Query, then DISCARD ALL as an extended-protocol
//    message without a Sync, first in its pipeline as the server requires). The prefix reseeds random()
//    itself; only a login without one gets the reseed here.
// References: https://www.postgresql.org/docs/current/sql-discard.html
//             https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-PIPELINING
import { serialize } from 'pg-protocol';
import { Backend, TxStatus } from '../protocol/codes.js';
import { decodeErrorFields } from '../protocol/decode.js';
import { type Readback, readbackIntact, readbackQuery } from './readback.js';
import { cryptoSeed } from './seed.js';

export type HandoverMode = 'eager' | 'pipelined';

/** What happens to the read-back check of a hand-over: reported to the pool's owner for a metric. */
export type ReadbackOutcome = 'intact' | 'tampered' | 'failed' | 'skipped';

export interface HandoverEvents {
  /** The previous client's read-back ran (or could not): counted, and never silent. */
  readback(outcome: ReadbackOutcome, reason: string | null): void;
}

/** The judgement of one server message: keep feeding, done (backend clean), or failed (close it). */
export type Verdict = { state: 'more' } | { state: 'done' } | { state: 'failed'; reason: string; sqlstate: string | undefined };

const MORE: Verdict = { state: 'more' };
const DONE: Verdict = { state: 'done' };

const ROLLBACK = serialize.query('ROLLBACK');
const DISCARD_ALL = serialize.query('DISCARD ALL');
const pipelined = (text: string): Buffer => Buffer.concat([serialize.parse({ text }), serialize.bind({}), serialize.execute({})]);
const PIPELINED_DISCARD_ALL = pipelined('DISCARD ALL');
const PIPELINED_BEGIN = pipelined('BEGIN');
const PIPELINED_COMMIT = pipelined('COMMIT');

const reseedSql = (): string => `SELECT pg_catalog.setseed(${cryptoSeed()})`;

type Step = 'rollback' | 'readback' | 'discard' | 'reseed';

/**
 * One hand-over: created by the pool when a client lets a backend go, consumed exactly once, on one path.
 * Feed it every server message from its first byte on until it says done or failed.
 */
export class Handover {
  private readonly steps: Step[] = [];
  private error: { reason: string; sqlstate: string | undefined } | null = null;
  private discardCompleted = false;
  private readbackSeen = false;
  private mode: HandoverMode | null = null;
  /** CommandCompletes of the pipelined reseed still due: its SELECT, plus BEGIN and COMMIT if it wraps itself. */
  private reseedLeft = 1;

  /**
   * @param rollback the server was left inside a transaction block (client went away mid-transaction):
   *   only possible on the eager path, since DISCARD ALL cannot run in a transaction block.
   * @param readback the check still due for the client that let the backend go, if it has one.
   */
  constructor(
    readonly rollback: boolean,
    private readonly readback: Readback | null,
    private readonly events: HandoverEvents,
  ) {}

  /** The read-back is the step the server is answering now (or has not reached yet). */
  get readbackDue(): boolean {
    return this.steps.includes('readback');
  }

  /** True if the previous client was in a transaction: it cannot be pipelined in front of another client. */
  get pipelinable(): boolean {
    return !this.rollback;
  }

  /**
   * The bytes that settle what the backend owes, for `mode`. Call once.
   * @param nextReseeds (pipelined) what follows is a tenant context prefix, which opens its own transaction
   *   block and reseeds random() inside it (TenantContext.reseeds): the hand-over need not reseed.
   */
  bytes(mode: HandoverMode, nextReseeds = false): Buffer {
    const parts = this.parts(mode, nextReseeds);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** The same as bytes(), as the messages' buffers (shared, never to be modified): for a batched write. */
  parts(mode: HandoverMode, nextReseeds = false): readonly Buffer[] {
    this.mode = mode;
    const parts: Buffer[] = [];
    if (this.rollback) {
      if (mode === 'pipelined') throw new Error('a backend left inside a transaction cannot be handed over pipelined');
      this.steps.push('rollback');
      parts.push(ROLLBACK);
    }
    if (this.readback) {
      // A simple Query ahead of any pipeline: an error in it does not make the server skip what follows.
      this.steps.push('readback');
      parts.push(readbackQuery(this.readback));
    }
    this.steps.push('discard', 'reseed');
    if (mode === 'eager') {
      // Separate Query messages: DISCARD ALL refuses to run inside a multi-statement string.
      parts.push(DISCARD_ALL, serialize.query(reseedSql()));
    } else {
      // DISCARD ALL must be the first statement of its pipeline; the server commits it at once (it cannot
      // run in a transaction block). A tenant context prefix follows with its own BEGIN … COMMIT and reseeds
      // inside it. Without one, the reseed is wrapped in its own BEGIN/COMMIT, so the client's statements
      // start a fresh transaction (a second statement without a Sync would else open an implicit block and
      // leave the client's autocommit statements uncommitted). If any of it fails, the server skips
      // everything up to the next client's first Sync, and the session sends nothing after that Sync until
      // this and the prefix are answered (ClientSink.syncBehindPrefix): nothing of that client runs on a
      // backend not reset.
      if (nextReseeds) {
        this.steps.pop(); // the prefix reseeds
        this.reseedLeft = 0;
        parts.push(PIPELINED_DISCARD_ALL);
      } else {
        this.reseedLeft = 3;
        parts.push(PIPELINED_DISCARD_ALL, PIPELINED_BEGIN, pipelined(reseedSql()), PIPELINED_COMMIT);
      }
    }
    return parts;
  }

  /**
   * The pipelined hand-over never ran: the backend is being closed (e.g. it died before the next client's
   * bytes went out). The read-back cannot run on a closed backend: say so rather than skip it silently.
   */
  abandon(reason: string): void {
    if (this.readback && !this.readbackSeen) {
      this.readbackSeen = true;
      this.events.readback('skipped', `backend closed before the read-back ran: ${reason}`);
    }
  }

  /** Judges one server message of the hand-over. */
  answer(type: number, body: Buffer): Verdict {
    const step = this.steps[0];
    if (step === undefined) return DONE;
    switch (type) {
      case Backend.DataRow:
        if (step === 'readback') this.readbackRow(body);
        return MORE;
      case Backend.ErrorResponse: {
        const f = decodeErrorFields(body);
        const reason = `${f.C ?? ''} ${f.M ?? 'unknown error'}`.trim();
        const severity = f.V ?? f.S;
        if (severity === 'FATAL' || severity === 'PANIC') {
          // The server is ending this backend (pg_terminate_backend, shutdown): its session state dies with
          // it, so there is nothing left to read back. Not the client's doing: skipped, and said so.
          this.abandon(`the server ended the backend: ${reason}`);
          return this.fail(`the server ended the backend during the reset: ${reason}`, f.C);
        }
        if (step === 'readback') {
          this.readbackFailed(`the read-back query failed: ${reason}`);
          return MORE; // its own ReadyForQuery follows; DISCARD ALL still runs
        }
        if (this.mode === 'pipelined' && (step === 'discard' || step === 'reseed')) return this.fail(`${step === 'discard' ? 'DISCARD ALL' : 'reseed'} failed: ${reason}`, f.C);
        this.error ??= { reason: `${step} failed: ${reason}`, sqlstate: f.C };
        return MORE;
      }
      case Backend.CommandComplete:
        if (step === 'discard') {
          if (body.toString('latin1', 0, 11) === 'DISCARD ALL') this.discardCompleted = true;
          if (this.mode === 'pipelined') {
            this.steps.shift();
            if (this.steps.length === 0) return this.settled(TxStatus.Idle); // the prefix reseeds
          }
        } else if (step === 'reseed' && this.mode === 'pipelined' && --this.reseedLeft === 0) {
          this.steps.shift();
          return this.settled(TxStatus.Idle);
        }
        return MORE;
      case Backend.ReadyForQuery: {
        if (this.mode === 'pipelined' && (step === 'discard' || step === 'reseed')) {
          // Only if the server answered a later Sync without completing the reset: it did not run.
          return this.fail('the reset did not complete', undefined);
        }
        if (step === 'readback' && !this.readbackSeen) this.readbackFailed('the read-back query returned no row');
        this.steps.shift();
        if (this.steps.length > 0) return MORE;
        return this.settled(body[0]);
      }
      default:
        return MORE; // ParseComplete, BindComplete, RowDescription, notices, notifications: the reset's own
    }
  }

  private settled(status: number): Verdict {
    this.steps.length = 0;
    if (this.error) return this.fail(this.error.reason, this.error.sqlstate);
    if (!this.discardCompleted) return this.fail('DISCARD ALL did not complete', undefined);
    if (status !== TxStatus.Idle) return this.fail(`server not idle after reset (status ${String.fromCharCode(status)})`, undefined);
    return DONE;
  }

  private fail(reason: string, sqlstate: string | undefined): Verdict {
    this.steps.length = 0;
    if (this.readback && !this.readbackSeen) this.readbackFailed(`the reset failed before the read-back completed: ${reason}`);
    return { state: 'failed', reason, sqlstate };
  }

  private readbackRow(body: Buffer): void {
    if (this.readbackSeen || !this.readback) return;
    this.readbackSeen = true;
    const intact = readbackIntact(this.readback, body);
    this.events.readback(intact ? 'intact' : 'tampered', null);
  }

  /**
   * A read-back that cannot be verified is treated like a tampered one on both paths: counted, reported, and
   * the client disconnected. Otherwise a tenant could change its context and then make the check fail
   * (e.g. SET statement_timeout = 1) to escape it.
   */
  private readbackFailed(reason: string): void {
    if (this.readbackSeen || !this.readback) return;
    this.readbackSeen = true;
    this.events.readback('failed', reason);
    this.readback.failed(reason);
  }
}
