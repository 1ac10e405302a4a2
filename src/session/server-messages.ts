// Small readers and rewriters for the client and server messages the bridge looks into: statement names of
// Parse/Bind/Describe/Close, and errors that need a transaction-pooling explanation.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
import { Frontend } from '../protocol/codes.js';
import { decodeErrorFields, readCString } from '../protocol/decode.js';
import { errorResponse, errorResponseFromFields } from '../protocol/encode.js';

export type StatementRef =
  | { kind: 'parse'; name: string }
  | { kind: 'use'; name: string }
  | { kind: 'close'; name: string }
  | null;

/** Which prepared statement a Parse, Bind, Describe or Close refers to (portals are not statements). */
export function statementName(type: number, body: Buffer): StatementRef {
  switch (type) {
    case Frontend.Parse:
      return { kind: 'parse', name: readCString(body, 0)[0] };
    case Frontend.Bind: {
      const [, afterPortal] = readCString(body, 0);
      return { kind: 'use', name: readCString(body, afterPortal)[0] };
    }
    case Frontend.Describe:
      return body[0] === 0x53 ? { kind: 'use', name: readCString(body, 1)[0] } : null; // 'S'
    case Frontend.Close:
      return body[0] === 0x53 ? { kind: 'close', name: readCString(body, 1)[0] } : null;
    default:
      return null;
  }
}

const DEALLOCATE_SQL = /^\s*deallocate\s+(?:prepare\s+)?(?:(all)|"((?:[^"]|"")+)"|([a-z_\u0080-\uffff][a-z0-9_$\u0080-\uffff]*))\s*;?\s*$/i;

/**
 * Where the first word of a Query text starting at `from` begins, if it can be DEALLOCATE ('d' or 'D' after
 * whitespace); -1 otherwise. Read in place: every transaction start asks it, and nearly all say no.
 */
export function firstWordAt(buf: Buffer, from: number): number {
  let i = from;
  while (i < buf.length && (buf[i] === 0x20 || (buf[i] >= 0x09 && buf[i] <= 0x0d))) i++;
  return i < buf.length && (buf[i] | 0x20) === 0x64 ? i : -1;
}

/**
 * A simple Query body that is exactly one SQL `DEALLOCATE [PREPARE] name | ALL` (what psycopg 3, PHP PDO
 * and Rails send to evict a protocol-level prepared statement): the statement name as the server folds it,
 * null for ALL, undefined for any other text.
 */
export function deallocateTarget(body: Buffer): string | null | undefined {
  const i = firstWordAt(body, 0);
  if (i < 0) return undefined;
  const end = body[body.length - 1] === 0 ? body.length - 1 : body.length;
  const m = DEALLOCATE_SQL.exec(body.toString('utf8', i, end));
  if (!m) return undefined;
  if (m[1] !== undefined) return null;
  // Unquoted names are folded to lower case (ASCII only, as the server does); quoted ones are kept.
  return m[2] !== undefined ? m[2].replace(/""/g, '"') : m[3].replace(/[A-Z]+/g, (c) => c.toLowerCase());
}

const POOLING_HINT =
  'pg-tenant-proxy pools connections per transaction: a statement made with SQL PREPARE lasts until the ' +
  'transaction ends. Protocol-level prepared statements (what drivers use) are kept across transactions, ' +
  'up to pool.max_prepared_statements per client; or use pool.mode: session.';

/** "prepared statement … does not exist" (26000) gets a hint that explains transaction pooling. */
export function statementErrorHint(body: Buffer): Buffer | null {
  const fields = decodeErrorFields(body);
  if (fields.C !== '26000' || !/prepared statement/.test(fields.M ?? '')) return null;
  fields.H = fields.H ? `${fields.H} ${POOLING_HINT}` : POOLING_HINT;
  return errorResponseFromFields(fields);
}

const LISTEN_TAG = Buffer.from('LISTEN\0');
/** Length field of a CommandComplete carrying the LISTEN tag: only such a frame needs reading. */
export const LISTEN_COMPLETE_LENGTH = 4 + LISTEN_TAG.length;

/** In transaction pooling a LISTEN ends with the transaction; the client gets an error instead of silence. */
export function listenRefusal(commandTag: Buffer): Buffer | null {
  if (!commandTag.equals(LISTEN_TAG)) return null;
  return errorResponse({
    code: '0A000',
    message: 'LISTEN does not work in transaction pooling mode: the subscription ends with the transaction, before any notification arrives',
    hint: 'Connect LISTEN clients through a proxy configured with pool.mode: session, or directly to PostgreSQL.',
  });
}
