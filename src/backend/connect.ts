// Opens one backend connection: TCP, StartupMessage, authentication (SCRAM-SHA-256, md5 or cleartext),
// then collects ParameterStatus and BackendKeyData until the first ReadyForQuery.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
import net from 'node:net';
import { serialize } from 'pg-protocol';
import * as sasl from 'pg/lib/crypto/sasl.js';
import { postgresMd5PasswordHash } from 'pg/lib/crypto/utils.js';
import type { BackendConfig } from '../config/types.js';
import { Auth, Backend } from '../protocol/codes.js';
import { decodeErrorFields, decodeParameterStatus } from '../protocol/decode.js';
import { Action, FrameScanner } from '../protocol/frames.js';

export interface Handshake {
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
    const socket = net.connect({ host: cfg.host, port: cfg.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
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
          scram = sasl.startSession(mechanisms);
          socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.response));
          return;
        }
        case Auth.SASLContinue:
          if (!scram) throw new Error('server sent SASLContinue before SASL');
          await sasl.continueSession(scram, cfg.password, body.toString('utf8', 4));
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
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('connect', () => {
      // No application_name of the proxy's own: the server's default ('') is then also what a client that
      // sets none should see, and each client's own name is applied per transaction.
      socket.write(serialize.startup({ user: cfg.user, database: cfg.database }));
    });
  });
}

/** Sends a CancelRequest for a backend's running query; resolves when the server has closed the request. */
export function sendCancel(cfg: BackendConfig, pid: number, secret: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: cfg.host, port: cfg.port });
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, cfg.connect_timeout_ms);
    socket.on('connect', () => {
      // https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CANCELREQUEST
      const msg = Buffer.alloc(16);
      msg.writeUInt32BE(16, 0);
      msg.writeUInt32BE(80877102, 4);
      msg.writeUInt32BE(pid, 8);
      secret.copy(msg, 12, 0, 4);
      socket.end(msg);
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}
