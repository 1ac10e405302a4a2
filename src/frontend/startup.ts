// The client login: SSLRequest answered (TLS when listen.tls is set), GSSENCRequest declined, CancelRequest dispatched, StartupMessage checked,
// the JWT taken as a cleartext password and verified, then AuthenticationOk, ParameterStatus,
// BackendKeyData and ReadyForQuery.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
import type net from 'node:net';
import type { VerifiedIdentity } from '../auth/jwt.js';
import { authenticate, AuthFailure, type Principal } from './authenticate.js';
import type { ProxyConfig } from '../config/types.js';
import { StartupCode } from '../protocol/codes.js';
import { decodeStartup, ProtocolError, type StartupPacket } from '../protocol/decode.js';
import * as enc from '../protocol/encode.js';
import { closeAfter } from './final-error.js';
import { CONSOLE_DATABASE } from '../admin/console/database.js';
import { LoginReader } from './packets.js';
import { checkGuardedEncoding, sessionParamsFromStartup, StartupParamError } from './startup-params.js';
import { ACCEPT_SSL, type ClientTls, isLoopback, TlsHandshakeError } from './tls.js';
import { Lru } from '../util/lru.js';
import { PoolError } from '../backend/pool-types.js';

export interface LoginDeps {
  config: ProxyConfig;
  verify(token: string): Promise<VerifiedIdentity>;
  /** Server ParameterStatus values to show the client. */
  serverParams(): Promise<Map<string, string>>;
  /** ParameterStatus values for the admin console (database pgtenantproxy); absent: no console. */
  consoleParams?(user: string): Map<string, string>;
  /** Handles a CancelRequest (the connection carrying it is closed afterwards). */
  cancel(pid: number, secret: Buffer): void;
  /** Client TLS (listen.tls); null or absent: SSLRequest is declined. */
  tls?: ClientTls | null;
  /** Called as soon as the connection is wrapped in TLS: errors must be written to this socket from then on. */
  upgraded?(socket: net.Socket): void;
  /**
   * Admission refusals (too many clients, rate limited) decided by the listener. They are raised only once
   * the encryption request was answered and the startup packet read, as PostgreSQL does: libpq with
   * sslmode=prefer shows an error written before its SSLRequest is answered only as "error response during
   * SSL exchange"; and a CancelRequest is still served.
   */
  refusal?(): LoginError | null;
}

export interface LoginOk {
  /** The socket the session must use: the TLS socket when the client negotiated TLS, else the accepted one. */
  socket: net.Socket;
  user: string;
  database: string;
  principal: Principal;
  /** Session settings the client asked for at startup (lowercase names), applied to each transaction. */
  sessionParams: Map<string, string>;
  /** ParameterStatus values shown to the client. */
  shown: Map<string, string>;
  /** The server's reported value of a setting (lowercase name), if it reports it. */
  serverValue(name: string): string | undefined;
  /** Bytes the client sent after its password, already belonging to the session. */
  leftover: Buffer | null;
  /** Writes AuthenticationOk ... ReadyForQuery once the caller has issued a cancel key. */
  finish(pid: number, secret: Buffer): void;
}

/** A login refused with a SQLSTATE; `reason` is a fixed label for metrics and logs. */
export class LoginError extends Error {
  constructor(
    public readonly sqlstate: string,
    message: string,
    public readonly reason: string,
    public readonly hint?: string,
  ) {
    super(message);
    this.name = 'LoginError';
  }
}

/** Runs the login; resolves null for connections that were not logins (cancel, client went away). */
export async function login(socket: net.Socket, deps: LoginDeps): Promise<LoginOk | null> {
  const conn: Conn = { socket, reader: new LoginReader(socket), encrypted: false };
  try {
    const packet = await negotiateEncryption(conn, deps);
    return await runLogin(conn.socket, conn.reader, deps, packet, conn.encrypted);
  } catch (e) {
    conn.reader.detach();
    if (e instanceof ProtocolError) throw new LoginError('08P01', e.message, 'protocol_violation');
    if (e instanceof TlsHandshakeError) throw new LoginError('08P01', e.message, 'tls_handshake');
    throw e;
  }
}

/** Content type of a TLS handshake record: the first byte of a ClientHello. */
const TLS_HANDSHAKE = 0x16;

interface Conn {
  socket: net.Socket;
  reader: LoginReader;
  encrypted: boolean;
}

/**
 * Answers GSSENCRequest with 'N' and SSLRequest with 'S' (then upgrades `conn` to TLS) when listen.tls is
 * set, else 'N'; returns the first packet after them. A client that sent anything after its request before
 * the answer is refused: those bytes were not protected by the handshake that follows (CVE-2021-23214).
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
 */
