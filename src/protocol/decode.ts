// Decoders for the few messages the proxy must read: the untyped startup packet, PasswordMessage,
// ErrorResponse/NoticeResponse fields, ParameterStatus and BackendKeyData.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
import { StartupCode } from './codes.js';

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Reads a NUL-terminated string starting at `pos`; returns the string and the position after the NUL. */
export function readCString(buf: Buffer, pos: number): [string, number] {
  const end = buf.indexOf(0, pos);
  if (end < 0) throw new ProtocolError('string is not NUL-terminated');
  return [buf.toString('utf8', pos, end), end + 1];
}

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: Buffer }
  /** `minor`: the 3.x minor version asked for; above 0 it is negotiated down (NegotiateProtocolVersion). */
  | { kind: 'startup'; params: Map<string, string>; minor: number }
  | { kind: 'unsupported'; major: number; minor: number };

/** Decodes a startup packet body (everything after the int32 length). */
export function decodeStartup(body: Buffer): StartupPacket {
  if (body.length < 4) throw new ProtocolError('startup packet too short');
  const code = body.readUInt32BE(0);
  switch (code) {
    case StartupCode.SSLRequest:
      return { kind: 'ssl' };
    case StartupCode.GSSENCRequest:
      return { kind: 'gssenc' };
    case StartupCode.CancelRequest:
      if (body.length !== 12) throw new ProtocolError('CancelRequest has the wrong length');
      return { kind: 'cancel', pid: body.readUInt32BE(4), secret: body.subarray(8, 12) };
    default:
      // Any 3.x: a newer minor (3.2, PostgreSQL 18's libpq) is answered with NegotiateProtocolVersion, as the
      // server does. Other majors (and the reserved 1234.x codes not handled above) are refused.
      if (code >>> 16 !== StartupCode.Protocol3 >>> 16) return { kind: 'unsupported', major: code >>> 16, minor: code & 0xffff };
  }
  const params = new Map<string, string>();
  let pos = 4;
  for (;;) {
    if (pos >= body.length) throw new ProtocolError('startup packet is not terminated');
    if (body[pos] === 0) {
      if (pos !== body.length - 1) throw new ProtocolError('startup packet has bytes after its terminator');
      break;
    }
    const [name, p1] = readCString(body, pos);
    if (p1 >= body.length) throw new ProtocolError(`startup parameter "${name.slice(0, 64)}" has no value`);
    const [value, p2] = readCString(body, p1);
    if (params.has(name)) throw new ProtocolError(`startup parameter "${name.slice(0, 64)}" is given twice`);
    params.set(name, value);
    pos = p2;
  }
  return { kind: 'startup', params, minor: code & 0xffff };
}

/** PasswordMessage body: one NUL-terminated string. */
export function decodePassword(body: Buffer): string {
  const [value, end] = readCString(body, 0);
  if (end !== body.length) throw new ProtocolError('password message has bytes after its terminator');
  return value;
}

/** ErrorResponse / NoticeResponse body → field map keyed by the one-letter field code. */
export function decodeErrorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const code = String.fromCharCode(body[pos]);
    const [value, next] = readCString(body, pos + 1);
    out[code] = value;
    pos = next;
  }
  return out;
}

export function decodeParameterStatus(body: Buffer): [string, string] {
  const [name, p1] = readCString(body, 0);
  const [value] = readCString(body, p1);
  return [name, value];
}

/** SASLInitialResponse body: mechanism name, then int32 length (-1: none) and the initial data. */
export function decodeSASLInitial(body: Buffer): { mechanism: string; data: string } {
  const [mechanism, pos] = readCString(body, 0);
  if (pos + 4 > body.length) throw new ProtocolError('SASLInitialResponse is too short');
  const len = body.readInt32BE(pos);
  if (len === -1) return { mechanism, data: '' };
  if (len < 0 || pos + 4 + len !== body.length) throw new ProtocolError('SASLInitialResponse has a wrong length');
  return { mechanism, data: body.toString('utf8', pos + 4) };
}
