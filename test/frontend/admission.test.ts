// Admission: refused logins give back their max_client_conn slot and file descriptor; the failed-login rate
// limit counts only credential guesses (not TCP probes, not psql's password prompt, not suspended tenants);
// refusals are written after the SSLRequest is answered, so libpq with sslmode=prefer shows them.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdsSettle, haveProcFds, openFds } from '../support/fds.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { firstError, sendCancel } from '../support/wire.js';

const run = promisify(execFile);
const hasPsql = await run('psql', ['--version']).then(
  () => true,
  () => false,
);

async function tryLogin(t: TestProxy, password: string): Promise<{ code?: string; message: string } | null> {
  const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password });
  c.on('error', () => {});
  const e = await c.connect().then(
    () => null,
    (err: { code?: string; message: string }) => err,
  );
  await c.end().catch(() => {});
  return e;
}

/** Startup packet for user app on `database` (protocol 3.0). */
function startupPacket(database: string): Buffer {
  const body = Buffer.from(`user\0app\0database\0${database}\0\0`);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length, 0);
  head.writeUInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** Connects, sends `first`, collects bytes; `then(buf)` may send more; resolves with all bytes at close (or 3 s). */
function converse(port: number, first: Buffer, then?: (got: Buffer, s: net.Socket) => void): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 3000);
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      then?.(got, s);
    });
    s.on('close', done);
    s.on('error', done);
    s.on('connect', () => s.write(first));
  });
}

describe('refused logins do not use up max_client_conn', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'admission_slots', {
      pool: { size: 2 },
      listen: { max_client_conn: 5 },
      auth: { rate_limit: { max_failures: 5, window_ms: 1500 } },
    });
  });
  afterAll(async () => t?.close());

  it('after 40 refused logins (bad tokens, then rate-limited), valid clients fill every slot and fds return to baseline', async () => {
    const c0 = await t.pgClient('acme'); // warm the pool and the driver before measuring
    await c0.query('SELECT 1');
    await c0.end();
    const baseline = openFds();
    for (let round = 0; round < 4; round++) {
      const errors = await Promise.all(Array.from({ length: 10 }, () => tryLogin(t, 'not-a-token')));
      for (const e of errors) expect(['28P01', '28000', '53300']).toContain(e?.code);
    }
    await new Promise((r) => setTimeout(r, 1600)); // the rate-limit window ends
    const clients = await Promise.all(Array.from({ length: 5 }, () => t.pgClient('acme')));
    for (const c of clients) expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await Promise.all(clients.map((c) => c.end()));
    if (haveProcFds) expect(await fdsSettle(baseline + 2)).toBeLessThanOrEqual(baseline + 2);
  });

  it('a client that gets its FATAL but never hangs up is still closed (slot and fd come back)', async () => {
    const baseline = openFds();
    // Unknown database: refused after the startup packet; the client keeps its socket open and never reads.
    const sockets = await Promise.all(
      Array.from({ length: 5 }, () => new Promise<net.Socket>((resolve) => {
        const s = net.connect(t.proxy.port, '127.0.0.1', () => {
          s.write(startupPacket('no_such_db'));
          s.pause();
          resolve(s);
        });
        s.on('error', () => {});
      })),
    );
    await new Promise((r) => setTimeout(r, 2500));
    const c = await t.pgClient('acme');
    expect((await c.query('SELECT 2 AS two')).rows[0].two).toBe(2);
    await c.end();
    for (const s of sockets) s.destroy();
    if (haveProcFds) expect(await fdsSettle(baseline + 2)).toBeLessThanOrEqual(baseline + 2);
  });

  it('a CancelRequest is still served while every slot is taken', async () => {
    const held = await Promise.all(Array.from({ length: 5 }, () => t.pgClient('acme')));
    try {
      const victim = held[0] as unknown as { processID: number; secretKey: number; query: pg.Client['query'] };
      const running = held[0].query('SELECT pg_sleep(30)').catch((e: { code?: string }) => e);
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      await sendCancel(t.proxy.port, victim.processID, victim.secretKey);
      expect(((await running) as { code?: string }).code).toBe('57014');
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await Promise.all(held.map((c) => c.end()));
    }
  });

  it('"too many clients" is written after the SSLRequest is answered', async () => {
    const held = await Promise.all(Array.from({ length: 5 }, () => t.pgClient('acme')));
    try {
      const reply = await converse(t.proxy.port, SSL_REQUEST, (got, s) => {
        if (got.length === 1 && got[0] === 0x4e) s.write(startupPacket(t.database));
      });
      expect(reply.toString('latin1', 0, 1)).toBe('N');
      expect(firstError(reply.subarray(1))).toMatchObject({ code: '53300', message: 'sorry, too many clients already' });
      if (hasPsql) {
        const r = await run('psql', ['-X', '-w', '-h', '127.0.0.1', '-p', String(t.proxy.port), '-U', 'app', '-d', t.database, '-c', 'SELECT 1'], {
          env: { ...process.env, PGSSLMODE: 'prefer', PGPASSWORD: 'x' },
        }).catch((e: { stderr: string }) => e);
        expect((r as { stderr: string }).stderr).toMatch(/sorry, too many clients already/);
      }
    } finally {
      await Promise.all(held.map((c) => c.end()));
    }
  });
});

