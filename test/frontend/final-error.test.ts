// closeWithFatal: the last message reaches a client that is slow to read (backpressured socket, TLS), and
// the socket is gone within a bound even if the client never reads nor hangs up.
import net from 'node:net';
import tls from 'node:tls';
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { closeWithFatal } from '../../src/frontend/final-error.js';
import { haveOpenssl, makeTestCerts, type TestCerts } from '../support/certs.js';
import { firstError } from '../support/wire.js';

const BULK = Buffer.alloc(8 * 1024 * 1024, 0x41); // far more than the kernel buffers hold: the write is backpressured

/** Server that writes BULK then a FATAL on each connection; the client reads only after 300 ms. */
async function lastBytesSeen(listen: (onSocket: (s: net.Socket) => void) => net.Server, dial: (port: number) => net.Socket): Promise<Buffer> {
  let serverSide!: net.Socket;
  const server = listen((s) => {
    serverSide = s;
    s.write(BULK);
    closeWithFatal(s, { code: '57P01', message: 'bye' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const got: Buffer[] = [];
  await new Promise<void>((resolve) => {
    const c = dial(port);
    c.pause();
    setTimeout(() => c.resume(), 300);
    c.on('data', (d) => got.push(d));
    c.on('close', () => resolve());
    c.on('error', () => resolve());
  });
  server.close();
  // The server side is gone soon after the client hung up.
  if (!serverSide.destroyed) await new Promise((r) => serverSide.once('close', r));
  const all = Buffer.concat(got);
  expect(all.length).toBeGreaterThan(BULK.length);
  return all.subarray(BULK.length);
}

describe('closeWithFatal', () => {
  let certs: TestCerts | undefined;
  afterAll(() => certs && rmSync(certs.dir, { recursive: true, force: true }));

  it('delivers the FATAL after a backpressured write on plain TCP', async () => {
    const tail = await lastBytesSeen(
      (on) => net.createServer(on),
      (port) => net.connect(port, '127.0.0.1'),
    );
    expect(firstError(tail)).toEqual({ code: '57P01', message: 'bye' });
  });

  it.runIf(haveOpenssl)('delivers the FATAL after a backpressured write on TLS', async () => {
    certs = makeTestCerts();
    const { certFile, keyFile } = certs.serverCert('localhost', 1);
    const { readFileSync } = await import('node:fs');
    const tail = await lastBytesSeen(
      (on) => tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, on),
      (port) => tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }),
    );
    expect(firstError(tail)).toEqual({ code: '57P01', message: 'bye' });
  });

  it('closes the socket within a bound when the client never reads nor hangs up', async () => {
    let serverSide!: net.Socket;
    const server = net.createServer((s) => {
      serverSide = s;
      s.write(BULK);
      closeWithFatal(s, { code: '57P01', message: 'bye' });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    c.pause();
    c.on('error', () => {});
    await new Promise((r) => setTimeout(r, 200));
    const closed = await new Promise<boolean>((resolve) => {
      if (serverSide.destroyed) return resolve(true);
      const timer = setTimeout(() => resolve(false), 8000);
      serverSide.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    c.destroy();
    server.close();
    expect(closed).toBe(true);
  });
});
