// The lazy session logger: made on first use, with its bindings, and free when the level is off.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, lazyChild } from '../../src/admin/log.js';

function capture(level: 'info' | 'warn') {
  const lines: Array<Record<string, unknown>> = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)));
      cb();
    },
  });
  return { log: createLogger(level, dest), lines };
}

describe('lazyChild', () => {
  it('logs with the bindings, builds them once, and never for a disabled level', async () => {
    const { log, lines } = capture('warn');
    let built = 0;
    const child = lazyChild(log, () => {
      built++;
      return { tenant: 'acme', client_pid: 7 };
    });
    child.info({ event: 'CLIENT_CONNECT' }, 'hidden');
    expect(built).toBe(0);
    child.warn({ event: 'X' }, 'shown');
    child.error({ event: 'Y' }, 'also');
    await new Promise((r) => setImmediate(r));
    expect(built).toBe(1);
    expect(lines.map((l) => [l.event, l.tenant, l.client_pid, l.msg])).toEqual([
      ['X', 'acme', 7, 'shown'],
      ['Y', 'acme', 7, 'also'],
    ]);
  });
});
