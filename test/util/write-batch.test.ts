// WriteBatch: one write per batch, order kept, nesting, big batches uncopied, nothing after the end.
import { describe, expect, it } from 'vitest';
import type net from 'node:net';
import { WriteBatch } from '../../src/util/write-batch.js';

function fakeSocket() {
  const writes: Buffer[] = [];
  let corked = 0;
  const s = {
    destroyed: false,
    writableEnded: false,
    writableNeedDrain: false,
    full: false,
    write(b: Buffer) {
      writes.push(b);
      return !s.full;
    },
    cork: () => corked++,
    uncork: () => corked--,
  };
  return { s, writes, socket: s as unknown as net.Socket, corked: () => corked };
}

describe('WriteBatch', () => {
  it('queues while batching and writes once at the outermost end, in order', () => {
    const f = fakeSocket();
    const b = new WriteBatch(f.socket);
    b.begin();
    b.write(Buffer.from('a'));
    b.begin();
    b.write(Buffer.from('b'));
    expect(b.end()).toBe(true);
    expect(f.writes).toHaveLength(0);
    b.write(Buffer.from('c'));
    b.end();
    expect(f.writes.map(String)).toEqual(['abc']);
    b.write(Buffer.from('d')); // not batching: at once
    expect(f.writes.map(String)).toEqual(['abc', 'd']);
  });

  it('a single buffer goes out as it is; a large batch is written uncopied through cork', () => {
    const f = fakeSocket();
    const b = new WriteBatch(f.socket);
    const one = Buffer.alloc(10);
    b.begin();
    b.write(one);
    b.end();
    expect(f.writes[0]).toBe(one);
    const big = [Buffer.alloc(20_000), Buffer.alloc(20_000)];
    b.begin();
    for (const x of big) b.write(x);
    b.end();
    expect(f.writes.slice(1)).toEqual(big);
    expect(f.writes[1]).toBe(big[0]);
    expect(f.corked()).toBe(0);
  });

  it('reports a full socket at the flush, and drops writes once the socket has ended', () => {
    const f = fakeSocket();
    const b = new WriteBatch(f.socket);
    b.begin();
    expect(b.write(Buffer.from('x'))).toBe(true);
    f.s.full = true;
    expect(b.end()).toBe(false);
    f.s.writableEnded = true;
    b.begin();
    b.write(Buffer.from('late'));
    b.end();
    expect(f.writes.map(String)).toEqual(['x']);
  });
});
