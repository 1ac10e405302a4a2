// Raw-socket helpers for tests that speak the protocol by hand: send bytes, collect the reply, read errors.
import net from 'node:net';

/** Sends raw bytes and collects what the proxy answers until it closes (or 2 s pass). */
export function rawExchange(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(got));
    };
    const timer = setTimeout(done, 2000);
    s.on('data', (d) => got.push(d));
    s.on('close', done);
    s.on('error', done);
    s.on('connect', () => s.write(payload));
  });
}

/** SQLSTATE (C) and message (M) of the first ErrorResponse in a byte stream of whole messages. */
export function firstError(buf: Buffer): { code: string; message: string } | null {
  let pos = 0;
  while (pos + 5 <= buf.length) {
    const type = buf[pos];
    const len = buf.readUInt32BE(pos + 1);
    if (type === 0x45) {
      const fields: Record<string, string> = {};
      let p = pos + 5;
      while (p < buf.length && buf[p] !== 0) {
        const end = buf.indexOf(0, p + 1);
        fields[String.fromCharCode(buf[p])] = buf.toString('utf8', p + 1, end);
        p = end + 1;
      }
      return { code: fields.C, message: fields.M };
    }
    pos += 1 + len;
  }
  return null;
}

/** Sends a CancelRequest with a (proxy-issued) key; resolves when the proxy has closed the connection. */
export function sendCancel(port: number, pid: number, secret: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      const b = Buffer.alloc(16);
      b.writeUInt32BE(16, 0);
      b.writeUInt32BE(80877102, 4);
      b.writeUInt32BE(pid, 8);
      b.writeInt32BE(secret, 12);
      s.end(b);
    });
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

/** A DataRow body (without type and length) holding `fields` as text; null is SQL NULL. */
export function dataRowBody(fields: Array<string | null>): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0].writeInt16BE(fields.length, 0);
  for (const f of fields) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(f === null ? -1 : Buffer.byteLength(f), 0);
    parts.push(len, f === null ? Buffer.alloc(0) : Buffer.from(f));
  }
  return Buffer.concat(parts);
}
