// Red-team pass 2: cancel races at the hand-over, disconnects at every point, and today's new code
// (copy-in sync counting, the local DEALLOCATE answer, direct TLS, the idle clock of holds without a Sync).
// Each test asserts the SAFE behaviour.
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { RawClient, errorFields, startupPacket, summarise, type Message } from '../guard/raw-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A RawClient that also keeps the BackendKeyData the proxy issued. */
async function rawWithKey(port: number, params: Record<string, string>, password: string): Promise<{ c: RawClient; pid: number; secret: Buffer }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.setNoDelay(true);
  const c = new (RawClient as unknown as new (s: net.Socket) => RawClient)(socket);
  socket.write(startupPacket(params));
  let pid = 0;
  let secret = Buffer.alloc(0);
  for (;;) {
    const m = await c.next();
    if (m.type === 'R' && m.body.readUInt32BE(0) === 3) socket.write(serialize.password(password));
    else if (m.type === 'K') {
      pid = m.body.readUInt32BE(0);
      secret = Buffer.from(m.body.subarray(4, 8));
    } else if (m.type === 'E') throw Object.assign(new Error(errorFields(m.body).M), { code: errorFields(m.body).C });
    else if (m.type === 'Z') return { c, pid, secret };
  }
}

/** Sends a CancelRequest to `port`; resolves when the proxy closes it. */
function sendCancel(port: number, pid: number, secret: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const msg = Buffer.alloc(16);
    msg.writeUInt32BE(16, 0);
    msg.writeUInt32BE(80877102, 4);
    msg.writeUInt32BE(pid, 8);
    secret.copy(msg, 12, 0, 4);
    s.on('connect', () => s.write(msg));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

async function untilReadyOrClose(c: RawClient, timeoutMs = 10_000): Promise<{ msgs: Message[]; closed: boolean }> {
  const msgs: Message[] = [];
  for (;;) {
    try {
      const m = await c.next(timeoutMs);
      msgs.push(m);
      if (m.type === 'Z') return { msgs, closed: false };
    } catch {
      return { msgs, closed: true };
    }
  }
}

describe('hunt 2: cancel at the hand-over', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'hunt2_cancel', { pool: { size: 1, acquire_timeout_ms: 5000, reset_delay_ms: 0 } });
  });
  afterAll(async () => t?.close());

  const params = () => ({ user: 'app', database: t.database });

  it("a tenant's cancel during the pipelined hand-over does not strike the previous tenant's read-back (no false READBACK_FAILED on another client)", async () => {
    const admin = await t.admin();
    // A fresh backend: the read-back's lookup of current_setting is a catalog-cache miss on it.
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [t.poolUser]);
    await sleep(200);
    const a = await rawWithKey(t.proxy.port, params(), await t.token('acme'));
    const b = await rawWithKey(t.proxy.port, params(), await t.token('globex'));
    try {
      expect((await a.c.query('BEGIN')).status).toBe('T');
      // globex waits for the only backend.
      const started = Date.now();
      await b.c.write(serialize.query('SELECT pg_sleep(5)'));
      await sleep(100);
      // Something slows the read-back (here: a catalog lock; in production: load). acme commits, the backend is
      // handed to globex with acme's read-back pipelined in front.
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE pg_catalog.pg_proc IN ACCESS EXCLUSIVE MODE');
      await a.c.write(serialize.query('COMMIT'));
      const ra = summarise(await a.c.untilReady());
      expect(ra.status).toBe('I');
      await sleep(150);
      // globex cancels "its own query".
      await sendCancel(t.proxy.port, b.pid, b.secret);
      await sleep(300);
      await admin.query('ROLLBACK');
      const rb = await untilReadyOrClose(b.c);
      // globex's cancel still reaches its own statement, once the hand-over is answered.
      expect(rb.closed).toBe(false);
      expect(summarise(rb.msgs).error?.C).toBe('57014');
      expect(Date.now() - started).toBeLessThan(4000);
      // acme did nothing wrong: it must still be connected and usable (it was told FATAL 42501 "could not be verified").
      expect(a.c.closed).toBe(false);
      await Promise.race([a.c.write(serialize.query('SELECT 1')), sleep(500)]);
      const after = summarise((await untilReadyOrClose(a.c, 5000)).msgs);
      expect(after.error).toBeNull();
      expect(after.rows).toEqual(['1']);
    } finally {
      await admin.query('ROLLBACK').catch(() => {});
      a.c.end();
      b.c.end();
    }
  });
});

