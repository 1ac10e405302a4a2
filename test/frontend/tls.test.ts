// Client TLS (listen.tls): SSLRequest answered 'S' and the login continued over TLS, plaintext tokens refused, bytes before the handshake refused, certificate reload.
// Protocol: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
import { execFile } from 'node:child_process';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { haveOpenssl, makeTestCerts, type TestCerts } from '../support/certs.js';
import { primaryServer } from '../support/pg.js';
import { firstError, rawExchange } from '../support/wire.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

const run = promisify(execFile);
const hasPsql = await run('psql', ['--version']).then(
  () => true,
  () => false,
);

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const GSSENC_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);

function startupPacket(params: Record<string, string>): Buffer {
  const body = Buffer.concat([
    Buffer.from([0, 3, 0, 0]),
    ...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)),
    Buffer.from([0]),
  ]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length + 4);
  return Buffer.concat([len, body]);
}



/** SSLRequest, 'S', then a TLS handshake only (no login): resolves the certificate the proxy presented. */
function peerCertificate(port: number, ca: Buffer): Promise<tls.PeerCertificate> {
  return new Promise((resolve, reject) => {
    const raw = net.connect(port, '127.0.0.1', () => raw.write(SSL_REQUEST));
    raw.once('error', reject);
    raw.once('data', (answer: Buffer) => {
      if (answer.toString() !== 'S') return reject(new Error(`expected S, got ${JSON.stringify(answer.toString())}`));
      const secure = tls.connect({ socket: raw, ca, servername: 'localhost' }, () => {
        const cert = secure.getPeerCertificate();
        secure.destroy();
        resolve(cert);
      });
      secure.once('error', reject);
    });
  });
}

