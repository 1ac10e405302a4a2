// Applies the statement guard to a tenant's Query and Parse messages. A blocked statement is not dropped
// but replaced by a marker statement that fails to parse, so the server raises the error at exactly the
// right place in the response stream and skips the rest of the pipeline (or of a multi-statement string)
// as it would for any error; the proxy then rewrites that error into 42501 naming the rule.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
import { randomBytes } from 'node:crypto';
import { serialize } from 'pg-protocol';
import type { GuardVerdict, StatementGuard } from '../guard/statement-guard.js';
import { decodeErrorFields, readCString } from '../protocol/decode.js';
import { errorResponseFromFields } from '../protocol/encode.js';

/** Per-process token in marker statements, so a client cannot forge a marker of its own. */
const NONCE = randomBytes(6).toString('hex');
const MARKER = new RegExp(`pgtp_blocked_${NONCE}_(\\d+)`);
/** Blocked verdicts waiting for their error to come back, per session; bounded. */
const MAX_PENDING = 256;

export type Blocked = Extract<GuardVerdict, { allowed: false }>;

export class GuardHook {
  private readonly pending = new Map<number, Blocked>();
  private nextId = 1;

  constructor(
    private readonly guard: StatementGuard,
    private readonly onBlocked: (v: Blocked, sql: string) => void,
  ) {}

  /** A simple Query body: null if allowed, else the replacement Query frame. */
  query(body: Buffer): Buffer | null {
    const sql = body.toString('utf8', 0, Math.max(0, body.length - 1));
    const marker = this.verdict(sql);
    return marker === null ? null : serialize.query(marker);
  }

  /** A Query too large to read: refused whole (the guard's parser memory stays bounded). */
  oversizedQuery(length: number): Buffer {
    return serialize.query(this.block({ allowed: false, rule: 'statement_too_large', message: `a ${length}-byte statement is larger than the statement guard reads` }, ''));
  }

  /** A Parse body: null if allowed, else the replacement Parse body's frame (same statement name). */
  parse(body: Buffer): Buffer | null {
    const [name, pos] = readCString(body, 0);
    const [sql] = readCString(body, pos);
    const marker = this.verdict(sql);
    return marker === null ? null : serialize.parse({ name, text: marker });
  }

  /** The server's error for a marker statement, rewritten as the guard's refusal; null for other errors. */
  rewrite(errorBody: Buffer): Buffer | null {
    const fields = decodeErrorFields(errorBody);
    const m = MARKER.exec(fields.M ?? '');
    if (!m) return null;
    const v = this.pending.get(Number(m[1]));
    this.pending.delete(Number(m[1]));
    return errorResponseFromFields({
      S: 'ERROR',
      V: 'ERROR',
      C: '42501',
      M: v ? `statement blocked by pg-tenant-proxy (rule ${v.rule}): ${v.message}` : 'statement blocked by pg-tenant-proxy',
      H: 'The tenant context (tenant setting, search_path, role) is set by the proxy for every transaction and cannot be changed by the client.',
    });
  }

  private verdict(sql: string): string | null {
    const v = this.guard.check(sql);
    return v.allowed ? null : this.block(v, sql);
  }

  private block(v: Blocked, sql: string): string {
    this.onBlocked(v, sql);
    const id = this.nextId++;
    this.pending.set(id, v);
    if (this.pending.size > MAX_PENDING) this.pending.delete(this.pending.keys().next().value as number);
    return `pgtp_blocked_${NONCE}_${id}`;
  }
}
