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
