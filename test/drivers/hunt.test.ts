// Driver-author and SRE probes: protocol edges and faults that independent driver and fault suites would hit.
// Each test asserts the correct (PostgreSQL / PgBouncer-like) behaviour.
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

// ---- a raw protocol client ----------------------------------------------------------------------

interface Msg {
  type: string;
  body: Buffer;
}

function cstr(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8');
}

function msg(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeUInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

function startup(params: Record<string, string>, version = 196608): Buffer {
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

const F = {
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

function errFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let p = 0;
  while (p < body.length && body[p] !== 0) {
    const end = body.indexOf(0, p + 1);
    out[String.fromCharCode(body[p])] = body.toString('utf8', p + 1, end);
    p = end + 1;
  }
  return out;
}

class Raw {
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
  static connect(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => resolve(new Raw(s)));
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
    return this.msgs.slice(from).filter((m) => m.type === 'E').map((m) => errFields(m.body));
  }
  waitClosed(ms = 5000): Promise<boolean> {
    return this.waitFor(() => this.closed, ms).then(() => this.closed);
  }
  destroy(): void {
    this.sock.destroy();
  }
}

/** Logs in over a raw socket with a token; resolves once ReadyForQuery arrives. */
async function rawLogin(t: TestProxy, tenant = 'acme', extra: Record<string, string> = {}, version = 196608): Promise<Raw> {
  const r = await Raw.connect(t.proxy.port);
  r.send(startup({ user: 'app', database: t.database, ...extra }, version));
  const ok = await r.waitFor((m) => m.some((x) => x.type === 'R' || x.type === 'E'));
  if (!ok) throw new Error('no auth request');
  const auth = r.msgs.find((x) => x.type === 'R' || x.type === 'E')!;
  if (auth.type === 'E') throw new Error(`login refused: ${JSON.stringify(errFields(auth.body))}`);
  r.send(msg('p', cstr(await t.token(tenant))));
  await r.untilRfq(1);
  return r;
}

// -------------------------------------------------------------------------------------------------

describe('driver hunt', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'drv_hunt', { pool: { size: 2 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('protocol 3.2 startup (libpq 18 max_protocol_version=3.2) is negotiated down to 3.0, not refused', async () => {
    const r = await Raw.connect(t.proxy.port);
    r.send(startup({ user: 'app', database: t.database, '_pq_.test_option': 'x' }, (3 << 16) | 2));
    await r.waitFor((m) => m.some((x) => x.type === 'R' || x.type === 'E'));
    expect(r.errors()).toEqual([]);
    const npv = r.msgs.find((m) => m.type === 'v');
    expect(npv).toBeDefined();
    // newest minor supported: 0; one unrecognised option.
    expect(npv!.body.readInt32BE(0)).toBe((3 << 16) | 0);
    expect(npv!.body.readInt32BE(4)).toBe(1);
    r.send(msg('p', cstr(await t.token('acme'))));
    await r.untilRfq(1);
    const key = r.msgs.find((m) => m.type === 'K');
    expect(key!.body.length).toBe(8); // a 3.0 key: the client accepted 3.0
    r.send(F.query('SELECT 1'));
    await r.untilRfq(1);
    r.destroy();
  });

  it('protocol 3.2 without _pq_ options gets NegotiateProtocolVersion 3.0 with no options', async () => {
    const r = await Raw.connect(t.proxy.port);
    r.send(startup({ user: 'app', database: t.database }, (3 << 16) | 2));
    await r.waitFor((m) => m.some((x) => x.type === 'R' || x.type === 'E'));
    expect(r.errors()).toEqual([]);
    const npv = r.msgs.find((m) => m.type === 'v');
    expect(npv?.body.readInt32BE(0)).toBe(3 << 16);
    expect(npv?.body.readInt32BE(4)).toBe(0);
    r.destroy();
  });

  it('SQL DEALLOCATE of a protocol-prepared statement in a later transaction succeeds (psycopg 3 cache eviction)', async () => {
    const r = await rawLogin(t);
    r.send(F.parse('s1', 'SELECT 1'), F.bind('', 's1'), F.execute(), F.sync());
    await r.untilRfq(1);
    const from = r.msgs.length;
    r.send(F.query('DEALLOCATE s1'));
    await r.untilRfq(1);
    expect(r.errors(from)).toEqual([]);
    // Re-preparing the name afterwards works, as on a direct connection.
    const from2 = r.msgs.length;
    r.send(F.parse('s1', 'SELECT 2'), F.bind('', 's1'), F.execute(), F.sync());
    await r.untilRfq(1);
    expect(r.errors(from2)).toEqual([]);
    r.destroy();
  });

  it('DEALLOCATE ALL, then the same statement name parsed again in a later transaction: no 42P05', async () => {
    const r = await rawLogin(t);
    r.send(F.parse('s1', 'SELECT 1'), F.bind('', 's1'), F.execute(), F.sync());
    await r.untilRfq(1);
    r.send(F.query('DEALLOCATE ALL'));
    await r.untilRfq(1);
    const from = r.msgs.length;
    r.send(F.parse('s1', 'SELECT 2'), F.bind('', 's1'), F.execute(), F.sync());
    await r.untilRfq(1);
    expect(r.errors(from)).toEqual([]);
    r.destroy();
  });

  it('a direct-TLS ClientHello (sslnegotiation=direct) without listen.tls is refused at once, not left hanging', async () => {
    const r = await Raw.connect(t.proxy.port);
    // The first bytes of a TLS 1.x ClientHello record.
    const hello = Buffer.from('16030100c8010000c40303', 'hex');
    const started = Date.now();
    r.send(Buffer.concat([hello, Buffer.alloc(190)]));
    expect(await r.waitClosed(3000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
