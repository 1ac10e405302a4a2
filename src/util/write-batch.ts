// Batches what one network read makes the proxy write to a socket into one write. A transaction's answer
// (RowDescription … CommandComplete, then ReadyForQuery) or its start (hand-over, context prefix, the
// client's Query) are a few small buffers: copied into one they cost one stream write, where cork/uncork
// cost a write per buffer plus Node's writev assembly. Larger batches keep their buffers and go out
// through writev uncopied, so big results are never copied.
import type net from 'node:net';

/** Batches up to this size are copied into one buffer; larger ones are written as they are (writev). */
const CONCAT_MAX = 16 * 1024;
/** A batch this large is written at once, without waiting for the end of the read. */
const FLUSH_AT = 256 * 1024;

export class WriteBatch {
  private parts: Buffer[] = [];
  private bytes = 0;
  private depth = 0;

  constructor(private readonly socket: net.Socket) {}

  /** Starts batching; nestable, the outermost end() writes. */
  begin(): void {
    this.depth++;
  }

  /**
   * Writes `bytes`, or queues them while batching. Returns false when the socket's buffer is full (known
   * only once written: while batching, at the flush that end() or a large batch makes).
   */
  write(bytes: Buffer): boolean {
    if (this.depth === 0) return this.out(bytes);
    this.parts.push(bytes);
    this.bytes += bytes.length;
    return this.bytes >= FLUSH_AT ? this.flush() : true;
  }

  /** Ends one begin(); the outermost writes the batch. Returns false when the socket's buffer is full. */
  end(): boolean {
    if (this.depth === 0) return true;
    this.depth--;
    return this.depth === 0 ? this.flush() : true;
  }

  /** Writes what is queued now (e.g. before a final error is sent with socket.end()). */
  flush(): boolean {
    const parts = this.parts;
    const n = parts.length;
    if (n === 0) return !this.socket.writableNeedDrain;
    const bytes = this.bytes;
    this.parts = [];
    this.bytes = 0;
    if (n === 1) return this.out(parts[0]);
    if (bytes <= CONCAT_MAX) return this.out(Buffer.concat(parts, bytes));
    this.socket.cork();
    let ok = true;
    for (const p of parts) ok = this.out(p);
    this.socket.uncork();
    return ok;
  }

  private out(bytes: Buffer): boolean {
    // A socket ended or destroyed meanwhile (the client was told FATAL, the backend closed) takes nothing more.
    if (this.socket.destroyed || this.socket.writableEnded) return true;
    return this.socket.write(bytes);
  }
}
