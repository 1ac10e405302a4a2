// Flow control between a session's two sockets: which one is paused and why, the client bytes kept while it waits for a backend, the last FATAL.
import type net from 'node:net';
import type { ServerConn } from '../backend/server.js';
import { errorResponse, type ErrorFields } from '../protocol/encode.js';
import type { WriteBatch } from '../util/write-batch.js';

/** Client bytes kept while waiting for a backend before the client is paused (see ClientFlow.stash). */
const STASH_MAX = 64 * 1024;
/** How long an ended client socket may take to flush its FATAL before it is destroyed anyway. */
const FATAL_FLUSH_MS = 2000;

export class ClientFlow {
  /**
   * Client bytes read while waiting for a backend. The client is paused only once they pass STASH_MAX (a
   * client normally waits for its answer): pausing and resuming every waiting client costs two epoll_ctl
   * calls per transaction under load.
   */
  private stash: Buffer[] = [];
  private stashBytes = 0;
  private clientPaused = false;
  /** The client was paused because it does not read the proxy's own answers (see answerLocally). */
  private pausedForClientOutput = false;
  private serverPaused = false;

  /**
   * @param out every write to the client (batched while a server read is handled)
   * @param waiting true while the session waits for a backend: its client is not resumed then
   */
  constructor(
    private readonly client: net.Socket,
    private readonly out: WriteBatch,
    private readonly waiting: () => boolean,
  ) {}

  /** True while the proxy does not read the client (backpressure, a full stash, the gate). */
  get paused(): boolean {
    return this.clientPaused;
  }

  /** A transaction starts: its first bytes are kept until a backend is held. */
  startStash(first: Buffer): void {
    this.stash = [first];
    this.stashBytes = first.length;
  }

  /** More client bytes while waiting for a backend. */
  keep(chunk: Buffer): void {
    this.stash.push(chunk);
    this.stashBytes += chunk.length;
    if (this.stashBytes > STASH_MAX) this.pauseClient();
  }

  /** A backend is held: the kept bytes, to be forwarded in order; the client is read again. */
  takeStash(): Buffer[] {
    const chunks = this.stash;
    this.stash = [];
    this.stashBytes = 0;
    this.resumeClient();
    return chunks;
  }

  /** A new transaction began inside the stash being forwarded: the chunks from `from` on wait for its backend. */
  keepFrom(chunks: Buffer[], from: number): void {
    for (let j = from; j < chunks.length; j++) {
      this.stash.push(chunks[j]);
      this.stashBytes += chunks[j].length;
    }
    if (this.stashBytes > STASH_MAX) this.pauseClient();
  }

  /** The session ended: nothing kept is sent. */
  dropStash(): void {
    this.stash = [];
  }

  /**
   * Writes an answer the proxy gives itself (no backend involved). If the client is not reading, stop
   * reading from it until its socket drains: a client streaming Syncs without reading can make the proxy
   * hold at most one chunk's worth of answers.
   */
  answerLocally(bytes: Buffer): void {
    if (this.out.write(bytes) || this.clientPaused) return;
    this.clientPaused = true;
    this.pausedForClientOutput = true;
    this.client.pause();
  }

  /** Stops reading the client; with `server`, until that server's socket drains. */
  pauseClient(server?: ServerConn): void {
    if (this.clientPaused) return;
    this.clientPaused = true;
    this.client.pause();
    if (server) server.socket.once('drain', () => this.resumeClient());
  }

  resumeClient(): void {
    if (!this.clientPaused || this.waiting()) return;
    this.clientPaused = false;
    this.client.resume();
  }

  /** The client reads too slowly for the server's answers: stop reading `server` until the client drains. */
  pauseServer(server: ServerConn | null): void {
    if (this.serverPaused || !server) return;
    this.serverPaused = true;
    server.socket.pause();
  }

  /** Reads `server` again if it was paused (the client drained, or the backend is given back). */
  resumeServer(server: ServerConn | null): void {
    if (!this.serverPaused) return;
    this.serverPaused = false;
    server?.socket.resume();
  }

  /** The client's socket drained: the held server is read again, and a client paused for not reading is read again. */
  clientDrained(server: ServerConn | null): void {
    this.resumeServer(server);
    if (this.pausedForClientOutput) {
      this.pausedForClientOutput = false;
      this.resumeClient();
    }
  }

  /**
   * FATAL to the client, and its socket ended: flushing the error, also through TLS and a full send
   * buffer, and destroyed only once closed, or after a grace period if the client never reads: destroying
   * it at once could drop the FATAL unsent.
   */
  endWithFatal(fields: ErrorFields): void {
    const client = this.client;
    this.out.flush(); // what the client was already due goes first
    client.end(errorResponse({ ...fields, severity: 'FATAL' }));
    client.resume(); // read (and ignore) what still arrives, so the close is seen
    const timer = setTimeout(() => client.destroy(), FATAL_FLUSH_MS);
    timer.unref();
    client.once('close', () => clearTimeout(timer));
  }
}
