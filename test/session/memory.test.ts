// Memory a hostile tenant controls stays bounded: a client that streams Syncs without reading its answers,
// and clients that send 60 MB Parse messages, must not grow the proxy's RSS by more than a bounded amount.
// The attackers run in child processes, so this process's RSS is the proxy's (plus the test's small share).
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const MB = 1 << 20;

/** Runs an attacker script (ES module, `pg` available) in a child process; resolves with its stdout. */
function attacker(script: string, env: Record<string, string>, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`attacker exited ${code}: ${err.slice(0, 2000)}`));
    });
  });
}

/** Samples this process's RSS while `work` runs; resolves with the peak growth over the baseline, in MB. */
async function peakGrowth(work: () => Promise<unknown>): Promise<number> {
  (globalThis as { gc?: () => void }).gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  return (peak - base) / MB;
}

const SYNC_FLOOD = `
import pg from 'pg';
const c = new pg.Client({ host: '127.0.0.1', port: Number(process.env.PORT), database: process.env.DB, user: 'app', password: process.env.TOKEN });
await c.connect();
const s = c.connection.stream;
s.pause(); // never read the answers
const sync = Buffer.from([0x53, 0, 0, 0, 4]);
const block = Buffer.concat(Array(13000).fill(sync)); // 65 KB of Syncs
const total = Number(process.env.BYTES);
let sent = 0;
const deadline = Date.now() + Number(process.env.SECONDS) * 1000;
while (sent < total && Date.now() < deadline) {
  sent += block.length;
  if (!s.write(block)) {
    // The proxy stopped reading (as it should): wait for drain, but not past the deadline.
    await Promise.race([new Promise((r) => s.once('drain', r)), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
  }
}
console.log(JSON.stringify({ sent }));
process.exit(0);
`;

const BIG_PARSE = `
import pg from 'pg';
const mb = Number(process.env.MB);
const text = 'SELECT 1 AS one /*' + 'x'.repeat(mb * 1048576) + '*/';
const clients = [];
for (let i = 0; i < 4; i++) {
  const c = new pg.Client({ host: '127.0.0.1', port: Number(process.env.PORT), database: process.env.DB, user: 'app', password: process.env.TOKEN });
  await c.connect();
  clients.push(c);
}
const rows = await Promise.all(clients.map((c, i) => c.query({ name: 'big' + i, text }).then((r) => r.rows[0].one)));
// Too large to keep for re-preparing (pool.max_prepared_statement_bytes): the clients carry on normally.
const again = await Promise.all(clients.map((c) => c.query('SELECT 1 AS one').then((r) => r.rows[0].one)));
console.log(JSON.stringify({ rows, again }));
process.exit(0);
`;

describe('memory a hostile tenant controls', () => {
  let t: TestProxy;
  beforeAll(async () => {
    // guard off: the unguarded path streams Parse messages; the guard's own size limit covers guarded tenants.
    t = await startTestProxy(primaryServer(), 'memory_bounds', { tenant: { guard: false } });
  });
  afterAll(async () => t?.close());

  const env = async () => ({ PORT: String(t.proxy.port), DB: t.database, TOKEN: await t.token('acme') });

  // The Parse case first: RSS is measured from a baseline, and freed memory is reused by later allocations.
  it('four 60 MB Parse messages at once stream through: RSS grows far less than their size', async () => {
    let result = '';
    const growth = await peakGrowth(async () => {
      result = await attacker(BIG_PARSE, { ...(await env()), MB: '60' }, 120_000);
    });
    if (process.env.PGTP_MEMORY_DEBUG) console.log({ growthMB: growth, result });
    expect(JSON.parse(result)).toEqual({ rows: [1, 1, 1, 1], again: [1, 1, 1, 1] });
    // 4 × 60 MB = 240 MB of Parse; the old path assembled and copied each one (≈ 3 × that).
    expect(growth).toBeLessThan(150);
  }, 150_000);

  it('a client streaming Syncs without reading: the proxy stops reading it, RSS stays bounded', async () => {
    let result = '';
    const growth = await peakGrowth(async () => {
      result = await attacker(SYNC_FLOOD, { ...(await env()), BYTES: String(40 * MB), SECONDS: '8' }, 60_000);
    });
    const { sent } = JSON.parse(result) as { sent: number };
    if (process.env.PGTP_MEMORY_DEBUG) console.log({ growthMB: growth, sentMB: sent / MB });
    // 40 MB of Syncs would be 48 MB of answers (and far more in per-write overhead) if the proxy kept reading.
    expect(sent).toBeLessThan(40 * MB);
    expect(growth).toBeLessThan(100);
    const c = await t.pgClient('globex');
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  }, 90_000);
});