describe('the failed-login rate limit counts only credential guesses', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'admission_rate', {
      pool: { size: 2 },
      tenant: { deny: ['banned'] },
      auth: { rate_limit: { max_failures: 3, window_ms: 60_000 } },
    });
  });
  afterAll(async () => t?.close());

  it('20 bare TCP connects that send nothing (health probes) do not lock out a valid token', async () => {
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect(t.proxy.port, '127.0.0.1', () => s.end());
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
    }
    expect(await tryLogin(t, await t.token('acme'))).toBeNull();
  });

  it('21 logins that hang up at the password request (psql prompting) do not lock out a valid token', async () => {
    for (let i = 0; i < 21; i++) {
      const reply = await converse(t.proxy.port, startupPacket(t.database), (got, s) => {
        if (got.length >= 9 && got[0] === 0x52) s.end(); // AuthenticationCleartextPassword: hang up, as psql does
      });
      expect(reply[0]).toBe(0x52);
    }
    if (hasPsql) {
      for (let i = 0; i < 5; i++) {
        const r = await run('psql', ['-X', '-w', '-h', '127.0.0.1', '-p', String(t.proxy.port), '-U', 'app', '-d', t.database, '-c', 'SELECT 1'], {
          env: { ...process.env, PGSSLMODE: 'disable', PGPASSWORD: '' },
        }).catch((e: { stderr: string }) => e);
        expect((r as { stderr: string }).stderr).toMatch(/no password supplied/);
      }
    }
    expect(await tryLogin(t, await t.token('acme'))).toBeNull();
  });

  it("a suspended tenant's reconnect loop does not lock out other tenants behind the same address", async () => {
    const banned = await t.token('banned');
    for (let i = 0; i < 10; i++) expect((await tryLogin(t, banned))?.message).toMatch(/suspended/);
    expect(await tryLogin(t, await t.token('acme'))).toBeNull();
  });

  it('bad tokens still count: past max_failures the address is refused, readable after the SSLRequest', async () => {
    for (let i = 0; i < 3; i++) expect((await tryLogin(t, 'not-a-token'))?.code).toBe('28P01');
    const e = await tryLogin(t, await t.token('acme'));
    expect(e?.code).toBe('28000');
    expect(e?.message).toMatch(/too many failed logins from this address/);
    const reply = await converse(t.proxy.port, SSL_REQUEST, (got, s) => {
      if (got.length === 1 && got[0] === 0x4e) s.write(startupPacket(t.database));
    });
    expect(reply.toString('latin1', 0, 1)).toBe('N');
    expect(firstError(reply.subarray(1))?.message).toMatch(/too many failed logins from this address/);
    if (hasPsql) {
      const r = await run('psql', ['-X', '-w', '-h', '127.0.0.1', '-p', String(t.proxy.port), '-U', 'app', '-d', t.database, '-c', 'SELECT 1'], {
        env: { ...process.env, PGSSLMODE: 'prefer', PGPASSWORD: 'x' },
      }).catch((e: { stderr: string }) => e);
      expect((r as { stderr: string }).stderr).toMatch(/too many failed logins from this address/);
    }
  });
});

/** The kernel's timer for the TCP socket from local port `local` to remote port `remote` (/proc/net/tcp, IPv4). */
async function tcpTimer(local: number, remote: number): Promise<{ timer: number; seconds: number } | null> {
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');
  const lines = (await readFile('/proc/net/tcp', 'latin1')).split('\n').slice(1);
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !f[1].endsWith(`:${hex(local)}`) || !f[2].endsWith(`:${hex(remote)}`)) continue;
    const [timer, when] = f[5].split(':');
    return { timer: parseInt(timer, 16), seconds: parseInt(when, 16) / 100 };
  }
  return null;
}

describe.runIf(existsSync('/proc/net/tcp'))('accepted client connections', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'admission_keepalive');
  }, 120_000);
  afterAll(async () => t?.close());

  it('have TCP keepalive on, so a client that vanished without a FIN is found and its slot freed', async () => {
    const c = await t.pgClient('acme');
    try {
      await c.query('SELECT 1');
      const clientPort = (c as unknown as { connection: { stream: net.Socket } }).connection.stream.localPort!;
      // The proxy's end of this connection: timer 2 is the keepalive timer, armed for about CLIENT_KEEPALIVE_MS.
      // Right after an answer the retransmit timer (1) may still run until the client's ACK arrives.
      let timer = await tcpTimer(t.proxy.port, clientPort);
      for (let i = 0; i < 40 && timer?.timer === 1; i++) {
        await new Promise((r) => setTimeout(r, 50));
        timer = await tcpTimer(t.proxy.port, clientPort);
      }
      expect(timer).not.toBeNull();
      expect(timer!.timer).toBe(2);
      expect(timer!.seconds).toBeGreaterThan(20);
      expect(timer!.seconds).toBeLessThanOrEqual(30);
    } finally {
      await c.end();
    }
  });
});
