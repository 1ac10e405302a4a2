// Encoders for the server-side messages the proxy itself sends to clients (pg-protocol only serializes
// frontend messages). Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
import { Auth, Backend, TxStatus } from './codes.js';

/** A whole message: type byte, int32 length, body. */
export function frame(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeUInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstrings(...parts: string[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p + '\0', 'utf8')));
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
}

/** AuthenticationOk / AuthenticationCleartextPassword. */
export const authenticationOk = (): Buffer => frame(Backend.Authentication, int32(Auth.Ok));
export const authenticationCleartext = (): Buffer => frame(Backend.Authentication, int32(Auth.CleartextPassword));

/** AuthenticationSASL with the offered mechanisms, then SASLContinue / SASLFinal carrying SCRAM data. */
export const authenticationSASL = (mechanisms: string[]): Buffer =>
  frame(Backend.Authentication, Buffer.concat([int32(Auth.SASL), cstrings(...mechanisms), Buffer.from([0])]));
export const authenticationSASLContinue = (data: string): Buffer =>
  frame(Backend.Authentication, Buffer.concat([int32(Auth.SASLContinue), Buffer.from(data, 'utf8')]));
export const authenticationSASLFinal = (data: string): Buffer =>
  frame(Backend.Authentication, Buffer.concat([int32(Auth.SASLFinal), Buffer.from(data, 'utf8')]));

export const parameterStatus = (name: string, value: string): Buffer => frame(Backend.ParameterStatus, cstrings(name, value));

export const backendKeyData = (pid: number, secret: number): Buffer =>
  frame(Backend.BackendKeyData, Buffer.concat([int32(pid), int32(secret)]));

const RFQ = {
  I: frame(Backend.ReadyForQuery, Buffer.from([TxStatus.Idle])),
  T: frame(Backend.ReadyForQuery, Buffer.from([TxStatus.InTransaction])),
  E: frame(Backend.ReadyForQuery, Buffer.from([TxStatus.Failed])),
};
export const commandComplete = (tag: string): Buffer => frame(Backend.CommandComplete, cstrings(tag));
export const readyForQuery = (status: 'I' | 'T' | 'E' = 'I'): Buffer => RFQ[status];

export type Severity = 'ERROR' | 'FATAL' | 'WARNING' | 'NOTICE' | 'LOG';

export interface ErrorFields {
  severity?: Severity;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/**
 * ErrorResponse ('E') or NoticeResponse ('N'). Field codes:
 * https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
function errorLike(type: number, f: ErrorFields, defaultSeverity: Severity): Buffer {
  const sev = f.severity ?? defaultSeverity;
  const fields: Buffer[] = [
    Buffer.from('S' + sev + '\0'),
    Buffer.from('V' + sev + '\0'),
    Buffer.from('C' + f.code + '\0'),
    Buffer.from('M' + f.message + '\0', 'utf8'),
  ];
  if (f.detail) fields.push(Buffer.from('D' + f.detail + '\0', 'utf8'));
  if (f.hint) fields.push(Buffer.from('H' + f.hint + '\0', 'utf8'));
  fields.push(Buffer.from([0]));
  return frame(type, Buffer.concat(fields));
}

export const errorResponse = (f: ErrorFields): Buffer => errorLike(Backend.ErrorResponse, f, 'ERROR');

/** Re-encodes a server's ErrorResponse from its decoded fields (all of them, in the given order). */
export function errorResponseFromFields(fields: Record<string, string>): Buffer {
  const parts = Object.entries(fields).map(([code, value]) => Buffer.from(code + value + '\0', 'utf8'));
  parts.push(Buffer.from([0]));
  return frame(Backend.ErrorResponse, Buffer.concat(parts));
}
export const noticeResponse = (f: ErrorFields): Buffer => errorLike(Backend.NoticeResponse, f, 'NOTICE');

/** The single 'N' byte that declines SSLRequest / GSSENCRequest. */
export const declineEncryption = (): Buffer => Buffer.from('N');
