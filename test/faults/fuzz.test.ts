// Fault suite: a protocol fuzz of malformed startup packets and post-login messages (seeded, deterministic
// inputs). No crash, a concurrent honest client keeps working, file descriptors and heap return to
// baseline, and max_client_conn is not consumed. PGTP_FUZZ_CASES=N (default 10000) and PGTP_FUZZ_SEED=S.
// Messages: https://www.postgresql.org/docs/current/protocol-message-formats.html
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdsSettle, haveProcFds, openFds } from '../support/fds.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const CASES = Number(process.env.PGTP_FUZZ_CASES ?? 10_000);
const SEED = Number(process.env.PGTP_FUZZ_SEED ?? 20261202);
/** Share of the cases that are malformed startup packets (one connection each); the rest are post-login frames. */
const STARTUP_SHARE = 0.6;
/** Post-login frames sent per logged-in connection. */
const FRAMES_PER_SESSION = 25;
const MAX_CLIENT_CONN = 100;
/** Every this many startup cases, the client never hangs up: the proxy must close the connection by itself. */
const HOLD_OPEN_EVERY = 20;
/** Each fuzz connection must be closed by the proxy within this after the client half-closed. */
const CLOSE_BOUND_MS = 8000;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** mulberry32: small, fast, seeded. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(private readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** A length field that is sometimes right, sometimes off, sometimes absurd. */
  length(actual: number): number {
    return this.pick([actual, actual, actual, actual + 1, actual - 1, 0, 3, 4, 7, 0x7fffffff, 0xffffffff, this.int(20_000), 10_001])! >>> 0;
  }
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};
const untyped = (code: number, body: Buffer, g: Gen): Buffer => Buffer.concat([u32(g.length(8 + body.length)), u32(code), body]);
const typed = (type: number, body: Buffer, g: Gen, exactLength = false): Buffer =>
  Buffer.concat([Buffer.from([type]), u32(exactLength ? 4 + body.length : g.length(4 + body.length)), body]);
const cstr = (s: string): Buffer => Buffer.from(s + '\0');

const SSL = 80877103;
const GSS = 80877104;
const CANCEL = 80877102;
const V3 = 196608;

