// One pooled backend connection: its socket, its frame position, and whoever reads its messages now
// (a client session while assigned, the reset procedure, or the idle watcher while pooled).
import type net from 'node:net';
import { Backend } from '../protocol/codes.js';
import { decodeErrorFields, decodeParameterStatus } from '../protocol/decode.js';
import { Action, type FrameSink, FrameScanner } from '../protocol/frames.js';
import type { Handshake } from './connect.js';
import { WriteBatch } from '../util/write-batch.js';

/** Largest backend message accepted: PostgreSQL caps a field at 1 GB; this leaves room for the frame. */
const MAX_BACKEND_FRAME = 0x4000_0000 + 1024;
/** Largest backend message body the proxy assembles (errors, notices, parameter status). */
const MAX_INSPECT = 1 << 20;

let nextId = 1;

/** Terminate ('X', length 4). */
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

export class ServerConn {
  readonly id = nextId++;
  readonly socket: net.Socket;
  readonly pid: number;
  readonly secret: Buffer;
  readonly params: Map<string, string>;
  /**
   * The last value of each reported setting the server sent on this connection. The server reports a
   * setting only when it differs from this, so "no report" at a ReadyForQuery means "still this value".
   */
  readonly reported: Map<string, string>;
  /** The last reportedKey(), dropped when one of its names changes value. */
  private keyCache: { names: readonly string[]; key: string } | null = null;
  readonly createdAt = Date.now();
  lastUsedAt = Date.now();
  /** True until a client first sends it anything: such a connection needs no reset. */
  fresh = true;
  closed = false;
  /** Why it closed (set with `closed`), told to any owner that registers after the fact. */
  closeReason = '';
  /** CancelRequests sent for this backend that the server has not closed yet; it is not reused until 0. */
  cancelsInFlight = 0;
  private cancelWaiters: Array<() => void> = [];
  private readonly scanner = new FrameScanner(MAX_BACKEND_FRAME, MAX_INSPECT);
  private sink: FrameSink;
  private readonly closeHandlers = new Set<(reason: string) => void>();
  /** What one client read (or a hand-over and its first messages) writes here leaves in one write. */
  private readonly batch: WriteBatch;

  constructor(hs: Handshake) {
    this.socket = hs.socket;
    this.pid = hs.pid;
    this.secret = hs.secret;
    this.params = hs.params;
    this.reported = new Map(hs.params);
    this.sink = this.idleSink;
    this.batch = new WriteBatch(this.socket);
    // Frames are dispatched to the owner of the moment: an owner may hand the connection on in the middle
    // of a chunk (e.g. at ReadyForQuery), and the rest of that chunk belongs to the next owner.
    // ParameterStatus is read here whoever the owner is, to mirror what the server last reported.
    let ownerAction = Action.Pass;
    const dispatch: FrameSink = {
      classify: (type, length) => {
        if (type !== Backend.ParameterStatus) return this.sink.classify(type, length);
        ownerAction = this.sink.classify(type, length);
        return Action.Inspect;
      },
      inspect: (type, body, own) => {
        if (type !== Backend.ParameterStatus) return this.sink.inspect(type, body, own);
        const [name, value] = decodeParameterStatus(body);
        if (this.reported.get(name) !== value) {
          this.reported.set(name, value);
          if (this.keyCache?.names.includes(name)) this.keyCache = null;
        }
        if (ownerAction === Action.Inspect) return this.sink.inspect(type, body, own);
        return ownerAction === Action.Pass;
      },
      write: (bytes) => this.sink.write(bytes),
    };
    this.socket.on('data', (chunk: Buffer) => {
      // The owner at the start of the chunk batches its writes until the chunk is done, even if it hands
      // the connection on half-way: one writev per chunk instead of one syscall per message.
      const owner = this.sink;
      owner.begin?.();
      try {
        this.scanner.feed(chunk, dispatch);
      } catch (e) {
        this.destroy(`protocol error from server: ${(e as Error).message}`);
      } finally {
        owner.end?.();
      }
    });
    this.socket.on('error', (e) => this.destroy(`socket error: ${e.message}`));
    this.socket.on('close', () => this.destroy('server closed the connection'));
  }

  /**
   * The reported values of `names`, as one string: equal strings mean equal values. Recomputed only after
   * one of them changed, so a caller can tell "nothing to do" at each transaction end with one comparison.
   */
  reportedKey(names: readonly string[]): string {
    const c = this.keyCache;
    if (c && c.names === names) return c.key;
    const key = names.map((n) => this.reported.get(n) ?? '\u0001').join('\u0000');
    this.keyCache = { names, key };
    return key;
  }

  /** Routes this backend's messages to `sink` from the next frame on. */
  attach(sink: FrameSink): void {
    this.sink = sink;
  }

  detach(): void {
    this.sink = this.idleSink;
  }

  /**
   * Writes to the server. On a closed connection nothing is written and false is returned; the owner is
   * never left waiting for an answer, because every close handler, even one registered after the close,
   * is told (see onClose).
   */
  write(bytes: Buffer): boolean {
    if (this.closed) return false;
    return this.batch.write(bytes);
  }

  /** Batches writes until the matching end() (nestable): one write to the server for the lot. */
  begin(): void {
    this.batch.begin();
  }

  /** Ends a begin(); returns false when the server's socket buffer is full (stop reading the client). */
  end(): boolean {
    return this.batch.end();
  }

  /**
   * Registers a close handler; returns its remover (owners change, handlers must not pile up). On a
   * connection that is already closed the handler is called on the next microtask: an owner that takes a
   * backend which died in the same network read still learns of it.
   */
  onClose(handler: (reason: string) => void): () => void {
    if (this.closed) {
      let active = true;
      queueMicrotask(() => {
        if (active) handler(this.closeReason);
      });
      return () => {
        active = false;
      };
    }
    this.closeHandlers.add(handler);
    return () => this.closeHandlers.delete(handler);
  }

  destroy(reason: string): void {
    if (this.closed) return;
    this.socket.destroy();
    this.markClosed(reason);
  }

  /**
   * Closes politely (an idle backend the pool retires): Terminate, then the server closes the socket once its
   * process has exited, so its pg_stat_activity entry is gone by the socket's 'close' (the pool counts it until then).
   * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-TERMINATION
   */
  terminate(reason: string): void {
    if (this.closed) return;
    this.socket.end(TERMINATE);
    this.markClosed(reason);
  }

  private markClosed(reason: string): void {
    this.closed = true;
    this.closeReason = reason;
    const handlers = [...this.closeHandlers];
    this.closeHandlers.clear();
    for (const h of handlers) h(reason);
  }

  /** Calls `fn` once no CancelRequest for this backend is in flight (at once if none is). */
  whenCancelsSettled(fn: () => void): void {
    if (this.cancelsInFlight === 0) fn();
    else this.cancelWaiters.push(fn);
  }

  cancelStarted(): void {
    this.cancelsInFlight++;
  }

  cancelFinished(): void {
    this.cancelsInFlight--;
    if (this.cancelsInFlight === 0) {
      const waiters = this.cancelWaiters;
      this.cancelWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** While pooled nothing is expected; an ErrorResponse (e.g. FATAL on admin shutdown) ends the connection. */
  private readonly idleSink: FrameSink = {
    classify: (type) => (type === Backend.ErrorResponse ? Action.Inspect : Action.Drop),
    inspect: (_type, body) => {
      const f = decodeErrorFields(body);
      this.destroy(`server sent ${f.S ?? 'ERROR'} ${f.C ?? ''} while idle: ${f.M ?? ''}`);
      return false;
    },
    write: () => {},
  };
}
