// A backend connection never leaves its owner waiting: an owner that registers after the connection closed
// is still told, and a write to a closed connection reports failure instead of pretending to succeed.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ServerConn } from '../../src/backend/server.js';

const conn = () => new ServerConn({ socket: new net.Socket(), pid: 1, secret: Buffer.alloc(4), params: new Map() });

describe('ServerConn', () => {
  it('tells an owner that registers after the close, with the reason', async () => {
    const c = conn();
    c.destroy('server sent FATAL 57P01 while idle');
    const told = await new Promise<string>((resolve) => c.onClose(resolve));
    expect(told).toBe('server sent FATAL 57P01 while idle');
    expect(c.write(Buffer.from('Q'))).toBe(false);
  });

  it('a remover called before the notice keeps it from firing', async () => {
    const c = conn();
    c.destroy('gone');
    let told = false;
    const off = c.onClose(() => (told = true));
    off();
    await new Promise((r) => setTimeout(r, 10));
    expect(told).toBe(false);
  });
});
