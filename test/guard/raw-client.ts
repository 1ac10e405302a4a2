// A protocol-level test client for attacks no driver sends: FunctionCall by OID, a Parse larger than the
// guard reads (streamed with backpressure, never held in memory), and startup parameters of our choosing.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
import net from 'node:net';
import { serialize } from 'pg-protocol';

export interface Message {
  type: string;
  body: Buffer;
}

export class RawClient {
  private buf = Buffer.alloc(0);
  private readonly queue: Message[] = [];
  private waiter: (() => void) | null = null;
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 5) {
        const len = this.buf.readUInt32BE(1);
        if (this.buf.length < 1 + len) break;
        this.queue.push({ type: String.fromCharCode(this.buf[0]), body: this.buf.subarray(5, 1 + len) });
        this.buf = this.buf.subarray(1 + len);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Logs in with a token as the cleartext password; resolves after the first ReadyForQuery. */
  static async connect(port: number, params: Record<string, string>, password: string): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.setNoDelay(true);
    const c = new RawClient(socket);
    socket.write(startupPacket(params));
    for (;;) {
      const m = await c.next();
      if (m.type === 'R' && m.body.readUInt32BE(0) === 3) socket.write(serialize.password(password));
      else if (m.type === 'E') throw Object.assign(new Error(errorFields(m.body).M), { code: errorFields(m.body).C });
      else if (m.type === 'Z') return c;
    }
  }

  async next(timeoutMs = 20_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > deadline) throw new Error('timed out waiting for a message');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 200);
      });
    }
    return this.queue.shift()!;
  }

  /** Messages up to and including the next ReadyForQuery. */
  async untilReady(): Promise<Message[]> {
    const out: Message[] = [];
    for (;;) {
      const m = await this.next();
      out.push(m);
      if (m.type === 'Z') return out;
    }
  }

  /** Writes bytes, waiting for the socket to drain (backpressure). */
  async write(bytes: Buffer): Promise<void> {
    if (!this.socket.write(bytes)) await new Promise<void>((resolve) => this.socket.once('drain', resolve));
  }

  /** A simple Query; returns the first column of the rows, and the error fields if any. */
  async query(sql: string): Promise<{ rows: Array<string | null>; error: Record<string, string> | null; status: string }> {
    await this.write(serialize.query(sql));
    return summarise(await this.untilReady());
  }

  end(): void {
    this.socket.destroy();
  }
}

/** A StartupMessage with exactly these parameters (pg-protocol's adds client_encoding of its own). */
export function startupPacket(params: Record<string, string>): Buffer {
  const pairs = Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0${v}\0`, 'utf8')]);
  const body = Buffer.concat([...pairs, Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length, 0);
  head.writeUInt32BE(196608, 4); // protocol 3.0
  return Buffer.concat([head, body]);
}

/** FunctionCall ('F') of `oid` with text arguments and a text result. */
export function functionCall(oid: number, args: string[]): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4 + 2 + 2 + 2);
  head.writeUInt32BE(oid, 0);
  head.writeUInt16BE(1, 4); // one format code for all arguments
  head.writeUInt16BE(0, 6); // text
  head.writeUInt16BE(args.length, 8);
  parts.push(head);
  for (const a of args) {
    const v = Buffer.from(a, 'utf8');
    const len = Buffer.alloc(4);
    len.writeInt32BE(v.length, 0);
    parts.push(len, v);
  }
  parts.push(Buffer.from([0, 0])); // text result
  const body = Buffer.concat(parts);
  const frame = Buffer.alloc(5);
  frame[0] = 0x46; // 'F'
  frame.writeUInt32BE(4 + body.length, 1);
  return Buffer.concat([frame, body]);
}

export function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let p = 0;
  while (p < body.length && body[p] !== 0) {
    const end = body.indexOf(0, p + 1);
    fields[String.fromCharCode(body[p])] = body.toString('utf8', p + 1, end);
    p = end + 1;
  }
  return fields;
}

export function summarise(msgs: Message[]): { rows: Array<string | null>; error: Record<string, string> | null; status: string } {
  const rows: Array<string | null> = [];
  let error: Record<string, string> | null = null;
  let status = '';
  for (const m of msgs) {
    if (m.type === 'D') {
      const len = m.body.readInt32BE(2);
      rows.push(len < 0 ? null : m.body.toString('utf8', 6, 6 + len));
    } else if (m.type === 'V') {
      const len = m.body.readInt32BE(0);
      rows.push(len < 0 ? null : m.body.toString('utf8', 4, 4 + len));
    } else if (m.type === 'E' && !error) error = errorFields(m.body);
    else if (m.type === 'Z') status = String.fromCharCode(m.body[0]);
  }
  return { rows, error, status };
}

/**
 * Streams a Parse of `prefix` padded with a trailing comment to `totalBytes`, then Bind, Execute, Sync,
 * in 1 MB writes: the test never holds the message in memory.
 */
export async function streamHugeParse(c: RawClient, prefix: string, totalBytes: number): Promise<void> {
  const head = Buffer.from(`\0${prefix} --`, 'utf8'); // unnamed statement, then the text
  const tail = Buffer.from([0, 0, 0]); // end of text, zero parameter types
  const pad = totalBytes - head.length - tail.length;
  const frame = Buffer.alloc(5);
  frame[0] = 0x50; // 'P'
  frame.writeUInt32BE(4 + totalBytes, 1);
  await c.write(Buffer.concat([frame, head]));
  const chunk = Buffer.alloc(1 << 20, 0x78); // 'x'
  for (let left = pad; left > 0; left -= chunk.length) await c.write(left >= chunk.length ? chunk : chunk.subarray(0, left));
  await c.write(Buffer.concat([tail, serialize.bind({}), serialize.execute({}), serialize.sync()]));
}

/** A CopyData message carrying `s`. */
export function copyData(s: string): Buffer {
  const b = Buffer.from(s);
  const h = Buffer.alloc(5);
  h[0] = 0x64;
  h.writeUInt32BE(4 + b.length, 1);
  return Buffer.concat([h, b]);
}

/** A CopyDone message. */
export const copyDone = Buffer.from([0x63, 0, 0, 0, 4]);