function startupParams(g: Gen, database: string): Buffer {
  const parts: Buffer[] = [];
  const n = g.int(6);
  for (let i = 0; i < n; i++) {
    parts.push(
      g.pick([
        () => cstr('user') ,
        () => cstr('app'),
        () => cstr(`database\0${database}`),
        () => g.bytes(g.int(40)),
        () => cstr(`options\0-c role=${g.int(9)}`),
        () => cstr(`_pq_.x${g.int(9)}\0on`),
        () => cstr(`application_name\0${'x'.repeat(g.int(300))}`),
        () => cstr(`search_path\0tenant_globex`),
      ])(),
    );
  }
  if (g.int(2)) parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** One malformed (or odd) login attempt: the bytes a connection sends before half-closing. */
function startupCase(g: Gen, database: string): Buffer {
  const good = (): Buffer => {
    const body = Buffer.concat([cstr('user'), cstr('app'), cstr('database'), cstr(database), Buffer.from([0])]);
    return Buffer.concat([u32(8 + body.length), u32(V3), body]);
  };
  switch (g.int(10)) {
    case 0:
      return g.bytes(g.int(64));
    case 1:
      return untyped(g.pick([V3, 0x00020000, 0x00030001, g.int(2 ** 31), 1234 << 16]), g.bytes(g.int(200)), g);
    case 2:
      return untyped(V3, startupParams(g, database), g);
    case 3:
      return Buffer.concat([untyped(SSL, Buffer.alloc(0), g), g.bytes(g.int(40))]);
    case 4:
      return Buffer.concat([untyped(GSS, Buffer.alloc(0), g), untyped(g.pick([SSL, GSS, V3]), g.bytes(g.int(30)), g)]);
    case 5:
      return untyped(CANCEL, g.bytes(g.pick([0, 4, 8, 12, g.int(64)])), g);
    case 6: // a good startup, then a password message that is malformed
      return Buffer.concat([good(), typed(g.pick([0x70, 0x70, 0x51, 0x58, g.int(256)]), g.bytes(g.int(300)), g)]);
    case 7: // a good startup, then a truncated frame
      return Buffer.concat([good(), Buffer.from([0x70]), u32(1000), g.bytes(g.int(50))]);
    case 8: // a good startup cut anywhere
      return good().subarray(0, g.int(good().length));
    default: // a good startup, then a SASL exchange for a user that is not a static one, or junk
      return Buffer.concat([good(), typed(0x70, Buffer.concat([cstr('SCRAM-SHA-256'), u32(g.length(10)), g.bytes(g.int(20))]), g)]);
  }
}

/** One post-login frame: well framed most of the time (so a session sees many), malformed sometimes. */
function sessionFrame(g: Gen): Buffer {
  const exact = g.int(20) !== 0;
  const body = (): Buffer => {
    switch (g.int(8)) {
      case 0:
        return Buffer.concat([Buffer.from(g.pick(['SELECT ', 'SET ', 'RESET ', 'BEGIN', 'COMMIT', 'DISCARD ', "SELECT set_config('app.current_tenant',", 'LISTEN x; '])), g.bytes(g.int(30)), Buffer.from([0])]);
      case 1:
        return Buffer.concat([cstr(`s${g.int(5)}`), cstr('SELECT $1'), Buffer.from([0, g.int(3)]), g.bytes(g.int(12))]);
      case 2:
        return Buffer.concat([cstr(''), cstr(`s${g.int(5)}`), g.bytes(g.int(24))]);
      default:
        return g.bytes(g.int(80));
    }
  };
  // 'X' (Terminate) is left out: it would only end the session early, which is not a malformed case.
  const type = g.pick([0x51, 0x50, 0x42, 0x44, 0x45, 0x43, 0x48, 0x53, 0x46, 0x64, 0x63, 0x66, 0x70, g.int(256)]);
  return typed(type === 0x58 ? 0x51 : type, body(), g, exact);
}

/** Connections of clients that never hang up; closed by the test only after the proxy's fds were counted. */
const held: net.Socket[] = [];

/**
 * Sends `bytes` and half-closes; resolves once the proxy closed the connection (false if not in time). With
 * `holdOpen` the client never hangs up (allowHalfOpen, no end): it resolves once the proxy sent its FIN,
 * and the socket is kept open, so a proxy that only half-closes (and so leaks the socket) shows in its fds.
 */
function sendAndClose(port: number, bytes: Buffer, holdOpen: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: holdOpen });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, CLOSE_BOUND_MS);
    const done = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', done);
    if (holdOpen) {
      held.push(s);
      s.on('end', done);
    }
    s.on('connect', () => (holdOpen ? s.write(bytes) : s.end(bytes)));
  });
}

let loggedIn = 0;

/** Logs in with `token`, then sends `frames` and half-closes; resolves once closed (false if not in time). */
function loginThenSend(port: number, database: string, token: string, frames: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let sent = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, CLOSE_BOUND_MS + 5000);
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.on('data', (d) => {
      if (sent) return;
      got = Buffer.concat([got, d]);
      if (got[0] === 0x52 && got.length >= 9 && got.readUInt32BE(5) === 3 && got.length === 9) {
        s.write(typed(0x70, cstr(token), new Gen(() => 0), true));
        got = Buffer.alloc(0);
      } else if (got.length >= 6 && got[got.length - 6] === 0x5a) {
        sent = true; // ReadyForQuery: logged in
        loggedIn++;
        s.end(frames);
      }
    });
    s.on('connect', () => {
      const body = Buffer.concat([cstr('user'), cstr('app'), cstr('database'), cstr(database), Buffer.from([0])]);
      s.write(Buffer.concat([u32(8 + body.length), u32(V3), body]));
    });
  });
}

