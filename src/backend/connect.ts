// Opens one backend connection: TCP, TLS per backend.sslmode (SSLRequest first), StartupMessage,
// authentication (SCRAM-SHA-256[-PLUS], md5 or cleartext), then collects ParameterStatus and BackendKeyData
// until the first ReadyForQuery.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
// TLS: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import * as sasl from 'pg/lib/crypto/sasl.js';
import { postgresMd5PasswordHash } from 'pg/lib/crypto/utils.js';
import type { BackendConfig } from '../config/types.js';
import { Auth, Backend } from '../protocol/codes.js';
import { decodeErrorFields, decodeParameterStatus } from '../protocol/decode.js';
import { Action, FrameScanner } from '../protocol/frames.js';

export interface Handshake {
  /** A tls.TLSSocket when the connection is encrypted. */
  socket: net.Socket;
  pid: number;
  /** Secret of the server's BackendKeyData, needed to cancel its queries. */
  secret: Buffer;
  params: Map<string, string>;
}

/** A failure to open a backend connection; `sqlstate` is the server's when it sent an error. */
export class BackendConnectError extends Error {
  constructor(
    message: string,
    public readonly sqlstate = '08006',
  ) {
    super(message);
    this.name = 'BackendConnectError';
  }
}

const MAX_STARTUP_FRAME = 1 << 20;

export function connectBackend(cfg: BackendConfig): Promise<Handshake> {
  return new Promise<Handshake>((resolve, reject) => {
    let tlsOpts: tls.ConnectionOptions | null;
    try {
      tlsOpts = tlsOptions(cfg);
    } catch (e) {
      reject(e);
      return;
    }
    const raw = net.connect({ host: cfg.host, port: cfg.port });
    raw.setNoDelay(true);
    raw.setKeepAlive(true, 30_000);
    /** The raw socket, then the TLS socket once negotiated. */
    let socket: net.Socket = raw;
    const params = new Map<string, string>();
    let pid = 0;
    let secret = Buffer.alloc(4);
    let scram: sasl.SaslSession | null = null;
    let settled = false;
    const scanner = new FrameScanner(MAX_STARTUP_FRAME, MAX_STARTUP_FRAME);
    const where = `${cfg.host}:${cfg.port}`;

    const fail = (message: string, sqlstate?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      raw.destroy();
      reject(new BackendConnectError(message, sqlstate));
    };
    const timer = setTimeout(() => fail(`timed out after ${cfg.connect_timeout_ms} ms connecting to ${where}`), cfg.connect_timeout_ms);

    const onAuth = async (body: Buffer): Promise<void> => {
      const code = body.readInt32BE(0);
      switch (code) {
        case Auth.Ok:
          return;
        case Auth.CleartextPassword:
          socket.write(serialize.password(cfg.password));
          return;
        case Auth.MD5Password:
          socket.write(serialize.password(await postgresMd5PasswordHash(cfg.user, cfg.password, body.subarray(4, 8))));
          return;
        case Auth.SASL: {
          const mechanisms = body
            .toString('utf8', 4)
            .split('\0')
            .filter((m) => m.length > 0);
          // Over TLS, SCRAM-SHA-256-PLUS (tls-server-end-point channel binding) when the server offers it.
          scram = sasl.startSession(mechanisms, socket instanceof tls.TLSSocket ? socket : undefined);
          socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.response));
          return;
        }
        case Auth.SASLContinue:
          if (!scram) throw new Error('server sent SASLContinue before SASL');
          await sasl.continueSession(scram, cfg.password, body.toString('utf8', 4), socket instanceof tls.TLSSocket ? socket : undefined);
          socket.write(serialize.sendSCRAMClientFinalMessage(scram.response));
          return;
        case Auth.SASLFinal:
          if (!scram) throw new Error('server sent SASLFinal before SASL');
          sasl.finalizeSession(scram, body.toString('utf8', 4));
          return;
        default:
          throw new Error(`server asked for an authentication method the proxy does not support (code ${code})`);
      }
    };

    // Authentication steps are async (PBKDF2); chain them so responses keep their order.
    let chain = Promise.resolve();
    const sink = {
      classify: () => Action.Inspect,
      write: () => {},
      inspect: (type: number, body: Buffer): boolean => {
        switch (type) {
          case Backend.Authentication: {
            const copy = Buffer.from(body);
            chain = chain.then(() => onAuth(copy)).catch((e: Error) => fail(`authentication to ${where} failed: ${e.message}`, '28000'));
            break;
          }
          case Backend.ParameterStatus: {
            const [name, value] = decodeParameterStatus(body);
            params.set(name, value);
            break;
          }
          case Backend.BackendKeyData:
            pid = body.readUInt32BE(0);
            secret = Buffer.from(body.subarray(4));
            break;
          case Backend.ErrorResponse: {
            const f = decodeErrorFields(body);
            fail(`${where} refused the connection: ${f.M ?? 'unknown error'}`, f.C);
            break;
          }
          case Backend.ReadyForQuery:
            chain = chain.then(() => {
              if (settled) return;
              settled = true;
              clearTimeout(timer);
              socket.removeListener('data', onData);
              socket.removeListener('error', onError);
              socket.removeListener('close', onClose);
              if (socket !== raw) {
                raw.removeListener('error', onError);
                raw.removeListener('close', onClose);
              }
              resolve({ socket, pid, secret, params });
            });
            break;
          default:
            break; // NoticeResponse, NegotiateProtocolVersion: nothing to do.
        }
        return false;
      },
    };
    const onData = (chunk: Buffer): void => {
      try {
        scanner.feed(chunk, sink);
      } catch (e) {
        fail(`${where} sent an invalid message during startup: ${(e as Error).message}`, '08P01');
      }
    };
    const onError = (e: Error): void => fail(`could not connect to ${where}: ${e.message}`);
    const onClose = (): void => fail(`${where} closed the connection during startup`);
    raw.on('error', onError);
    raw.on('close', onClose);
    raw.on('connect', () => {
      negotiateTls(raw, cfg, tlsOpts, where, (err, sock) => {
        if (err || !sock) return fail(err?.message ?? 'TLS negotiation failed', err?.sqlstate);
        if (settled) return void sock.destroy();
        socket = sock;
        if (sock !== raw) {
          sock.on('error', onError);
          sock.on('close', onClose);
        }
        sock.on('data', onData);
        // No application_name of the proxy's own: the server's default ('') is then also what a client that
        // sets none should see, and each client's own name is applied per transaction.
        sock.write(serialize.startup({ user: cfg.user, database: cfg.database }));
      });
    });
  });
}

