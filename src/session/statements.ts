// Protocol-level prepared statements that survive transaction pooling. DISCARD ALL deallocates every
// statement before a backend is reused, so the proxy keeps each client's Parse messages and prepares a
// statement again, on whichever backend the client holds, just before a Bind or Describe needs it. The
// server's answers to those extra Parse messages (ParseComplete) are matched by position and swallowed,
// so the client sees exactly what a direct connection would show.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY

/**
 * Bytes of Parse messages kept for re-preparing, across all clients (pool.max_prepared_statement_bytes_total):
 * with the per-client bound, what hostile clients can make the proxy keep is bounded whatever they do.
 */
export interface RetainedBytes {
  used: number;
  readonly limit: number;
}

/** A Parse sent to the server and not yet answered. */
interface PendingParse {
  /** Sync segment it was sent in: an error skips the rest of its segment, this Parse included. */
  seg: number;
  name: string;
  /** Sent by the proxy (re-prepare): its ParseComplete is not shown to the client. */
  synthetic: boolean;
  /** The client's own Parse frame, kept once the server accepts it. */
  frame: Buffer | null;
  /** A SQL DEALLOCATE sent after it removes it again (see sqlDeallocate). */
  deallocated?: boolean;
}

export interface StatementLimits {
  /** Most statements remembered per client; the least recently used is forgotten first. */
  maxCount: number;
  /** Most bytes of Parse messages remembered per client. */
  maxBytes: number;
}

/** Stands for a statement name the proxy could not read (longer than it peeks at): never matches a real one. */
const UNTRACKED = '\0';

export class StatementCache {
  /** name → the client's Parse frame; Map order is recency (LRU first). */
  private readonly defs = new Map<string, Buffer>();
  private bytes = 0;
  /** Statements that exist on the backend the client holds now. */
  private readonly onBackend = new Set<string>();
  private pending: PendingParse[] = [];

  constructor(
    private readonly limits: StatementLimits,
    private readonly budget: RetainedBytes,
  ) {}

  /** The client is gone: its kept statements go back to the global budget. */
  dispose(): void {
    this.budget.used -= this.bytes;
    this.bytes = 0;
    this.defs.clear();
  }

  /** A new backend: nothing is prepared on it (it is fresh or was reset). */
  newBackend(): void {
    this.onBackend.clear();
    this.pending = [];
  }

  get size(): number {
    return this.defs.size;
  }

  /**
   * The client sends Parse. Returns a Parse to send before it, or null. When the client redefines a name it
   * never closed, the old definition is prepared first so the server answers "already exists", as it would
   * on a direct connection.
   */
  clientParse(name: string | null, keep: Buffer | null, seg: number): Buffer | null {
    // Every Parse gets its place in the queue of pending ParseCompletes, even one whose name was not read.
    if (name === null) {
      this.pending.push({ seg, name: UNTRACKED, synthetic: false, frame: null });
      return null;
    }
    let inject: Buffer | null = null;
    if (name !== '' && !this.onBackend.has(name) && !this.isPending(name)) inject = this.reprepare(name, seg);
    this.pending.push({ seg, name, synthetic: false, frame: keep });
    return inject;
  }

  /** The client sends Bind or Describe of statement `name`. Returns a Parse to send first, or null. */
  clientUses(name: string, seg: number): Buffer | null {
    if (this.onBackend.has(name) || this.isPending(name)) {
      this.touch(name);
      return null;
    }
    return this.reprepare(name, seg);
  }

  /** The client closes statement `name`: forgotten here; the Close still goes to the server. */
  clientClose(name: string): void {
    this.forget(name);
    this.onBackend.delete(name);
  }

  /**
   * The client ran SQL `DEALLOCATE name` (or `DEALLOCATE ALL`: `name` null) in a simple Query: the
   * statement is gone for the client, so it is not prepared again (a later Parse of the same name would
   * otherwise meet the old definition, 42P05), and whatever of it the server holds is gone there too.
   */
  sqlDeallocate(name: string | null): void {
    const names = name === null ? [...this.defs.keys(), ...this.onBackend] : [name];
    for (const n of names) {
      this.forget(n);
      this.onBackend.delete(n);
    }
    // A Parse still in flight runs before this DEALLOCATE, which then removes it: never counted as prepared.
    for (const p of this.pending) if (name === null || p.name === name) p.deallocated = true;
  }

  /** Nothing is tracked: no statement remembered, prepared on the backend or awaiting its ParseComplete. */
  get tracksNothing(): boolean {
    return this.defs.size === 0 && this.onBackend.size === 0 && this.pending.length === 0;
  }

  /** The client has a statement of this name that the proxy would prepare again. */
  remembers(name: string): boolean {
    return this.defs.has(name);
  }

  /** A simple Query destroys the unnamed statement on the server. */
  simpleQuery(): void {
    this.forget('');
    this.onBackend.delete('');
  }

  /** The server sent ParseComplete: returns true if the client must see it. */
  parseComplete(): boolean {
    const p = this.pending.shift();
    if (!p) return true;
    if (p.deallocated) return !p.synthetic;
    if (p.name !== UNTRACKED) this.onBackend.add(p.name);
    if (p.frame) this.remember(p.name, p.frame);
    return !p.synthetic;
  }

  /** The server reported an error while processing segment `seg`: the rest of that segment was skipped. */
  error(seg: number): void {
    this.pending = this.pending.filter((p) => p.seg !== seg);
  }

  private isPending(name: string): boolean {
    return this.pending.some((p) => p.name === name);
  }

  private reprepare(name: string, seg: number): Buffer | null {
    const frame = this.defs.get(name);
    if (!frame) return null;
    this.touch(name);
    this.pending.push({ seg, name, synthetic: true, frame: null });
    return frame;
  }

  private touch(name: string): void {
    const frame = this.defs.get(name);
    if (frame) {
      this.defs.delete(name);
      this.defs.set(name, frame);
    }
  }

  private remember(name: string, frame: Buffer): void {
    this.forget(name);
    if (frame.length > this.limits.maxBytes) return; // too large to keep: usable in this transaction only
    // Make room within this client's bounds and the global one, oldest first; if the global budget is
    // still short, the statement is not kept (usable in this transaction only, like an oversized one).
    for (const [oldest, f] of this.defs) {
      if (this.defs.size < this.limits.maxCount && this.bytes + frame.length <= this.limits.maxBytes && this.budget.used + frame.length <= this.budget.limit) break;
      this.defs.delete(oldest);
      this.bytes -= f.length;
      this.budget.used -= f.length;
    }
    if (this.defs.size >= this.limits.maxCount || this.budget.used + frame.length > this.budget.limit) return;
    this.defs.set(name, frame);
    this.bytes += frame.length;
    this.budget.used += frame.length;
  }

  private forget(name: string): void {
    const old = this.defs.get(name);
    if (!old) return;
    this.defs.delete(name);
    this.bytes -= old.length;
    this.budget.used -= old.length;
  }
}
