// Authenticates a client after its startup packet: a static user answers SCRAM-SHA-256 against its stored
// verifier; anyone else sends a JWT as a cleartext password. Either way the result is a principal: who
// the client is, which tenant it acts as (or none), and until when.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
import type { Duplex } from 'node:stream';
import { AuthError, type VerifiedIdentity } from '../auth/jwt.js';
import { SCRAM_MECHANISM, ScramError, ScramExchange } from '../auth/scram.js';
import type { ProxyConfig, StaticUser } from '../config/types.js';
import { Frontend } from '../protocol/codes.js';
import { decodePassword, decodeSASLInitial } from '../protocol/decode.js';
import * as enc from '../protocol/encode.js';
import type { LoginReader } from './packets.js';

export interface Principal {
  user: string;
  /** The tenant whose context every transaction gets, or null for a trusted static user (tenant: none). */
  tenant: string | null;
  /** No transaction may start at or after this instant (epoch ms); Infinity for static users. */
  expiresAtMs: number;
  /** Backend role to switch to in each transaction (token role claim, checked against the allowlist). */
  role?: string;
  /** Set for static users: their pool cap applies. */
  staticUser?: StaticUser;
}

export interface AuthDeps {
  config: ProxyConfig;
  verify(token: string): Promise<VerifiedIdentity>;
}

/** A refused authentication, with the SQLSTATE drivers expect and a fixed reason label. */
export class AuthFailure extends Error {
  constructor(
    public readonly sqlstate: string,
    message: string,
    public readonly reason: string,
  ) {
    super(message);
    this.name = 'AuthFailure';
  }
}

/** SCRAM messages are small; anything larger is not a SCRAM message. */
const MAX_SASL_MESSAGE = 4096;

export async function authenticate(socket: Duplex, reader: LoginReader, user: string, deps: AuthDeps): Promise<Principal> {
  const staticUser = deps.config.users.find((u) => u.name === user);
  return staticUser ? scramLogin(socket, reader, staticUser) : tokenLogin(socket, reader, user, deps);
}

async function tokenLogin(socket: Duplex, reader: LoginReader, user: string, deps: AuthDeps): Promise<Principal> {
  const jwt = deps.config.auth.jwt;
  socket.write(enc.authenticationCleartext());
  const msg = await reader.typed(jwt.max_token_bytes + 1);
  expectPassword(msg.type);
  const token = decodePassword(msg.body);
  if (token.length === 0) throw new AuthFailure('28P01', 'empty password: send a JWT as the password', 'empty_password');
  try {
    const id = await deps.verify(token);
    const role = id.role;
    return { user, tenant: id.tenant, expiresAtMs: (id.expiresAt + jwt.clock_tolerance_s) * 1000, ...(role ? { role } : {}) };
  } catch (e) {
    if (e instanceof AuthError) throw new AuthFailure(e.sqlstate, e.message, e.reason);
    throw e;
  }
}

async function scramLogin(socket: Duplex, reader: LoginReader, u: StaticUser): Promise<Principal> {
  const refused = (): AuthFailure => new AuthFailure('28P01', `password authentication failed for user "${u.name}"`, 'bad_password');
  socket.write(enc.authenticationSASL([SCRAM_MECHANISM]));
  const first = await reader.typed(MAX_SASL_MESSAGE);
  expectPassword(first.type);
  const initial = decodeSASLInitial(first.body);
  if (initial.mechanism !== SCRAM_MECHANISM) {
    throw new AuthFailure('28000', `SASL mechanism "${initial.mechanism.slice(0, 32)}" is not offered; use ${SCRAM_MECHANISM}`, 'protocol_violation');
  }
  const exchange = new ScramExchange(u.verifier);
  try {
    socket.write(enc.authenticationSASLContinue(exchange.start(initial.data)));
    const final = await reader.typed(MAX_SASL_MESSAGE);
    expectPassword(final.type);
    socket.write(enc.authenticationSASLFinal(exchange.finish(final.body.toString('utf8'))));
  } catch (e) {
    if (e instanceof ScramError) throw refused();
    throw e;
  }
  return { user: u.name, tenant: u.tenant, expiresAtMs: Infinity, staticUser: u };
}

function expectPassword(type: number): void {
  if (type !== Frontend.Password) {
    throw new AuthFailure('08P01', `expected an authentication response, got message type "${String.fromCharCode(type)}"`, 'protocol_violation');
  }
}
