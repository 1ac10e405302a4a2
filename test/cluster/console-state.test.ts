// A worker forked to replace a crashed one starts with the console's state (SUSPEND TENANT, PAUSE) applied
// before it listens: its very first login of a suspended tenant is refused, with no window for the replay.
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleStateFromEnv } from '../../src/cluster/worker.js';
import { startProxy, type RunningProxy } from '../../src/server.js';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

describe('the console state a worker is forked with', () => {
  it("reads the primary's PGTP_CONSOLE_STATE, and nothing from a value that does not parse", () => {
    expect(consoleStateFromEnv(JSON.stringify({ paused: true, suspended: ['acme', 7, 'globex'] }))).toEqual({ paused: true, suspended: ['acme', 'globex'] });
    expect(consoleStateFromEnv(JSON.stringify({ suspended: [] }))).toEqual({ paused: false, suspended: [] });
    expect(consoleStateFromEnv('not json')).toBeUndefined();
    expect(consoleStateFromEnv(undefined)).toBeUndefined();
  });

  describe('applied before the listener opens', () => {
    let t: TestProxy;
    let second: RunningProxy | null = null;
    beforeAll(async () => {
      t = await startTestProxy(primaryServer(), 'console_state');
    });
    afterAll(async () => {
      await second?.close();
      await t?.close();
    });

    it("the first login of a tenant suspended in it is refused; other tenants are served", async () => {
      second = await startProxy({ ...t.config, listen: { ...t.config.listen, port: 0 } }, pino({ level: 'silent' }), { consoleState: { paused: false, suspended: ['acme'] } });
      const connect = async (tenant: string): Promise<{ code?: string; message: string } | null> => {
        const c = new pg.Client({ host: '127.0.0.1', port: second!.port, database: t.database, user: 'app', password: await t.token(tenant) });
        c.on('error', () => {});
        const e = await c.connect().then(
          () => null,
          (err: { code?: string; message: string }) => err,
        );
        await c.end().catch(() => {});
        return e;
      };
      const refused = await connect('acme');
      expect(refused?.code).toBe('28000');
      expect(refused?.message).toMatch(/suspended/);
      expect(await connect('globex')).toBeNull();
    });
  });
});
