// A raw protocol client for tests that write exact message sequences: builders for frontend messages (F), a
// socket reader that splits backend messages and waits on them (Raw), and a token login (rawLogin).
import net from 'node:net';
import type { TestProxy } from './proxy.js';
import { errorFields } from '../guard/raw-client.js';

export interface Msg {
  type: string;
  body: Buffer;
}

export function cstr(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8');
}

export function msg(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeUInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

export function startup(params: Record<string, string>, version = 196608): Buffer {
  const parts: Buffer[] = [];
  const v = Buffer.alloc(4);
  v.writeUInt32BE(version, 0);
  parts.push(v);
  for (const [k, val] of Object.entries(params)) parts.push(cstr(k), cstr(val));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(4 + body.length, 0);
  return Buffer.concat([len, body]);
}

export const F = {
  query: (sql: string) => msg('Q', cstr(sql)),
  parse: (name: string, sql: string, types: number[] = []) => {
    const t = Buffer.alloc(2 + 4 * types.length);
    t.writeUInt16BE(types.length, 0);
    types.forEach((o, i) => t.writeUInt32BE(o, 2 + 4 * i));
    return msg('P', Buffer.concat([cstr(name), cstr(sql), t]));
  },
  bind: (portal: string, stmt: string, params: Array<string | null> = []) => {
    const parts: Buffer[] = [cstr(portal), cstr(stmt), Buffer.from([0, 0])];
    const n = Buffer.alloc(2);
    n.writeUInt16BE(params.length, 0);
    parts.push(n);
    for (const p of params) {
      const l = Buffer.alloc(4);
      l.writeInt32BE(p === null ? -1 : Buffer.byteLength(p), 0);
      parts.push(l);
      if (p !== null) parts.push(Buffer.from(p));
    }
    parts.push(Buffer.from([0, 0]));
    return msg('B', Buffer.concat(parts));
  },
  describe: (kind: 'S' | 'P', name: string) => msg('D', Buffer.concat([Buffer.from(kind), cstr(name)])),
  execute: (portal = '', rows = 0) => {
    const r = Buffer.alloc(4);
    r.writeUInt32BE(rows, 0);
    return msg('E', Buffer.concat([cstr(portal), r]));
  },
  close: (kind: 'S' | 'P', name: string) => msg('C', Buffer.concat([Buffer.from(kind), cstr(name)])),
  sync: () => msg('S'),
  flush: () => msg('H'),
  terminate: () => msg('X'),
  copyData: (b: Buffer | string) => msg('d', Buffer.isBuffer(b) ? b : Buffer.from(b)),
  copyDone: () => msg('c'),
  copyFail: (why: string) => msg('f', cstr(why)),
};

export class Raw {
  readonly msgs: Msg[] = [];
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;
  /** Untyped single bytes (answers to SSLRequest) while `single` > 0. */
  single = 0;
  readonly singles: string[] = [];
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', () => {});
  }
  static open = new Set<Raw>();
  static connect(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        const r = new Raw(s);
        Raw.open.add(r);
        resolve(r);
      });
      s.once('error', reject);
    });
  }
  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.single > 0 && this.buf.length > 0) {
      this.singles.push(String.fromCharCode(this.buf[0]));
      this.buf = this.buf.subarray(1);
      this.single--;
    }
    while (this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readUInt32BE(1)) {
      const len = this.buf.readUInt32BE(1);
      this.msgs.push({ type: String.fromCharCode(this.buf[0]), body: Buffer.from(this.buf.subarray(5, 1 + len)) });
      this.buf = this.buf.subarray(1 + len);
    }
    this.wake();
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }
  send(...b: Buffer[]): void {
    this.sock.write(Buffer.concat(b));
  }
  /** Waits until `pred` holds over the messages (or the socket closes, or timeout); returns whether it held. */
  async waitFor(pred: (m: Msg[]) => boolean, ms = 5000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!pred(this.msgs)) {
      if (this.closed || Date.now() > deadline) return pred(this.msgs);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return true;
  }
  count(type: string): number {
    return this.msgs.filter((m) => m.type === type).length;
  }
  async untilRfq(n: number, ms = 5000): Promise<Msg[]> {
    const start = this.msgs.length;
    const before = this.count('Z');
    const ok = await this.waitFor(() => this.count('Z') >= before + n, ms);
    if (!ok) throw new Error(`timed out waiting for ${n} ReadyForQuery; got ${this.msgs.slice(start).map((m) => m.type).join('')} closed=${this.closed}`);
    return this.msgs.slice(start);
  }
  errors(from = 0): Array<Record<string, string>> {
    return this.msgs.slice(from).filter((m) => m.type === 'E').map((m) => errorFields(m.body));
  }
  waitClosed(ms = 5000): Promise<boolean> {
    return this.waitFor(() => this.closed, ms).then(() => this.closed);
  }
  destroy(): void {
    this.sock.destroy();
  }
}

/** Logs in over a raw socket with a token; resolves once ReadyForQuery arrives. */
export async function rawLogin(t: TestProxy, tenant = 'acme', extra: Record<string, string> = {}, version = 196608): Promise<Raw> {
  const r = await Raw.connect(t.proxy.port);
  r.send(startup({ user: 'app', database: t.database, ...extra }, version));
  const ok = await r.waitFor((m) => m.some((x) => x.type === 'R' || x.type === 'E'));
  if (!ok) throw new Error('no auth request');
  const auth = r.msgs.find((x) => x.type === 'R' || x.type === 'E')!;
  if (auth.type === 'E') throw new Error(`login refused: ${JSON.stringify(errorFields(auth.body))}`);
  r.send(msg('p', cstr(await t.token(tenant))));
  await r.untilRfq(1);
  return r;
}

/** Waits until the pool holds no backend for any client and none is busy (held 0, busy 0), or `ms` passes. */
export async function poolSettles(t: TestProxy, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const s = t.proxy.pool.stats();
    if (s.held === 0 && s.busy === 0) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
