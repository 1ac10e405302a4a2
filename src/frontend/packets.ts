// Reads the untyped startup packet and typed messages of the login phase from a client socket,
// checking every length before anything is allocated.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
import type net from 'node:net';
import { ProtocolError } from '../protocol/decode.js';

/** PostgreSQL's own cap on a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10_000;
/** Most bytes buffered during login: a client that floods before authenticating is cut off. */
const MAX_LOGIN_BUFFER = 256 * 1024;

/** Pulls whole packets out of a socket during login; leftover bytes go to the session afterwards. */
export class LoginReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: ((ok: boolean) => void) | null = null;
  private ended = false;
  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.buf.length > MAX_LOGIN_BUFFER) {
      this.socket.destroy();
      this.onEnd();
      return;
    }
    this.wake(true);
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake(false);
  };

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
  }

  /** Reads an untyped packet (startup, SSLRequest, CancelRequest): int32 length then body. */
  async untyped(): Promise<Buffer> {
    await this.need(4);
    const len = this.buf.readUInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_PACKET) throw new ProtocolError(`invalid startup packet length ${len}`);
    await this.need(len);
    return this.take(len).subarray(4);
  }

  /** Reads a typed message (type byte, int32 length, body) of at most `maxBody` bytes. */
  async typed(maxBody: number): Promise<{ type: number; body: Buffer }> {
    await this.need(5);
    const type = this.buf[0];
    const len = this.buf.readUInt32BE(1);
    if (len < 4) throw new ProtocolError(`invalid message length ${len}`);
    if (len - 4 > maxBody) throw new ProtocolError(`message of ${len} bytes is larger than the ${maxBody + 4}-byte limit`);
    await this.need(len + 1);
    const frame = this.take(len + 1);
    return { type, body: frame.subarray(5) };
  }

  /** The first byte not read yet, once it has arrived (it stays unread). */
  async firstByte(): Promise<number> {
    await this.need(1);
    return this.buf[0];
  }

  /** True if the client already sent bytes beyond what was read (it must not, before an SSL answer). */
  get hasBuffered(): boolean {
    return this.buf.length > 0;
  }

  /** Stops reading; returns bytes received past the last packet. */
  detach(): Buffer | null {
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onEnd);
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest.length > 0 ? rest : null;
  }

  private take(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  private async need(n: number): Promise<void> {
    while (this.buf.length < n) {
      if (this.ended) throw new ProtocolError('client closed the connection during login');
      const ok = await new Promise<boolean>((resolve) => (this.waiter = resolve));
      if (!ok && this.buf.length < n) throw new ProtocolError('client closed the connection during login');
    }
  }

  private wake(ok: boolean): void {
    const w = this.waiter;
    this.waiter = null;
    w?.(ok);
  }
}
