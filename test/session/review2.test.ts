// Review 2 of the 2026-12-02 changes (idle clocks, failed COPY Syncs, a client setting's FATAL, session reset,
// console state at fork): the bugs it found, fixed, and a regression guard.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { F, Raw, msg, rawLogin, poolSettles } from '../support/raw-session.js';


describe('review 2: a client setting refused in the context prefix', () => {
  let t: TestProxy;
  beforeAll(async () => {
    // One backend, and a long reset delay: the next client takes the backend with its reset pipelined.
    t = await startTestProxy(primaryServer(), 'review2_setting', { pool: { size: 1, reset_delay_ms: 1000, query_timeout_ms: 0 } });
  });
  afterAll(async () => {
    await t?.close();
  });
  afterEach(async () => {
    for (const r of Raw.open) r.destroy();
    Raw.open.clear();
    await poolSettles(t);
  });

  // The prefix failed (BEGIN; set_config fails), so the server sits in an aborted transaction block skipping
  // everything up to a Sync. The FATAL path ended the session through onClientGone, which judged the backend
  // "quiet" from the client's own counts (nothing due: the client's first message was no sync point) and gave
  // it back 'idle' instead of closing it. The next client's reset, prefix and Query were then skipped by the
  // server and never answered.
  // (Regression guard, passes: the server itself ends the backend at the unknown message type. The path
  // still releases the backend 'idle' after a failed prefix; no valid first message reaches it.)
  it('a FATAL for a refused client setting closes the backend: the next client is answered', async () => {
    const a = await rawLogin(t, 'acme', { options: '-c TimeZone=Not/AZone' });
    // A first message that is no sync point and no extended-protocol message (any other type byte).
    a.send(msg('p', Buffer.from('zz\0')));
    expect(await a.waitClosed(3000)).toBe(true);
    expect(a.errors().map((e) => [e.S ?? e.V, e.C])).toEqual([['FATAL', '22023']]);
    const b = await rawLogin(t, 'globex');
    b.send(F.query('SELECT 1'));
    const got = await b.waitFor((m) => m.filter((x) => x.type === 'Z').length >= 2, 3000);
    expect(got, `next client got: ${b.msgs.map((m) => m.type).join('')} errors=${JSON.stringify(b.errors())}`).toBe(true);
    expect(b.errors()).toEqual([]);
  });
});

describe('review 2: an extended COPY ended before its client sends the Sync', () => {
  let t: TestProxy;
  beforeAll(async () => {
    // No client-idle clock (the default): only the idle-in-transaction clock may end such a hold.
    t = await startTestProxy(primaryServer(), 'review2_copy', { pool: { size: 2, idle_in_transaction_timeout_ms: 400 } });
    const a = await t.admin();
    await a.query('CREATE TABLE IF NOT EXISTS public.review2_copy_t (v text)');
    await a.query(`GRANT ALL ON public.review2_copy_t TO ${t.poolUser}`);
  });
  afterAll(async () => {
    await t?.close();
  });
  afterEach(async () => {
    for (const r of Raw.open) r.destroy();
    Raw.open.clear();
    await poolSettles(t);
  });

  // The COPY's Sync was read as copy data and is un-counted when the COPY ends (copy-in.ts): nothing is then
  // counted as due and nothing as unsynced, so idleIfQuiet() takes the server for idle and starts the client-idle
  // clock (txStatus is the 'I' of the last ReadyForQuery). But the server is inside the Execute's implicit
  // transaction, waiting for a Sync, holding the COPY's locks (uncommitted rows, or an aborted transaction):
  // as after ReadyForQuery 'T', the idle-in-transaction clock must run. With client_idle_timeout_ms 0 (the
  // default) no clock runs at all and the client keeps the backend, and the table's lock, for good. Direct,
  // idle_in_transaction_session_timeout ends it.
  for (const end of ['CopyDone', 'CopyFail'] as const) {
    it(`an extended COPY ended by ${end}${end === 'CopyDone' ? ' + Flush' : ''} with no Sync after it: the idle-in-transaction clock ends the hold`, async () => {
      const r = await rawLogin(t);
      const from = r.msgs.length;
      r.send(F.parse('', 'COPY public.review2_copy_t FROM STDIN'), F.bind('', ''), F.execute(), F.sync());
      expect(await r.waitFor((m) => m.slice(from).some((x) => x.type === 'G'))).toBe(true);
      r.send(F.copyData('a\n'), ...(end === 'CopyDone' ? [F.copyDone(), F.flush()] : [F.copyFail('no')]));
      const ended = await r.waitFor((m) => m.slice(from).some((x) => x.type === (end === 'CopyDone' ? 'C' : 'E')), 2000);
      expect(ended, `got ${r.msgs.slice(from).map((m) => m.type).join('')}`).toBe(true);
      // The client now waits (it has not sent the Sync that ends the Execute's transaction).
      expect(await r.waitClosed(2500), `held=${t.proxy.pool.stats().held}`).toBe(true);
      expect(r.errors(from).map((e) => e.C).at(-1)).toBe('25P03');
    });
  }
});

describe('review 2: the console state a worker is forked with', () => {
  // cluster.fork passes it as one environment string; Linux refuses one over 128 KiB with E2BIG, and the fork
  // throws in the primary (from a restart timer: the primary dies). The console allows 100 000 suspended tenants.
  it('8000 suspended tenants: the fork environment is accepted (a worker can still be started)', async () => {
    const { spawnSync } = await import('node:child_process');
    const { consoleStateEnv } = await import('../../src/cluster/console-state-env.js');
    const suspended = Array.from({ length: 8000 }, (_, i) => `tenant-${i}-abcdefghij`);
    const value = consoleStateEnv({ paused: false, suspended });
    const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
    if (value !== undefined) env.PGTP_CONSOLE_STATE = value;
    const r = spawnSync(process.execPath, ['-e', '0'], { env });
    expect((r.error as NodeJS.ErrnoException | undefined)?.code).toBeUndefined();
    // A small state still goes with the fork.
    expect(consoleStateEnv({ paused: true, suspended: ['acme'] })).toBe(JSON.stringify({ paused: true, suspended: ['acme'] }));
  });
});
