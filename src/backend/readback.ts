// The read-back check: at the end of a client's hold, before DISCARD ALL and in the same round trip,
// read the tenant setting, search_path and current_user back from the server. If they are not what the
// proxy set (e.g. a function called set_config behind the guard's back), that is a security event.
import { serialize } from 'pg-protocol';

/** What the proxy set for the client that just released this backend, and who to tell if it changed. */
export interface Readback {
  setting: string;
  tenant: string;
  /** null: the proxy does not set search_path (no template). */
  searchPath: string | null;
  user: string;
  tampered(actual: { tenant: string | null; searchPath: string | null; user: string | null }): void;
  /** The read-back itself failed (the context could not be verified). */
  failed(reason: string): void;
}

/** The read-back statement; the setting name was validated at load as a two-part identifier. */
export function readbackSql(setting: string): string {
  return `SELECT pg_catalog.current_setting('${setting}', true), pg_catalog.current_setting('search_path'), current_user`;
}

/** The read-back Query message, serialised once per setting name (one per configuration, in practice). */
const queries = new Map<string, Buffer>();
export function readbackQuery(rb: Readback): Buffer {
  let q = queries.get(rb.setting);
  if (!q) {
    q = serialize.query(readbackSql(rb.setting));
    if (queries.size >= 16) queries.clear(); // settings come from configuration: a handful at most, bounded anyway
    queries.set(rb.setting, q);
  }
  return q;
}


/** Text fields of a DataRow body (NULL → null). */
export function dataRowFields(body: Buffer): Array<string | null> {
  const n = body.readInt16BE(0);
  const out: Array<string | null> = [];
  let pos = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(pos);
    pos += 4;
    if (len < 0) {
      out.push(null);
    } else {
      out.push(body.toString('utf8', pos, pos + len));
      pos += len;
    }
  }
  return out;
}

/** The DataRow body an intact read-back returns, per client; null when search_path is not checked. */
const expectedRows = new WeakMap<Readback, Buffer | null>();
function expectedRow(rb: Readback): Buffer | null {
  let row = expectedRows.get(rb);
  if (row === undefined) {
    row = rb.searchPath === null ? null : dataRowBody([rb.tenant, rb.searchPath, rb.user]);
    expectedRows.set(rb, row);
  }
  return row;
}

function dataRowBody(fields: string[]): Buffer {
  const parts = fields.map((f) => Buffer.from(f, 'utf8'));
  const out = Buffer.allocUnsafe(2 + parts.reduce((n, p) => n + 4 + p.length, 0));
  out.writeInt16BE(fields.length, 0);
  let pos = 2;
  for (const p of parts) {
    out.writeInt32BE(p.length, pos);
    p.copy(out, pos + 4);
    pos += 4 + p.length;
  }
  return out;
}

/**
 * Checks a read-back DataRow body. An intact one is recognised by one byte comparison with the row it must
 * be; anything else is decoded and compared field by field (calling `tampered` on a difference).
 */
export function readbackIntact(rb: Readback, body: Buffer): boolean {
  const expected = expectedRow(rb);
  if (expected !== null && body.equals(expected)) return true;
  return checkReadback(rb, dataRowFields(body));
}

/** Compares a read-back row with what was set; calls `tampered` on any difference. Returns true if intact. */
export function checkReadback(rb: Readback, row: Array<string | null>): boolean {
  const [tenant, searchPath, user] = row;
  const intact = tenant === rb.tenant && (rb.searchPath === null || searchPath === rb.searchPath) && user === rb.user;
  if (!intact) rb.tampered({ tenant: tenant ?? null, searchPath: searchPath ?? null, user: user ?? null });
  return intact;
}