/** SSLRequest: int32 length 8, int32 80877103. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** TLS options for backend.sslmode, or null for disable. Verification follows libpq's sslmode semantics. */
function tlsOptions(cfg: BackendConfig): tls.ConnectionOptions | null {
  if (cfg.sslmode === 'disable') return null;
  let ca: Buffer | undefined;
  if (cfg.sslrootcert !== undefined) {
    try {
      ca = readFileSync(cfg.sslrootcert);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new BackendConnectError(`cannot read backend.sslrootcert ${cfg.sslrootcert}: ${err.code ?? err.message}`);
    }
  }
  // Like libpq, require with a root certificate configured verifies the chain (as verify-ca).
  const verifyChain = cfg.sslmode === 'verify-ca' || cfg.sslmode === 'verify-full' || (cfg.sslmode === 'require' && ca !== undefined);
  return {
    // SNI must be a host name, never an IP address (RFC 6066).
    ...(net.isIP(cfg.host) ? {} : { servername: cfg.host }),
    ...(ca ? { ca } : {}),
    minVersion: 'TLSv1.2',
    rejectUnauthorized: verifyChain,
    // verify-full checks the name (or IP address) against the configured host; verify-ca only the chain.
    checkServerIdentity: cfg.sslmode === 'verify-full' ? (_name, cert) => tls.checkServerIdentity(cfg.host, cert) : () => undefined,
  };
}

/**
 * Sends SSLRequest unless sslmode is disable: 'S' → TLS handshake on the same socket; 'N' → plaintext for
 * prefer, an error for require and verify-*. Bytes after the one-byte answer are refused: they would come
 * before (and outside) the TLS handshake (CVE-2021-23222).
 */
function negotiateTls(
  raw: net.Socket,
  cfg: BackendConfig,
  opts: tls.ConnectionOptions | null,
  where: string,
  done: (err: BackendConnectError | null, socket?: net.Socket) => void,
): void {
  if (!opts) return done(null, raw);
  const onAnswer = (chunk: Buffer): void => {
    raw.removeListener('data', onAnswer);
    const answer = chunk[0];
    if (chunk.length > 1) {
      return done(new BackendConnectError(`${where} sent unexpected data after its answer to SSLRequest; refusing the connection`, '08P01'));
    }
    if (answer === 0x4e /* N */) {
      if (cfg.sslmode === 'prefer') return done(null, raw);
      return done(new BackendConnectError(`${where} does not support TLS (answered N to SSLRequest), but backend.sslmode is ${cfg.sslmode}`));
    }
    if (answer !== 0x53 /* S */) {
      return done(new BackendConnectError(`${where} sent an invalid answer to SSLRequest (byte ${answer}); is it a PostgreSQL server?`, '08P01'));
    }
    const secure = tls.connect({ ...opts, socket: raw });
    const onError = (e: Error): void => {
      secure.destroy();
      done(new BackendConnectError(`TLS handshake with ${where} failed (backend.sslmode=${cfg.sslmode}): ${e.message}`));
    };
    secure.on('error', onError);
    secure.once('secureConnect', () => {
      secure.removeListener('error', onError);
      done(null, secure);
    });
  };
  raw.on('data', onAnswer);
  raw.write(SSL_REQUEST);
}

/**
 * Sends a CancelRequest for a backend's running query; resolves when the server has closed the request.
 * It goes over TLS exactly as the connections do (backend.sslmode): the cancel key is a secret.
 */
export function sendCancel(cfg: BackendConfig, pid: number, secret: Buffer): Promise<void> {
  return new Promise((resolve) => {
    let opts: tls.ConnectionOptions | null;
    try {
      opts = tlsOptions(cfg);
    } catch {
      resolve();
      return;
    }
    const raw = net.connect({ host: cfg.host, port: cfg.port });
    let socket: net.Socket = raw;
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      raw.destroy();
      resolve();
    };
    const timer = setTimeout(done, cfg.connect_timeout_ms);
    raw.on('connect', () => {
      negotiateTls(raw, cfg, opts, `${cfg.host}:${cfg.port}`, (err, sock) => {
        if (err || !sock || finished) return done();
        socket = sock;
        if (sock !== raw) {
          sock.on('error', done);
          sock.on('close', done);
        }
        // https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CANCELREQUEST
        const msg = Buffer.alloc(16);
        msg.writeUInt32BE(16, 0);
        msg.writeUInt32BE(80877102, 4);
        msg.writeUInt32BE(pid, 8);
        secret.copy(msg, 12, 0, 4);
        sock.end(msg);
      });
    });
    raw.on('error', done);
    raw.on('close', done);
  });
}
