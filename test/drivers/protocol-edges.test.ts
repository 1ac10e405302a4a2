// Protocol edges that drivers and SREs hit: protocol 3.2 and direct TLS at startup, COPY FROM STDIN over both
// protocols, SQL DEALLOCATE of driver-prepared statements, holds without a Sync. Each test asserts what
// PostgreSQL (or PgBouncer) does.
import { rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { haveOpenssl, makeTestCerts, type TestCerts } from '../support/certs.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { cstr, F, msg, poolSettles, Raw, rawLogin, startup } from '../support/raw-session.js';


// -------------------------------------------------------------------------------------------------

describe('protocol edges', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'proto_edges', { pool: { size: 2 } });
  });
  afterAll(async () => {
    await t?.close();
  });
  afterEach(async () => {
    for (const r of Raw.open) r.destroy();
    Raw.open.clear();
    // Each test starts with every backend back in the pool.
    await poolSettles(t, 5000);
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

  it('COPY FROM STDIN over the extended protocol (libpq PQexecParams: Sync after Execute, Sync after CopyDone) gives the backend back', async () => {
    const a = await t.admin();
    await a.query('CREATE TABLE IF NOT EXISTS public.edge_copy (v text)');
    await a.query(`GRANT ALL ON public.edge_copy TO ${t.poolUser}`);
    const r = await rawLogin(t);
    // What libpq sends for PQexecParams("COPY ... FROM STDIN"): the Sync is ignored by the server in copy-in mode.
    r.send(F.parse('', 'COPY public.edge_copy FROM STDIN'), F.bind('', ''), F.describe('P', ''), F.execute(), F.sync());
    expect(await r.waitFor((m) => m.some((x) => x.type === 'G'))).toBe(true);
    // PQputCopyEnd in extended mode: CopyDone then Sync.
    r.send(F.copyData('a\n'), F.copyData('b\n'), F.copyDone(), F.sync());
    await r.untilRfq(1);
    expect(r.errors()).toEqual([]);
    expect(r.msgs.some((m) => m.type === 'C' && m.body.toString().startsWith('COPY 2'))).toBe(true);
    // Idle between transactions now: the backend must be back in the pool.
    expect(await poolSettles(t, 3000)).toBe(true);
    r.send(F.query('SELECT 1'));
    await r.untilRfq(1);
    expect(await poolSettles(t, 3000)).toBe(true);
    r.destroy();
  });

  it('extended-protocol COPY FROM STDIN sent in one flight, and one failing on a bad row: answers in order, backend back each time', async () => {
    const a = await t.admin();
    await a.query('CREATE TABLE IF NOT EXISTS public.edge_copy_int (v int)');
    await a.query(`GRANT ALL ON public.edge_copy_int TO ${t.poolUser}`);
    const r = await rawLogin(t);
    // Everything before the CopyInResponse arrives: the first Sync is still read in copy mode and dropped.
    r.send(F.parse('', 'COPY public.edge_copy_int FROM STDIN'), F.bind('', ''), F.execute(), F.sync(), F.copyData('1\n'), F.copyDone(), F.sync());
    await r.untilRfq(1);
    expect(r.errors()).toEqual([]);
    expect(await poolSettles(t, 3000)).toBe(true);
    // A bad row: the server fails the COPY, skips to the Sync after CopyDone.
    r.send(F.parse('', 'COPY public.edge_copy_int FROM STDIN'), F.bind('', ''), F.execute(), F.sync());
    expect(await r.waitFor((m) => m.filter((x) => x.type === 'G').length === 2)).toBe(true);
    r.send(F.copyData('x\n'), F.copyData('2\n'), F.copyDone(), F.sync());
    await r.untilRfq(1);
    expect(r.errors().map((e) => e.C)).toEqual(['22P02']);
    expect(await poolSettles(t, 3000)).toBe(true);
    r.send(F.query('SELECT 1'));
    await r.untilRfq(1);
    expect(await poolSettles(t, 3000)).toBe(true);
  });

  it('a Sync sent in the middle of a successful extended COPY is swallowed by the server: no backend kept, nothing lost', async () => {
    const a = await t.admin();
    await a.query('CREATE TABLE IF NOT EXISTS public.edge_copy (v text)');
    await a.query(`GRANT ALL ON public.edge_copy TO ${t.poolUser}`);
    const r = await rawLogin(t);
    r.send(F.parse('', 'COPY public.edge_copy FROM STDIN'), F.bind('', ''), F.execute(), F.sync());
    expect(await r.waitFor((m) => m.some((x) => x.type === 'G'))).toBe(true);
    // Syncs and Flushes mid-copy are read as part of the copy and dropped (copyfromparse.c): one answer in all.
    r.send(F.copyData('m1\n'), F.sync(), F.flush(), F.copyData('m2\n'), F.sync(), F.copyDone(), F.sync());
    const got = await r.untilRfq(1);
    expect(r.errors()).toEqual([]);
    expect(got.some((m) => m.type === 'C' && m.body.toString().startsWith('COPY 2'))).toBe(true);
    expect(await poolSettles(t, 3000)).toBe(true);
    r.send(F.query('SELECT 1'));
    await r.untilRfq(1);
    expect(r.count('Z')).toBe(3); // login, the COPY, SELECT 1: no stray answer
  });

  it('a failed extended COPY with a Sync after its bad row: every answer the server owes reaches the client, and that backend is closed, not reused', async () => {
    const a = await t.admin();
    await a.query('CREATE TABLE IF NOT EXISTS public.edge_copy_int (v int)');
    await a.query(`GRANT ALL ON public.edge_copy_int TO ${t.poolUser}`);
    const r = await rawLogin(t);
    // The COPY's backend, named in the same sync segment (one implicit transaction, one backend).
    r.send(F.parse('', 'SELECT pg_backend_pid()'), F.bind('', ''), F.execute());
    r.send(F.parse('', 'COPY public.edge_copy_int FROM STDIN'), F.bind('', ''), F.execute(), F.sync());
    expect(await r.waitFor((m) => m.some((x) => x.type === 'G'))).toBe(true);
    const pid = Number(r.msgs.find((m) => m.type === 'D')!.body.toString('utf8', 6));
    // The first Sync was dropped in copy mode; the bad row fails the COPY, so the server answers the Sync
    // after it (ending its skip to a Sync) and the one after CopyDone: two ReadyForQuery the client must get.
    r.send(F.copyData('bad\n'), F.sync(), F.copyData('2\n'), F.copyDone(), F.sync());
    await r.untilRfq(2);
    expect(r.errors().map((e) => e.C)).toEqual(['22P02']);
    expect(await poolSettles(t, 3000)).toBe(true);
    // Which Syncs the server dropped was partly a guess here (copy-in.ts): the backend was closed.
    const gone = async (): Promise<boolean> => (await a.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0;
    const deadline = Date.now() + 3000;
    while (!(await gone()) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    expect(await gone()).toBe(true);
    r.send(F.query('SELECT 1'));
    await r.untilRfq(1);
    expect(r.count('Z')).toBe(4);
  });

  it('CopyFail during COPY FROM STDIN (simple protocol): 57014 error, ReadyForQuery, backend back', async () => {
    const a = await t.admin();
    await a.query('CREATE TABLE IF NOT EXISTS public.edge_copy (v text)');
    await a.query(`GRANT ALL ON public.edge_copy TO ${t.poolUser}`);
    const r = await rawLogin(t);
    r.send(F.query('COPY public.edge_copy FROM STDIN'));
    expect(await r.waitFor((m) => m.some((x) => x.type === 'G'))).toBe(true);
    r.send(F.copyData('x\n'), F.copyFail('client gave up'));
    await r.untilRfq(1);
    expect(r.errors().map((e) => e.C)).toEqual(['57014']);
    expect(await poolSettles(t, 3000)).toBe(true);
    r.send(F.query('SELECT 1'));
    await r.untilRfq(1);
    r.destroy();
  });

  it('a client that dies mid-COPY FROM STDIN: its backend is closed or reset and the pool returns to idle', async () => {
    const a = await t.admin();
    await a.query('CREATE TABLE IF NOT EXISTS public.edge_copy (v text)');
    await a.query(`GRANT ALL ON public.edge_copy TO ${t.poolUser}`);
    const r = await rawLogin(t);
    r.send(F.query('COPY public.edge_copy FROM STDIN'));
    expect(await r.waitFor((m) => m.some((x) => x.type === 'G'))).toBe(true);
    r.send(F.copyData('dead\n'));
    await new Promise((res) => setTimeout(res, 100));
    r.destroy();
    expect(await poolSettles(t, 5000)).toBe(true);
    // No half-copied row is visible, and no backend of the pool user is left in COPY.
    const left = await a.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND query ILIKE 'COPY%' AND state <> 'idle'`, [t.poolUser]);
    expect(left.rows[0].n).toBe(0);
    const rows = await a.query(`SELECT count(*)::int AS n FROM public.edge_copy WHERE v = 'dead'`);
    expect(rows.rows[0].n).toBe(0);
  });

  it('a COPY FROM STDIN the server fails mid-stream (simple protocol): the CopyData still in flight does not pin a backend', async () => {
    const a = await t.admin();
    await a.query('CREATE TABLE IF NOT EXISTS public.edge_copy_int (v int)');
    await a.query(`GRANT ALL ON public.edge_copy_int TO ${t.poolUser}`);
    const r = await rawLogin(t);
    r.send(F.query('COPY public.edge_copy_int FROM STDIN'));
    expect(await r.waitFor((m) => m.some((x) => x.type === 'G'))).toBe(true);
    r.send(F.copyData('not-a-number\n'));
    await r.untilRfq(1); // 22P02, ReadyForQuery: the server has left copy mode
    expect(r.errors().map((e) => e.C)).toEqual(['22P02']);
    // The rest of the client's copy stream was already on the wire: the server ignores it outside copy mode.
    r.send(F.copyData('1\n'), F.copyData('2\n'), F.copyDone());
    await new Promise((res) => setTimeout(res, 300));
    expect(await poolSettles(t, 3000)).toBe(true);
    // And the connection still works.
    r.send(F.query('SELECT 1'));
    await r.untilRfq(1);
    expect(r.errors().length).toBe(1);
  });

  it('Flush without Sync at a transaction start returns the results; the later Sync releases the backend', async () => {
    const r = await rawLogin(t);
    r.send(F.parse('', "SELECT current_setting('app.current_tenant')"), F.bind('', ''), F.describe('P', ''), F.execute(), F.flush());
    expect(await r.waitFor((m) => m.some((x) => x.type === 'C'))).toBe(true);
    const row = r.msgs.find((m) => m.type === 'D')!;
    expect(row.body.toString()).toContain('acme');
    expect(r.count('Z')).toBe(1); // only the login's
    r.send(F.sync());
    await r.untilRfq(1);
    expect(await poolSettles(t, 3000)).toBe(true);
    r.destroy();
  });

  it('DEALLOCATE inside a transaction that used the statement, then a Bind of it later: 26000 as direct; a new Parse of the name works', async () => {
    const r = await rawLogin(t);
    r.send(F.parse('s2', 'SELECT 1'), F.bind('', 's2'), F.execute(), F.sync());
    await r.untilRfq(1);
    const from = r.msgs.length;
    r.send(F.query('BEGIN'));
    await r.untilRfq(1);
    r.send(F.bind('', 's2'), F.execute(), F.sync());
    await r.untilRfq(1);
    r.send(F.query('DEALLOCATE "s2"'), F.query('COMMIT'));
    await r.untilRfq(2);
    expect(r.errors(from)).toEqual([]);
    // Gone for the client: not silently prepared again.
    const from2 = r.msgs.length;
    r.send(F.bind('', 's2'), F.execute(), F.sync());
    await r.untilRfq(1);
    expect(r.errors(from2).map((e) => e.C)).toEqual(['26000']);
    const from3 = r.msgs.length;
    r.send(F.parse('s2', 'SELECT 2'), F.bind('', 's2'), F.execute(), F.sync());
    await r.untilRfq(1);
    expect(r.errors(from3)).toEqual([]);
    expect(r.msgs.slice(from3).find((m) => m.type === 'D')!.body.toString('utf8', 6)).toBe('2');
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

describe('protocol edges: clocks', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'proto_edges_clock', { pool: { size: 2, idle_in_transaction_timeout_ms: 500, query_timeout_ms: 0 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a client that sends Execute + Flush and then nothing (no Sync) is bound by idle_in_transaction_timeout_ms, not left holding a backend', async () => {
    const r = await rawLogin(t);
    r.send(F.parse('', 'SELECT 1'), F.bind('', ''), F.execute(), F.flush());
    expect(await r.waitFor((m) => m.some((x) => x.type === 'C'))).toBe(true);
    // The server sits "idle in transaction" (an implicit one); the client holds the backend.
    expect(await r.waitClosed(3000)).toBe(true);
    expect(r.errors().map((e) => e.C)).toEqual(['25P03']);
    const deadline = Date.now() + 3000;
    while (t.proxy.pool.stats().held > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    expect(t.proxy.pool.stats().held).toBe(0);
  });

  it('a lone Parse with no Sync (the server waits for more) is bound by idle_in_transaction_timeout_ms too', async () => {
    const r = await rawLogin(t);
    r.send(F.parse('', 'SELECT 1'));
    expect(await r.waitClosed(3000)).toBe(true);
    expect(r.errors().map((e) => e.C)).toEqual(['25P03']);
    const deadline = Date.now() + 3000;
    while (t.proxy.pool.stats().held > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    expect(t.proxy.pool.stats().held).toBe(0);
  });

  it('an Execute + Flush still running past the limit is not idle: it finishes, and the Sync after it ends the hold', async () => {
    const r = await rawLogin(t);
    r.send(F.parse('', 'SELECT pg_sleep(1.2)'), F.bind('', ''), F.execute(), F.flush());
    expect(await r.waitFor((m) => m.some((x) => x.type === 'C'), 4000)).toBe(true);
    expect(r.closed).toBe(false);
    r.send(F.sync());
    await r.untilRfq(1);
    expect(r.errors()).toEqual([]);
    r.destroy();
  });
});

describe('protocol edges: no guard', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'proto_edges_noguard', { pool: { size: 2 }, tenant: { guard: false } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('SQL DEALLOCATE / DEALLOCATE ALL bookkeeping also without the guard (Query only peeked at)', async () => {
    const r = await rawLogin(t);
    r.send(F.parse('s1', 'SELECT 1'), F.parse('s3', 'SELECT 3'), F.bind('', 's1'), F.execute(), F.sync());
    await r.untilRfq(1);
    r.send(F.query('deallocate PREPARE s1'));
    await r.untilRfq(1);
    r.send(F.query('BEGIN'), F.bind('', 's3'), F.execute(), F.sync());
    await r.untilRfq(2);
    r.send(F.query('DEALLOCATE ALL'), F.query('COMMIT'));
    await r.untilRfq(2);
    r.send(F.parse('s1', 'SELECT 10'), F.parse('s3', 'SELECT 30'), F.bind('', 's3'), F.execute(), F.sync());
    await r.untilRfq(1);
    expect(r.errors()).toEqual([]);
    r.destroy();
  });
});

describe.runIf(haveOpenssl)('protocol edges: direct TLS', () => {
  let t: TestProxy;
  let certs: TestCerts;
  beforeAll(async () => {
    certs = makeTestCerts();
    const { certFile, keyFile } = certs.serverCert('proxy', 7);
    t = await startTestProxy(primaryServer(), 'proto_edges_tls', { pool: { size: 2 }, listen: { plaintext_tokens: 'refuse', tls: { cert_file: certFile, key_file: keyFile } } });
  });
  afterAll(async () => {
    await t?.close();
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  it('libpq 17 sslnegotiation=direct (TLS ClientHello first, ALPN postgresql) logs in over TLS', async () => {
    const sock = tls.connect({ host: '127.0.0.1', port: t.proxy.port, ca: certs.ca, servername: 'localhost', ALPNProtocols: ['postgresql'] });
    sock.on('error', () => {});
    const r = new Raw(sock as unknown as net.Socket);
    const ok = await new Promise<boolean>((res) => {
      sock.once('secureConnect', () => res(true));
      sock.once('error', () => res(false));
      sock.once('close', () => res(false));
      setTimeout(() => res(false), 3000);
    });
    expect(ok).toBe(true);
    expect(sock.alpnProtocol).toBe('postgresql');
    r.send(startup({ user: 'app', database: t.database }));
    await r.waitFor((m) => m.some((x) => x.type === 'R' || x.type === 'E'));
    expect(r.errors()).toEqual([]);
    r.send(msg('p', cstr(await t.token('acme'))));
    await r.untilRfq(1);
    r.send(F.query("SELECT current_setting('app.current_tenant')"));
    await r.untilRfq(1);
    expect(r.msgs.find((m) => m.type === 'D')!.body.toString('utf8', 6)).toBe('acme');
    sock.destroy();
  });

  it('a direct TLS handshake without ALPN "postgresql" is closed, as PostgreSQL does; SSLRequest clients are unaffected', async () => {
    const sock = tls.connect({ host: '127.0.0.1', port: t.proxy.port, ca: certs.ca, servername: 'localhost' });
    sock.on('error', () => {});
    const closed = await new Promise<boolean>((res) => {
      sock.once('close', () => res(true));
      setTimeout(() => res(false), 3000);
    });
    expect(closed).toBe(true);
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme'), ssl: { ca: certs.ca, servername: 'localhost' } });
    c.on('error', () => {});
    await c.connect();
    expect((await c.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('acme');
    await c.end();
  });
});