async function negotiateEncryption(conn: Conn, deps: LoginDeps): Promise<StartupPacket> {
  // PostgreSQL 17's direct TLS (libpq sslnegotiation=direct): the first byte is a TLS handshake record
  // (0x16, never the start of a startup packet length), with ALPN "postgresql" and no SSLRequest.
  if (deps.tls && (await conn.reader.firstByte()) === TLS_HANDSHAKE) {
    const hello = conn.reader.detach();
    // Paused so the bytes stay buffered until the TLS layer takes them over (tls.TLSSocket reads a wrapped
    // socket's buffered bytes first); flowing, they would be emitted to no listener and lost.
    conn.socket.pause();
    if (hello) conn.socket.unshift(hello);
    const secure = await deps.tls.upgrade(conn.socket, true);
    conn.socket = secure;
    conn.reader = new LoginReader(secure);
    conn.encrypted = true;
    deps.upgraded?.(secure);
  }
  let packet = decodeStartup(await conn.reader.untyped());
  // A client may ask for GSS encryption, then TLS, before its startup packet.
  for (let i = 0; i < 2 && (packet.kind === 'ssl' || packet.kind === 'gssenc'); i++) {
    if (conn.reader.hasBuffered) throw new ProtocolError('client sent data after its encryption request before the answer');
    if (packet.kind === 'ssl' && conn.encrypted) throw new ProtocolError('repeated SSLRequest');
    if (packet.kind === 'gssenc' && conn.encrypted) throw new ProtocolError('GSSENCRequest inside a TLS connection');
    if (packet.kind === 'ssl' && deps.tls) {
      conn.reader.detach();
      conn.socket.write(ACCEPT_SSL);
      const secure = await deps.tls.upgrade(conn.socket);
      conn.socket = secure;
      conn.reader = new LoginReader(secure);
      conn.encrypted = true;
      deps.upgraded?.(secure);
    } else {
      conn.socket.write(enc.declineEncryption());
    }
    packet = decodeStartup(await conn.reader.untyped());
  }
  return packet;
}

async function runLogin(socket: net.Socket, reader: LoginReader, deps: LoginDeps, packet: StartupPacket, encrypted: boolean): Promise<LoginOk | null> {
  switch (packet.kind) {
    case 'cancel':
      reader.detach();
      deps.cancel(packet.pid, packet.secret);
      closeAfter(socket);
      return null;
    case 'ssl':
    case 'gssenc':
      throw new ProtocolError('repeated encryption request');
    case 'unsupported':
      throw new LoginError(
        '0A000',
        `unsupported frontend protocol ${packet.major}.${packet.minor}: server supports 3.0`,
        'protocol_violation',
      );
    case 'startup':
      break;
  }
  const refused = deps.refusal?.();
  if (refused) throw refused;
  const params = packet.params;
  const user = params.get('user');
  if (!user) throw new LoginError('28000', 'no PostgreSQL user name specified in startup packet', 'protocol_violation');
  const database = params.get('database') || user;
  const served = deps.config.backend.database;
  const toConsole = database === CONSOLE_DATABASE && deps.consoleParams !== undefined;
  if (database !== served && !toConsole) {
    throw new LoginError('3D000', `database "${database.slice(0, 64)}" does not exist`, 'unknown_database', `this proxy serves database "${served}"`);
  }
  let sessionParams: Map<string, string>;
  try {
    sessionParams = sessionParamsFromStartup(params);
  } catch (e) {
    if (e instanceof StartupParamError) throw new LoginError(e.sqlstate, e.message, 'bad_startup_parameter', e.hint);
    throw e;
  }
  // A newer 3.x minor (3.2: PostgreSQL 18's libpq with max_protocol_version) and protocol options we do not
  // know (_pq_.*) are declined the way PostgreSQL does: NegotiateProtocolVersion 3.0 with the options named,
  // and the login goes on in 3.0 (4-byte cancel keys). libpq 18 refuses a FATAL here as a server error.
  const pqOptions = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
  if (pqOptions.length > 0 || packet.minor > 0) socket.write(negotiateProtocolVersion(pqOptions));

  // A token is a cleartext password: unless listen.plaintext_tokens allows it, it is never asked for over a
  // connection that is not encrypted (static users answer SCRAM, which never sends the password).
  const policy = deps.config.listen.plaintext_tokens;
  const plaintextOk = policy === 'allow' || (policy === 'loopback' && isLoopback(socket.remoteAddress));
  if (!encrypted && !plaintextOk && !deps.config.users.some((u) => u.name === user)) {
    throw new LoginError(
      '28000',
      deps.tls
        ? "this proxy requires TLS for token logins: connect with sslmode=require (or sslmode=verify-full with the proxy's CA as sslrootcert)"
        : 'this proxy refuses tokens over unencrypted connections and has no TLS configured: configure listen.tls (clients then use sslmode=require), or set listen.plaintext_tokens',
      'tls_required',
    );
  }
  let principal: Principal;
  try {
    principal = await authenticate(socket, reader, user, deps);
  } catch (e) {
    if (e instanceof AuthFailure) throw new LoginError(e.sqlstate, e.message, e.reason);
    throw e;
  }
  if (toConsole && !principal.staticUser?.admin) {
    throw new LoginError(
      '28000',
      `the admin console (database "${CONSOLE_DATABASE}") admits only static users with admin: true; "${user.slice(0, 64)}" is not one`,
      'console_refused',
    );
  }
  let server: Map<string, string>;
  try {
    server = toConsole ? deps.consoleParams!(user) : await deps.serverParams();
  } catch (e) {
    // The pool words its failures itself (unreachable, refused, or no backend free in time) with their SQLSTATE.
    if (e instanceof PoolError) throw new LoginError(e.sqlstate, e.message, 'backend_unavailable');
    throw new LoginError('08006', `cannot reach the database: ${(e as Error).message}`, 'backend_unavailable');
  }
  if (principal.tenant !== null && deps.config.tenant.guard) {
    try {
      checkGuardedEncoding(sessionParams, server);
    } catch (e) {
      if (e instanceof StartupParamError) throw new LoginError(e.sqlstate, e.message, 'bad_startup_parameter', e.hint);
      throw e;
    }
  }
  // Reported names are mixed case (DateStyle, TimeZone); startup names are matched case-insensitively.
  const reportedName = reportedNames(server);
  const shown = new Map(server);
  for (const [name, value] of sessionParams) {
    const reported = reportedName.get(name);
    if (reported !== undefined) shown.set(reported, value);
  }
  const serverValue = (name: string): string | undefined => {
    const reported = reportedName.get(name);
    return reported === undefined ? undefined : server.get(reported);
  };
  const leftover = reader.detach();
  return {
    socket,
    user,
    database,
    principal,
    sessionParams,
    shown,
    serverValue,
    leftover,
    finish(pid: number, secret: Buffer) {
      socket.write(Buffer.concat([loginReply(server, sessionParams, shown), enc.backendKeyData(pid, secret.readInt32BE(0)), READY_IDLE]));
    },
  };
}

