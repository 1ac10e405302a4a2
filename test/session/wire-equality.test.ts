// Byte-level transparency: the same raw extended-protocol sequences sent through the proxy and straight to
// PostgreSQL must produce identical response frames (binary formats, NULLs, parameters over 32 KB,
// Describe, Execute row limits with PortalSuspended, errors inside a pipeline, Close), across transactions.
import type net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

interface Raw {
  send(...frames: Buffer[]): void;
  /** Frames received until `syncs` ReadyForQuery messages arrived, ParameterStatus left out. */
  until(syncs: number): Promise<string[]>;
  close(): Promise<void>;
}

/** Logs in with node-postgres, then takes over its socket to speak raw protocol. */
async function rawFrom(client: pg.Client): Promise<Raw> {
  client.on('error', () => {}); // it no longer owns the socket once we take it over
  await client.connect();
  const stream = (client as unknown as { connection: { stream: net.Socket } }).connection.stream;
  stream.removeAllListeners('data');
  let buf = Buffer.alloc(0);
  const frames: string[] = [];
  let rfqs = 0;
  let wake: (() => void) | null = null;
  stream.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 5 && buf.length >= 1 + buf.readUInt32BE(1)) {
      const len = buf.readUInt32BE(1);
      const type = String.fromCharCode(buf[0]);
      const body = buf.subarray(5, 1 + len);
      buf = buf.subarray(1 + len);
      if (type === 'S') continue;
      frames.push(type + ':' + body.toString('hex'));
      if (type === 'Z') rfqs++;
    }
    wake?.();
  });
  return {
    send: (...f) => stream.write(Buffer.concat(f)),
    async until(syncs) {
      const start = rfqs;
      const from = frames.length;
      const deadline = Date.now() + 10_000;
      while (rfqs - start < syncs) {
        if (Date.now() > deadline) throw new Error(`timed out; got ${frames.slice(from).map((f) => f[0]).join('')}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      return frames.slice(from);
    },
    close: async () => {
      stream.destroy();
    },
  };
}

/** A Bind with explicit per-parameter formats and raw values (pg-protocol's bind() picks formats itself). */
function bind(portal: string, stmt: string, params: Array<{ binary: boolean; value: Buffer | null }>, resultBinary: boolean): Buffer {
  const parts: Buffer[] = [Buffer.from(portal + '\0' + stmt + '\0')];
  const h = Buffer.alloc(2 + 2 * params.length);
  h.writeInt16BE(params.length, 0);
  params.forEach((p, i) => h.writeInt16BE(p.binary ? 1 : 0, 2 + 2 * i));
  parts.push(h);
  const n = Buffer.alloc(2);
  n.writeInt16BE(params.length, 0);
  parts.push(n);
  for (const p of params) {
    const l = Buffer.alloc(4);
    l.writeInt32BE(p.value === null ? -1 : p.value.length, 0);
    parts.push(l);
    if (p.value) parts.push(p.value);
  }
  parts.push(Buffer.from([0, 1, 0, resultBinary ? 1 : 0]));
  const payload = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head[0] = 0x42;
  head.writeUInt32BE(4 + payload.length, 1);
  return Buffer.concat([head, payload]);
}

describe('wire-level transparency', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'wire_eq', { pool: { size: 1 } });
  });
  afterAll(async () => t?.close());

  async function both(run: (r: Raw) => Promise<string[][]>): Promise<void> {
    const viaProxy = await rawFrom(new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') }));
    const direct = await rawFrom(new pg.Client({ host: t.server.host, port: t.server.port, database: t.database, user: t.poolUser, password: t.poolPassword }));
    try {
      const [a, b] = [await run(viaProxy), await run(direct)];
      expect(a).toEqual(b);
    } finally {
      await viaProxy.close();
      await direct.close();
    }
  }

  it('binary and text formats, NULL and 40 KB parameters, Describe, row limits and PortalSuspended', async () => {
    const int4 = Buffer.alloc(4);
    int4.writeInt32BE(-7, 0);
    const big = Buffer.from('x'.repeat(40_000));
    await both(async (r) => {
      const out: string[][] = [];
      r.send(
        serialize.parse({ name: 'st1', text: 'SELECT $1::int4 AS a, $2::text AS b, $3::bytea AS c, g FROM generate_series(1, 5) g', types: [23, 25, 17] }),
        serialize.describe({ type: 'S', name: 'st1' }),
        bind('p1', 'st1', [{ binary: true, value: int4 }, { binary: false, value: big }, { binary: true, value: null }], true),
        serialize.describe({ type: 'P', name: 'p1' }),
        serialize.execute({ portal: 'p1', rows: 2 }),
        serialize.execute({ portal: 'p1', rows: 2 }),
        serialize.execute({ portal: 'p1', rows: 0 }),
        serialize.sync(),
      );
      out.push(await r.until(1));
      // Next transaction: the statement is used again (the proxy re-prepares it on its backend).
      r.send(bind('', 'st1', [{ binary: false, value: Buffer.from('42') }, { binary: false, value: null }, { binary: false, value: Buffer.from('\\x0102') }], false), serialize.execute({}), serialize.sync());
      out.push(await r.until(1));
      return out;
    });
  });

  it('an error inside a pipeline skips to Sync, then the next segment runs; Close and reuse behave as direct', async () => {
    await both(async (r) => {
      const out: string[][] = [];
      r.send(
        serialize.parse({ name: 'ok1', text: 'SELECT 1 AS one' }),
        serialize.bind({ statement: 'ok1' }),
        serialize.execute({}),
        serialize.parse({ name: 'bad', text: 'SELECT 1/0' }),
        serialize.bind({ statement: 'bad' }),
        serialize.execute({}),
        serialize.parse({ name: 'skipped', text: 'SELECT 2' }),
        serialize.sync(),
        serialize.bind({ statement: 'ok1' }),
        serialize.execute({}),
        serialize.sync(),
      );
      out.push(await r.until(2));
      r.send(serialize.close({ type: 'S', name: 'ok1' }), serialize.bind({ statement: 'ok1' }), serialize.execute({}), serialize.sync());
      out.push(await r.until(1));
      r.send(serialize.bind({ statement: 'skipped' }), serialize.execute({}), serialize.sync());
      out.push(await r.until(1));
      return out.map((frames) => frames.map((f) => (f.startsWith('E:') ? 'E:' + errorCode(f) : f)));
    });
  });
});

/** SQLSTATE of an ErrorResponse frame in hex form (messages may carry line numbers that differ). */
function errorCode(frame: string): string {
  const body = Buffer.from(frame.slice(2), 'hex');
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const end = body.indexOf(0, pos + 1);
    if (body[pos] === 0x43) return body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return '?';
}
