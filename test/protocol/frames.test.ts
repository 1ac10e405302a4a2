// The frame scanner must forward, drop, inspect and stall identically whatever way a stream is chunked.
import { describe, expect, it } from 'vitest';
import { Action, type FrameSink, FrameScanner, FrameError } from '../../src/protocol/frames.js';

function frame(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = type.charCodeAt(0);
  out.writeUInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

/** A deterministic PRNG so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function split(buf: Buffer, rand: () => number): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const n = 1 + Math.floor(rand() * Math.min(40, buf.length - pos));
    out.push(buf.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

describe('FrameScanner', () => {
  const stream = Buffer.concat([
    frame('T', 'row description'),
    frame('D', Buffer.alloc(300, 7)), // passes
    frame('N', 'a notice'), // dropped
    frame('D', ''), // empty body passes
    frame('Z', 'I'), // inspected, forwarded
    frame('S', 'name\0value\0'), // inspected, dropped
    frame('C', 'SELECT 1'),
    frame('Z', 'T'),
  ]);
  const expected = Buffer.concat([
    frame('T', 'row description'),
    frame('D', Buffer.alloc(300, 7)),
    frame('D', ''),
    frame('Z', 'I'),
    frame('C', 'SELECT 1'),
    frame('Z', 'T'),
  ]);

  function run(chunks: Buffer[]): { out: Buffer; inspected: string[]; writes: number } {
    const written: Buffer[] = [];
    const inspected: string[] = [];
    const sink: FrameSink = {
      classify: (t) => (t === 0x4e ? Action.Drop : t === 0x5a || t === 0x53 ? Action.Inspect : Action.Pass),
      inspect: (t, body) => {
        inspected.push(String.fromCharCode(t) + ':' + body.toString());
        return t === 0x5a;
      },
      write: (b) => written.push(Buffer.from(b)),
    };
    const sc = new FrameScanner(1 << 20, 1024);
    for (const c of chunks) expect(sc.feed(c, sink)).toBeNull();
    expect(sc.atBoundary).toBe(true);
    return { out: Buffer.concat(written), inspected, writes: written.length };
  }

  it('forwards the same bytes for one chunk and for every random split', () => {
    const whole = run([stream]);
    expect(whole.out.equals(expected)).toBe(true);
    expect(whole.inspected).toEqual(['Z:I', 'S:name\0value\0', 'Z:T']);
    for (let seed = 1; seed <= 300; seed++) {
      const r = run(split(stream, rng(seed)));
      expect(r.out.equals(expected), `seed ${seed}`).toBe(true);
      expect(r.inspected).toEqual(whole.inspected);
    }
  });

  it('does not copy pass-through frames that arrive whole: they are views of the input', () => {
    const big = frame('D', Buffer.alloc(100_000, 1));
    const seen: Buffer[] = [];
    const sc = new FrameScanner(1 << 20, 1024);
    sc.feed(big, { classify: () => Action.Pass, inspect: () => true, write: (b) => seen.push(b) });
    expect(seen).toHaveLength(1);
    expect(seen[0].buffer).toBe(big.buffer);
  });

  it('stalls before a frame and returns the rest, header included, even when the header was split', () => {
    const data = Buffer.concat([frame('H', ''), frame('Q', 'select 1\0'), frame('S', '')]);
    for (let cut = 1; cut < data.length; cut++) {
      const sc = new FrameScanner(1 << 20, 0);
      const passed: Buffer[] = [];
      const sink: FrameSink = {
        classify: (t) => (t === 0x51 ? Action.Stall : Action.Pass),
        inspect: () => false,
        write: (b) => passed.push(Buffer.from(b)),
      };
      let rest = sc.feed(data.subarray(0, cut), sink);
      if (!rest) rest = sc.feed(data.subarray(cut), sink);
      else rest = Buffer.concat([rest, data.subarray(cut)]);
      expect(Buffer.concat(passed).equals(frame('H', '')), `cut ${cut}`).toBe(true);
      expect(rest!.equals(data.subarray(5)), `cut ${cut}`).toBe(true);
    }
  });

  it('peeks at the first bytes of a frame and forwards it whole, for every random split, with nothing assembled', () => {
    const data = Buffer.concat([
      frame('P', 'stmt\0' + 'x'.repeat(5000) + '\0\0\0'), // longer than the peek size
      frame('B', 'portal\0stmt\0'), // shorter than the peek size
      frame('H', ''),
      frame('B', ''), // empty body
      frame('S', ''),
    ]);
    const runPeek = (chunks: Buffer[]) => {
      const written: Buffer[] = [];
      const peeks: string[] = [];
      const sc = new FrameScanner(1 << 20, 16, 64);
      const sink: FrameSink = {
        classify: (t) => (t === 0x50 || t === 0x42 ? Action.Peek : Action.Pass),
        inspect: () => {
          throw new Error('nothing is inspected');
        },
        peek: (t, head, n) => {
          peeks.push(`${String.fromCharCode(t)}:${n}:${head.toString('latin1')}`);
          written.push(Buffer.from(`<${String.fromCharCode(t)}>`)); // an injection lands before the frame
        },
        write: (b) => written.push(Buffer.from(b)),
      };
      for (const c of chunks) expect(sc.feed(c, sink)).toBeNull();
      expect(sc.atBoundary).toBe(true);
      return { out: Buffer.concat(written), peeks };
    };
    const whole = runPeek([data]);
    expect(whole.peeks).toEqual([`P:5008:stmt\0${'x'.repeat(59)}`, 'B:12:portal\0stmt\0', 'B:0:']);
    const stripped = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/<[PB]>/g, ''), 'latin1');
    expect(stripped(whole.out).equals(data)).toBe(true);
    expect(whole.out.toString('latin1').indexOf('<P>')).toBe(0);
    for (let seed = 1; seed <= 200; seed++) {
      const r = runPeek(split(data, rng(seed)));
      expect(r.peeks, `seed ${seed}`).toEqual(whole.peeks);
      expect(r.out.equals(whole.out), `seed ${seed}`).toBe(true);
    }
  });

  it('rejects impossible lengths before allocating anything', () => {
    const sc = new FrameScanner(1000, 100);
    const sink: FrameSink = { classify: () => Action.Pass, inspect: () => true, write: () => {} };
    const bad = Buffer.from([0x44, 0, 0, 0, 2]);
    expect(() => sc.feed(bad, sink)).toThrow(FrameError);
    const huge = Buffer.from([0x44, 0x7f, 0xff, 0xff, 0xff]);
    expect(() => new FrameScanner(1000, 100).feed(huge, sink)).toThrow(/invalid message length/);
    const inspectTooBig = frame('Z', Buffer.alloc(200));
    const sink2: FrameSink = { classify: () => Action.Inspect, inspect: () => true, write: () => {} };
    expect(() => new FrameScanner(1000, 100).feed(inspectTooBig, sink2)).toThrow(/exceeds/);
  });
});
