// Shutting down while a released backend's DISCARD ALL is still in flight is no reset failure: close()
// destroys that backend itself, so no RESET_FAILED error (a security event) may be logged or counted.
import { Writable } from 'node:stream';
import pg from 'pg';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { startProxy } from '../../src/server.js';
import { createFixtureDatabase, primaryServer } from '../support/pg.js';
import { JWT_SECRET } from '../support/proxy.js';
import { SignJWT } from 'jose';

describe('proxy shutdown', () => {
  it('closing right after a client leaves logs no RESET_FAILED', { timeout: 120_000 }, async () => {
    const server = primaryServer();
    const fx = await createFixtureDatabase(server, 'backend_shutdown_reset');
    const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(JWT_SECRET));
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    for (let i = 0; i < 15; i++) {
      const config = validateConfig(
        {
          listen: { port: 0, plaintext_tokens: 'loopback' },
          admin: { port: 0 },
          backend: { host: server.host, port: server.port, database: fx.database, user: fx.poolUser, password: fx.poolPassword },
          pool: { size: 2 },
          auth: { jwt: { algorithms: ['HS256'], secret: JWT_SECRET } },
        },
        {},
        process.cwd(),
      );
      const proxy = await startProxy(config, pino({ level: 'warn' }, sink));
      const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'app', database: fx.database, password: token });
      await c.connect();
      await c.query('SELECT 1');
      await c.end(); // the backend goes back with DISCARD ALL on its way...
      await proxy.close(); // ...and shutdown destroys it mid-reset
    }
    expect(lines.filter((l) => l.includes('RESET_FAILED'))).toEqual([]);
  });
});