/** Lowercase → reported name, per map of server parameters (the pool's, replaced only by a new handshake). */
const REPORTED_NAMES = new WeakMap<Map<string, string>, Map<string, string>>();
function reportedNames(server: Map<string, string>): Map<string, string> {
  let m = REPORTED_NAMES.get(server);
  if (!m) {
    m = new Map([...server.keys()].map((k) => [k.toLowerCase(), k]));
    REPORTED_NAMES.set(server, m);
  }
  return m;
}

/**
 * AuthenticationOk and the ParameterStatus messages of a login. What the client is shown follows from the
 * server's parameters and the client's startup settings, so the bytes are encoded once per pair (bounded:
 * at most 1,000 sets of startup settings per map of server parameters).
 */
const LOGIN_REPLIES = new WeakMap<Map<string, string>, Lru<string, Buffer>>();
const READY_IDLE = enc.readyForQuery('I');
function loginReply(server: Map<string, string>, sessionParams: Map<string, string>, shown: Map<string, string>): Buffer {
  let replies = LOGIN_REPLIES.get(server);
  if (!replies) LOGIN_REPLIES.set(server, (replies = new Lru(1_000)));
  return replies.getOrSet(JSON.stringify([...sessionParams]), () => {
    const out: Buffer[] = [enc.authenticationOk()];
    for (const [name, value] of shown) out.push(enc.parameterStatus(name, value));
    return Buffer.concat(out);
  });
}

/**
 * NegotiateProtocolVersion: the newest version supported (3.0, written as the full version code the way the
 * server writes PG_PROTOCOL_LATEST: libpq 18 reads a bare 0 as a downgrade to protocol 0.0 and gives up),
 * and the protocol options not recognised.
 */
function negotiateProtocolVersion(options: string[]): Buffer {
  const names = Buffer.concat(options.map((o) => Buffer.from(o + '\0', 'utf8')));
  const body = Buffer.alloc(8);
  body.writeInt32BE(StartupCode.Protocol3, 0);
  body.writeInt32BE(options.length, 4);
  const payload = Buffer.concat([body, names]);
  const head = Buffer.alloc(5);
  head[0] = 0x76; // 'v'
  head.writeUInt32BE(4 + payload.length, 1);
  return Buffer.concat([head, payload]);
}