describe('hunt 2: holds without a Sync (idle-in-transaction clock)', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'hunt2_idle', {
      pool: { size: 1, acquire_timeout_ms: 1500, idle_in_transaction_timeout_ms: 1000, reset_delay_ms: 0 },
    });
    const admin = await t.admin();
    await admin.query(`CREATE TABLE IF NOT EXISTS public.cp_target (a int); GRANT INSERT, SELECT ON public.cp_target TO ${t.poolUser}`);
  });
  afterAll(async () => t?.close());

  const raw = async (tenant: string) => RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token(tenant));
  const otherGetsBackend = async (): Promise<string | null> => {
    const g = await t.pgClient('globex');
    try {
      await g.query('SELECT 1');
      return null;
    } catch (e) {
      return (e as Error).message;
    } finally {
      await g.end().catch(() => {});
    }
  };

  it('a Parse sent in the same write as a Query (held past the idle ReadyForQuery) is bound by idle_in_transaction_timeout_ms', async () => {
    const c = await raw('acme');
    try {
      await c.write(Buffer.concat([serialize.query('SELECT 1'), serialize.parse({ text: 'SELECT 2' })]));
      expect(summarise(await c.untilReady()).rows).toEqual(['1']);
      await sleep(2000);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });

  it('a Parse trailing an extended Sync in the same write is bound by idle_in_transaction_timeout_ms', async () => {
    const c = await raw('acme');
    try {
      await c.write(Buffer.concat([serialize.parse({ text: 'SELECT 1' }), serialize.bind({}), serialize.execute({}), serialize.sync(), serialize.parse({ name: 'x', text: 'SELECT 2' })]));
      expect(summarise(await c.untilReady()).rows).toEqual(['1']);
      await sleep(2000);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });
});

function copyData(s: string): Buffer {
  const b = Buffer.from(s);
  const h = Buffer.alloc(5);
  h[0] = 0x64;
  h.writeUInt32BE(4 + b.length, 1);
  return Buffer.concat([h, b]);
}
const copyDone = Buffer.from([0x63, 0, 0, 0, 4]);

describe('hunt 2: COPY FROM STDIN sync counting', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'hunt2_copy', {
      pool: { size: 1, acquire_timeout_ms: 1500, idle_in_transaction_timeout_ms: 1000, query_timeout_ms: 1000, reset_delay_ms: 0 },
    });
  });
  afterAll(async () => t?.close());

  const raw = async (tenant: string) => RawClient.connect(t.proxy.port, { user: 'app', database: t.database }, await t.token(tenant));
  const otherGetsBackend = async (): Promise<string | null> => {
    const g = await t.pgClient('globex');
    try {
      await g.query('SELECT 1');
      return null;
    } catch (e) {
      return (e as Error).message;
    } finally {
      await g.end().catch(() => {});
    }
  };

  it('a Sync sent during the second COPY of one Query does not pin the backend past the documented timeouts', async () => {
    const c = await raw('acme');
    try {
      await c.write(serialize.query('CREATE TEMP TABLE cp2 (a int); COPY cp2 FROM STDIN; COPY cp2 FROM STDIN'));
      await sleep(200);
      await c.write(Buffer.concat([copyData('1\n'), copyDone]));
      await sleep(200);
      await c.write(Buffer.concat([serialize.sync(), copyData('2\n'), copyDone]));
      const r = summarise(await c.untilReady());
      expect(r.error).toBeNull();
      await sleep(2500);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });

  it('a Sync sent during an extended-protocol COPY that follows a simple-Query COPY in the same hold does not pin the backend', async () => {
    const c = await raw('acme');
    try {
      // The Query's COPY completes; its CopyDone comes after the Query's own sync point, and the next COPY after it.
      await c.write(Buffer.concat([serialize.query('CREATE TEMP TABLE cp4 (a int); COPY cp4 FROM STDIN')]));
      await sleep(200);
      const copy = Buffer.concat([serialize.parse({ text: 'COPY cp4 FROM STDIN' }), serialize.bind({}), serialize.execute({})]);
      await c.write(Buffer.concat([copyData('1\n'), copyDone, copy, serialize.flush()]));
      expect(summarise(await c.untilReady()).error).toBeNull();
      await sleep(200);
      await c.write(Buffer.concat([serialize.sync(), copyData('2\n'), copyDone, serialize.sync()]));
      const r = summarise(await c.untilReady());
      expect(r.error?.M ?? null).toBeNull();
      await sleep(2500);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });

  it('a Sync sent during the second COPY of one extended-protocol segment does not pin the backend past the documented timeouts', async () => {
    const c = await raw('acme');
    try {
      const create = Buffer.concat([serialize.parse({ text: 'CREATE TEMP TABLE cp3 (a int)' }), serialize.bind({}), serialize.execute({})]);
      const copy = Buffer.concat([serialize.parse({ text: 'COPY cp3 FROM STDIN' }), serialize.bind({}), serialize.execute({})]);
      await c.write(Buffer.concat([create, copy, serialize.flush()]));
      await sleep(200);
      await c.write(Buffer.concat([copyData('1\n'), copyDone, copy, serialize.flush()]));
      await sleep(200);
      await c.write(Buffer.concat([serialize.sync(), copyData('2\n'), copyDone, serialize.sync()]));
      const r = summarise(await c.untilReady());
      expect(r.error?.M ?? null).toBeNull();
      await sleep(2500);
      expect(await otherGetsBackend()).toBeNull();
    } finally {
      c.end();
    }
  });
});