/** Runs `tasks` with at most `width` in flight. */
async function parallel<T>(tasks: Array<() => Promise<T>>, width: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]();
      }
    }),
  );
  return out;
}

describe('protocol fuzz', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'fault_fuzz', {
      pool: { size: 4 },
      listen: { max_client_conn: MAX_CLIENT_CONN, startup_timeout_ms: 1000 },
      // Garbage passwords are failed logins; the rate limit (tested elsewhere) would only lock the fuzzer out.
      auth: { rate_limit: { max_failures: 0 } },
    });
  });
  afterAll(async () => t?.close());

  it(`${CASES} malformed startup and post-login cases: no crash, honest client unaffected, fds/heap/slots back to baseline`, async () => {
    const g = new Gen(prng(SEED));
    const startupCases = Math.round(CASES * STARTUP_SHARE);
    const sessions = Math.ceil((CASES - startupCases) / FRAMES_PER_SESSION);
    const startups = Array.from({ length: startupCases }, () => startupCase(g, t.database));
    const batches = Array.from({ length: sessions }, () => Buffer.concat(Array.from({ length: FRAMES_PER_SESSION }, () => sessionFrame(g))));
    const token = await t.token('acme');

    const honest = await t.pgClient('acme');
    await honest.query('SELECT 1');
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const fdsBefore = openFds();

    let fuzzing = true;
    const honestErrors: string[] = [];
    let honestOk = 0;
    const honestLoop = (async () => {
      while (fuzzing) {
        const r = await Promise.race([
          honest.query("SELECT count(*)::int AS n FROM orders WHERE current_setting('app.current_tenant') = 'acme'").then(
            () => 'ok',
            (e: Error) => e.message,
          ),
          new Promise<string>((r) => setTimeout(() => r('honest query did not finish within 15 s'), 15_000)),
        ]);
        if (r === 'ok') honestOk++;
        else honestErrors.push(r);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    // Phase 1: clients that hang up after their bytes, and logged-in sessions fed malformed frames.
    const closed = await parallel(
      [
        ...startups.filter((_, i) => i % HOLD_OPEN_EVERY !== 0).map((b) => () => sendAndClose(t.proxy.port, b, false)),
        ...batches.map((b) => () => loginThenSend(t.proxy.port, t.database, token, b)),
      ],
      48,
    );
    // Phase 2: clients that never hang up (kept apart: they hold slots until the proxy closes them).
    closed.push(...(await parallel(startups.filter((_, i) => i % HOLD_OPEN_EVERY === 0).map((b) => () => sendAndClose(t.proxy.port, b, true)), 48)));
    fuzzing = false;
    await honestLoop;

    expect(closed.filter((c) => !c).length, 'fuzz connections the proxy did not close in time').toBe(0);
    expect(loggedIn, 'post-login batches that really ran in a session').toBe(sessions);
    expect(honestErrors).toEqual([]);
    expect(honestOk).toBeGreaterThan(0);

    // File descriptors and heap back to baseline. The held clients' own sockets still count (one fd each):
    // the proxy's side of each must be closed although those clients never hung up.
    if (haveProcFds) expect(await fdsSettle(fdsBefore + held.length + 3, 15_000)).toBeLessThanOrEqual(fdsBefore + held.length + 3);
    for (const s of held.splice(0)) s.destroy();
    if (haveProcFds) expect(await fdsSettle(fdsBefore + 3, 15_000)).toBeLessThanOrEqual(fdsBefore + 3);
    gc();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    expect(heapGrowth, `heap grew by ${(heapGrowth / 1e6).toFixed(1)} MB`).toBeLessThan(25e6);

    // max_client_conn not consumed: every remaining slot admits an honest client.
    const more = await Promise.all(Array.from({ length: MAX_CLIENT_CONN - 1 }, () => t.pgClient('acme')));
    const rows = await Promise.all(more.map((c) => c.query('SELECT 1 AS one')));
    expect(rows.every((r) => r.rows[0].one === 1)).toBe(true);
    await Promise.all([...more, honest].map((c) => c.end()));
  }, 300_000);
});
