// The transparent retry of a transaction whose backend died before any of the client's statements ran.
//
// When it is safe: the bytes the proxy writes at a transaction start are [hand-over (DISCARD ALL…)] +
// [tenant context prefix] + [the client's messages], and the server answers them strictly in order. A FATAL
// (57P01 from pg_terminate_backend or a shutdown, 57P02/57P03, 08006) seen while the hand-over's or the
// prefix's answers are still due means the server process ended before it read the client's messages: a
// FATAL ends the process, and nothing after it in the socket is ever executed. So nothing of the client's ran,
// and the same bytes, still held here, can go to another backend. A socket that closes without an error is
// NOT retried: the server may have run the client's statements and died before flushing their answers.
//
// What is held: the client's raw bytes from the transaction start until the prefix is answered, bounded by
// MAX_HELD_BYTES. A named prepared statement created or closed in that window is not replayed (the statement
// bookkeeping has already counted it), nor is a window that ended mid-message; those fail as before.

/** Codes the server only sends as FATAL when it ends the session: the connection is gone. */
const CONNECTION_ENDING = new Set(['57P01', '57P02', '57P03', '08006', '08003', '57P05']);

/** True if the server sends `sqlstate` only as it ends the session. */
export function endsConnection(sqlstate: string | undefined): boolean {
  return sqlstate !== undefined && CONNECTION_ENDING.has(sqlstate);
}
/** Most bytes held for a retry; a larger first flight is not retried (and not copied). */
export const MAX_HELD_BYTES = 1 << 20;
/** Attempts per transaction start: a server that keeps killing backends eventually gets an error shown. */
export const MAX_RETRIES = 3;

export class FirstFlight {
  private chunks: Buffer[] | null = null;
  private bytes = 0;
  private retries = 0;

  /** A backend was granted: the client's bytes forwarded from now on (starting with its stash) are held. */
  begin(): void {
    this.chunks = [];
    this.bytes = 0;
  }

  /** More client bytes forwarded while the prefix is unanswered. */
  record(chunk: Buffer): void {
    if (!this.chunks) return;
    this.bytes += chunk.length;
    if (this.bytes > MAX_HELD_BYTES) this.chunks = null;
    else this.chunks.push(chunk);
  }

  /** Something in the window cannot be replayed (a named statement's bookkeeping): no retry this time. */
  spoil(): void {
    this.chunks = null;
  }

  /** The prefix was answered (or the hold ended): nothing is held. Retries restart at the next transaction. */
  done(): void {
    this.chunks = null;
    this.retries = 0;
  }

  get holding(): boolean {
    return this.chunks !== null;
  }

  /**
   * The bytes to send again if nothing of them can have run; null: no retry. That is so when `sqlstate` says
   * the backend ended before running them, or (`skipped`) when the pipelined hand-over in front of them
   * failed with an ERROR: the server then skips every client message up to the first Sync, and nothing past
   * it was sent while the hand-over was unanswered (ClientSink.syncBehindPrefix).
   */
  take(sqlstate: string | undefined, atBoundary: boolean, skipped = false): Buffer | null {
    const chunks = this.chunks;
    this.chunks = null;
    if (!chunks || !atBoundary || !(endsConnection(sqlstate) || skipped) || this.retries >= MAX_RETRIES) return null;
    this.retries++;
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  }
}