describe('listen.tls and backend TLS config keys', () => {
  const base = (listen: unknown, backend: Record<string, unknown> = {}) => ({
    listen,
    backend: { database: 'app', user: 'app_pool', password: 'pw', ...backend },
    auth: { jwt: { algorithms: ['HS256'], secret: 'x'.repeat(32) } },
  });
  const check = (tree: unknown) => validateConfig(tree, {}, '/etc/pgtp');
  const refused = (tree: unknown): string => {
    try {
      check(tree);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('config should have been refused');
  };

  it('defaults: no TLS for clients, sslmode prefer for the backend', () => {
    const c = check(base({}));
    expect(c.listen.tls).toBeUndefined();
    expect(c.backend.sslmode).toBe('prefer');
    expect(c.backend.sslrootcert).toBeUndefined();
  });

  it('listen.tls resolves paths against the config directory and defaults min_version; plaintext tokens are refused by default', () => {
    const c = check(base({ tls: { cert_file: 'tls/proxy.crt', key_file: '/abs/proxy.key' } }));
    expect(c.listen.tls).toEqual({ cert_file: '/etc/pgtp/tls/proxy.crt', key_file: '/abs/proxy.key', min_version: 'TLSv1.2' });
    expect(c.listen.plaintext_tokens).toBe('refuse');
    expect(check(base({})).listen.plaintext_tokens).toBe('refuse');
  });

  it('refuses incomplete or mistyped listen.tls', () => {
    expect(refused(base({ tls: { cert_file: 'a.crt' } }))).toContain('listen.tls.key_file: is required');
    expect(refused(base({ tls: { cert_file: 'a', key_file: 'b', min_version: 'TLSv1.1' } }))).toContain('listen.tls.min_version: must be one of TLSv1.2, TLSv1.3');
    expect(refused(base({ plaintext_tokens: 'yes' }))).toContain('listen.plaintext_tokens: must be one of refuse, loopback, allow');
    expect(refused(base({ tls: { cert: 'a' } }))).toContain('listen.tls.cert: unknown key');
  });

  it('backend.sslmode takes libpq values; sslrootcert only where it verifies', () => {
    expect(check(base({}, { sslmode: 'verify-full', sslrootcert: 'ca.pem' })).backend.sslrootcert).toBe('/etc/pgtp/ca.pem');
    expect(refused(base({}, { sslmode: 'allow' }))).toContain('backend.sslmode: must be one of disable, prefer, require, verify-ca, verify-full');
    expect(refused(base({}, { sslmode: 'prefer', sslrootcert: 'ca.pem' }))).toContain('backend.sslrootcert: is only used with sslmode require, verify-ca or verify-full');
  });

  it('a missing certificate file stops the proxy from starting, naming the key and path', async () => {
    const { createClientTls } = await import('../../src/frontend/tls.js');
    expect(() => createClientTls({ cert_file: '/nonexistent/proxy.crt', key_file: '/nonexistent/proxy.key', min_version: 'TLSv1.2' })).toThrow(
      'listen.tls.cert_file: cannot read /nonexistent/proxy.crt: ENOENT',
    );
  });
});

// The certificates come from the openssl CLI (installed by .ci/run); skip where it is missing.
describe.runIf(haveOpenssl)('client TLS (listen.tls)', () => {
  let t: TestProxy;
  let certs: TestCerts;
  let certFile: string;
  let keyFile: string;
  let second: { certFile: string; keyFile: string };

  beforeAll(async () => {
    certs = makeTestCerts();
    const first = certs.serverCert('first', 1001);
    second = certs.serverCert('second', 1002);
    // The proxy reads these paths; the reload test copies the second certificate over them.
    certFile = path.join(certs.dir, 'proxy.pem');
    keyFile = path.join(certs.dir, 'proxy.key');
    copyFileSync(first.certFile, certFile);
    copyFileSync(first.keyFile, keyFile);
    t = await startTestProxy(primaryServer(), 'fe_tls', { pool: { size: 2 }, listen: { plaintext_tokens: 'refuse', tls: { cert_file: certFile, key_file: keyFile } } });
  });
  afterAll(async () => {
    await t?.close();
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  function tlsClient(tenant: string): Promise<pg.Client> {
    return t.token(tenant).then(async (password) => {
      const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password, ssl: { ca: certs.ca, servername: 'localhost' } });
      c.on('error', () => {});
      await c.connect();
      return c;
    });
  }

  it.runIf(hasPsql)('psql with sslmode=verify-full and the CA logs in and queries', async () => {
    const conninfo = `host=127.0.0.1 port=${t.proxy.port} dbname=${t.database} user=app sslmode=verify-full sslrootcert=${certs.caFile}`;
    const { stdout } = await run('psql', ['-X', '-At', '-d', conninfo, '-c', "SELECT current_setting('app.current_tenant')"], {
      env: { ...process.env, PGPASSWORD: await t.token('acme'), PGCONNECT_TIMEOUT: '10' },
    });
    expect(stdout.trim()).toBe('acme');
  });

  it('node-postgres with ssl: { ca, servername } logs in over TLS', async () => {
    const c = await tlsClient('globex');
    try {
      const r = await c.query("SELECT current_setting('app.current_tenant') AS t");
      expect(r.rows[0].t).toBe('globex');
      const stream = (c as unknown as { connection: { stream: net.Socket } }).connection.stream;
      expect(stream).toBeInstanceOf(tls.TLSSocket);
      expect((stream as tls.TLSSocket).authorized).toBe(true);
    } finally {
      await c.end();
    }
  });

  it('a refused login over TLS gets its error over TLS', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme', { secret: 'x'.repeat(40) }), ssl: { ca: certs.ca, servername: 'localhost' } });
    c.on('error', () => {});
    const e = (await c.connect().then(
      () => null,
      (err: unknown) => err,
    )) as { code: string } | null;
    await c.end().catch(() => {});
    expect(e?.code).toBe('28P01');
  });

  it('refuses a token over a plaintext connection with 28000 naming sslmode=require', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') });
    c.on('error', () => {});
    const e = (await c.connect().then(
      () => null,
      (err: unknown) => err,
    )) as { code: string; message: string } | null;
    await c.end().catch(() => {});
    expect(e).not.toBeNull();
    expect(e!.code).toBe('28000');
    expect(e!.message).toContain('sslmode=require');
  });

  it.runIf(hasPsql)('psql with sslmode=disable is refused before it sends its token', async () => {
    const conninfo = `host=127.0.0.1 port=${t.proxy.port} dbname=${t.database} user=app sslmode=disable`;
    const e = (await run('psql', ['-X', '-At', '-d', conninfo, '-c', 'SELECT 1'], {
      env: { ...process.env, PGPASSWORD: await t.token('acme') },
    }).then(
      () => null,
      (err: unknown) => err,
    )) as { stderr: string } | null;
    expect(e).not.toBeNull();
    expect(e!.stderr).toContain('sslmode=require');
  });

  it('refuses bytes sent after SSLRequest before the answer (08P01), without answering S', async () => {
    const reply = await rawExchange(t.proxy.port, Buffer.concat([SSL_REQUEST, startupPacket({ user: 'app', database: t.database })]));
    expect(reply[0]).not.toBe(0x53); // no 'S'
    const err = firstError(reply);
    expect(err?.code).toBe('08P01');
  });

  it('still declines GSSENCRequest, then accepts SSLRequest', async () => {
    const answers = await new Promise<string>((resolve, reject) => {
      const s = net.connect(t.proxy.port, '127.0.0.1', () => s.write(GSSENC_REQUEST));
      let got = '';
      s.on('error', reject);
      s.on('data', (d) => {
        got += d.toString('latin1');
        if (got === 'N') s.write(SSL_REQUEST);
        else {
          s.destroy();
          resolve(got);
        }
      });
    });
    expect(answers).toBe('NS');
  });

  it('reload() swaps the certificate for new connections; a bad file keeps the old one', async () => {
    expect(parseInt((await peerCertificate(t.proxy.port, certs.ca)).serialNumber, 16)).toBe(1001);
    const before = await tlsClient('acme'); // an open connection is unaffected by the swap
    copyFileSync(second.certFile, certFile);
    copyFileSync(second.keyFile, keyFile);
    await t.proxy.reload?.();
    expect(parseInt((await peerCertificate(t.proxy.port, certs.ca)).serialNumber, 16)).toBe(1002);

    writeFileSync(certFile, 'not a certificate\n');
    await t.proxy.reload?.();
    expect(parseInt((await peerCertificate(t.proxy.port, certs.ca)).serialNumber, 16)).toBe(1002);
    const after = await tlsClient('acme');
    expect((await after.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    expect((await before.query('SELECT 2 AS two')).rows[0].two).toBe(2);
    await Promise.all([before.end(), after.end()]);
  });
});

describe.runIf(haveOpenssl)('client TLS with listen.plaintext_tokens: loopback', () => {
  let t: TestProxy;
  let certs: TestCerts;
  beforeAll(async () => {
    certs = makeTestCerts();
    const { certFile, keyFile } = certs.serverCert('server', 2001);
    t = await startTestProxy(primaryServer(), 'fe_tls_loop', {
      pool: { size: 2 },
      listen: { max_client_conn: 4, plaintext_tokens: 'loopback', tls: { cert_file: certFile, key_file: keyFile, min_version: 'TLSv1.3' } },
    });
  });
  afterAll(async () => {
    await t?.close();
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  it('lets a plaintext token login through from 127.0.0.1', async () => {
    const c = await t.pgClient('acme');
    expect((await c.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('acme');
  });

  it('still serves TLS (TLSv1.3 minimum) to clients that ask', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('globex'), ssl: { ca: certs.ca, servername: 'localhost' } });
    await c.connect();
    const stream = (c as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream;
    expect(stream.getProtocol()).toBe('TLSv1.3');
    expect((await c.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('globex');
    await c.end();
  });

  it('frees the connection slot when a TLS client leaves (max_client_conn: 4)', async () => {
    for (let i = 0; i < 6; i++) {
      const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme'), ssl: { ca: certs.ca, servername: 'localhost' } });
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      await new Promise((r) => setTimeout(r, 20));
    }
  });
});

describe('plaintext tokens without TLS configured', () => {
  it('are refused by default, with a message that says what to set', async () => {
    const t = await startTestProxy(primaryServer(), 'fe_plain_refuse', { listen: { plaintext_tokens: 'refuse' } });
    try {
      const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token('acme') });
      c.on('error', () => {});
      const e = (await c.connect().catch((err: unknown) => err)) as { code?: string; message: string };
      expect(e.code).toBe('28000');
      expect(e.message).toMatch(/configure listen.tls .*or set listen.plaintext_tokens/);
    } finally {
      await t.close();
    }
  });
});
