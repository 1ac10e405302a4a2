// What a hand-over must not let through to the next tenant: a random() seed a tenant chose (on both the
// eager and the pipelined path), another tenant's NOTIFY payloads, and a backend held indefinitely by a
// client that sent half a message and went quiet.
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { firstError } from '../support/wire.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stream = (c: pg.Client) => (c as unknown as { connection: { stream: net.Socket } }).connection.stream;

describe('hand-over hygiene', () => {
  let t: TestProxy;
  let predicted: number[];
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'handover_hygiene', { pool: { size: 1, partial_message_timeout_ms: 1500 } });
    // What random() returns after setseed(0.5), straight from the server.
    const admin = await t.admin();
    await admin.query('SELECT setseed(0.5)');
    predicted = (await admin.query('SELECT random() AS r FROM generate_series(1, 3)')).rows.map((r) => r.r as number);
  });
  afterAll(async () => t?.close());

  const resets = async (mode: string) => (await t.proxy.metrics.resets.get()).values.find((v) => v.labels.mode === mode)?.value ?? 0;
  const nextRandoms = async (c: pg.Client) => (await c.query('SELECT random() AS r FROM generate_series(1, 3)')).rows.map((r) => r.r as number);

  it('eager path: a tenant that calls setseed(0.5) does not make the next tenant random() predictable', async () => {
    const before = await resets('eager');
    const a = await t.pgClient('acme');
    await a.query('SELECT setseed(0.5)');
    await sleep(100); // the eager reset runs (nobody waits)
    expect(await resets('eager')).toBeGreaterThan(before);
    const b = await t.pgClient('globex');
    expect(await nextRandoms(b)).not.toEqual(predicted);
  });

  it('pipelined path: the same, with the next tenant waiting while the first one holds the backend', async () => {
    const before = await resets('pipelined');
    const a = await t.pgClient('acme');
    const b = await t.pgClient('globex');
    await a.query('BEGIN');
    await a.query('SELECT setseed(0.5)');
    const waiting = nextRandoms(b);
    await sleep(100);
    await a.query('COMMIT');
    expect(await waiting).not.toEqual(predicted);
    expect(await resets('pipelined')).toBeGreaterThan(before);
  });

  it('a client that LISTENs and then holds the backend with half a message never receives a NOTIFY, and is cut off after the timeout', async () => {
    const a = await t.pgClient('acme');
    const s = stream(a);
    s.removeAllListeners('data');
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    const q = (sql: string) => {
      const b = Buffer.from(sql + '\0');
      const m = Buffer.alloc(5 + b.length);
      m[0] = 0x51;
      m.writeUInt32BE(4 + b.length, 1);
      b.copy(m, 5);
      return m;
    };
    // LISTEN (it runs, whatever the proxy answers), then the first bytes of a next message, then silence.
    s.write(Buffer.concat([q('LISTEN tenant_channel'), q('SELECT 1').subarray(0, 7)]));
    await sleep(300);
    const admin = await t.admin();
    await admin.query("NOTIFY tenant_channel, 'another-tenants-secret'");
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    const started = Date.now();
    await Promise.race([closed, sleep(10_000)]);
    const all = Buffer.concat(got);
    expect(all.includes(Buffer.from('another-tenants-secret'))).toBe(false);
    // Cut off by the partial-message timeout (1.5 s here), with 08P01.
    expect(Date.now() - started).toBeLessThan(9000);
    const errors: string[] = [];
    const types: string[] = [];
    let pos = 0;
    while (pos + 5 <= all.length) {
      const len = all.readUInt32BE(pos + 1);
      types.push(String.fromCharCode(all[pos]));
      if (all[pos] === 0x45) errors.push(firstError(all.subarray(pos, pos + 1 + len))!.code);
      pos += 1 + len;
    }
    expect(types).not.toContain('A'); // no NotificationResponse at all
    expect(errors).toContain('08P01');
    // The backend was released (closed): the next tenant gets one.
    const b = await t.pgClient('globex');
    expect((await b.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('globex');
  }, 20_000);
});
