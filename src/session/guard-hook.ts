// Applies the statement guard to a tenant's Query and Parse messages, and refuses the messages it cannot
// read: FunctionCall (a function called by OID, e.g. set_config) and a Query or Parse too large to read.
// A refused message is not dropped but replaced by a marker statement that fails to parse, so the server
// raises the error at exactly the right place in the response stream and skips the rest of the pipeline
// (or of a multi-statement string) as it would for any error; the proxy then rewrites that error into the
// guard's refusal (42501 naming the rule, or the rule's own SQLSTATE). A FunctionCall is replaced by a
// simple Query: both are sync points answered ErrorResponse + ReadyForQuery, so sync accounting holds.
// References: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
//             https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-FUNCTION-CALL
import { randomBytes } from 'node:crypto';
import { serialize } from 'pg-protocol';
import type { GuardVerdict, StatementGuard } from '../guard/statement-guard.js';
import { Frontend } from '../protocol/codes.js';
import { decodeErrorFields, readCString } from '../protocol/decode.js';
import { errorResponseFromFields } from '../protocol/encode.js';

/** Per-process token in marker statements, so a client cannot forge a marker of its own. */
const NONCE = randomBytes(6).toString('hex');
const MARKER = new RegExp(`pgtp_blocked_${NONCE}_(\\d+)`);
/** Blocked verdicts waiting for their error to come back, per session; bounded. */
const MAX_PENDING = 256;
/** Largest simple Query body the guard reads; a larger one is refused whole. */
export const MAX_GUARDED_QUERY = (1 << 20) + 1;
/** Largest Parse body the guard reads (64 MB, the bridge's inspection limit); a larger one is refused whole. */
export const MAX_GUARDED_PARSE = 64 << 20;
/** Rules that protect the context settings themselves: their refusal carries the hint about the context. */
const CONTEXT_RULES = new Set(['set_protected', 'set_config', 'reset_all', 'discard', 'pg_settings_write', 'role_db_set']);

/** Rules whose refusal a Query that is only a session reset (guard/session-reset.ts) may be let past. */
const RESET_RULES = new Set(['reset_all', 'discard']);

/** A simple Query that is only the client's own session reset, let through: the hold must end at its ReadyForQuery. */
export interface SessionResetQuery {
  reset: true;
  /** It deallocates the client's prepared statements (DISCARD ALL, DEALLOCATE ALL). */
  dropsStatements: boolean;
}

/** What to do with a guarded tenant's message, from its header alone. */
export type Screen = 'pass' | 'inspect' | 'refuse';

export type Blocked = Extract<GuardVerdict, { allowed: false }>;

export class GuardHook {
  private readonly pending = new Map<number, Blocked>();
  private nextId = 1;

  constructor(
    private readonly guard: StatementGuard,
    private readonly onBlocked: (v: Blocked, sql: string) => void,
    /** Function OIDs a FunctionCall may call (tenant.function_call_allow); all others are refused. */
    private readonly functionCallAllow: ReadonlySet<number> = new Set(),
  ) {}

  /**
   * A simple Query body: null if allowed, else the replacement Query frame. With `resetAllowed` (transaction
   * mode, the first message of a hold), a Query that is nothing but a session reset is let through as one
   * (see guard/session-reset.ts); the caller ends the hold at its ReadyForQuery.
   */
  query(body: Buffer, resetAllowed = false): Buffer | SessionResetQuery | null {
    const sql = body.toString('utf8', 0, Math.max(0, body.length - 1));
    const v = this.guard.check(sql);
    if (v.allowed) return null;
    if (resetAllowed && RESET_RULES.has(v.rule)) {
      const r = this.guard.sessionReset(sql);
      if (r) return { reset: true, dropsStatements: r.dropsStatements };
    }
    return serialize.query(this.block(v, sql));
  }

  /** Query, Parse and FunctionCall from their header: read by the guard, or refused whole. Others pass. */
  screen(type: number, length: number): Screen {
    const body = length - 4;
    if (type === Frontend.Query) return body <= MAX_GUARDED_QUERY ? 'inspect' : 'refuse';
    if (type === Frontend.Parse) return body <= MAX_GUARDED_PARSE ? 'inspect' : 'refuse';
    // Read only to check its OID against the allowlist; without one it is refused unread.
    if (type === Frontend.FunctionCall) return this.functionCallAllow.size > 0 && body <= MAX_GUARDED_PARSE ? 'inspect' : 'refuse';
    return 'pass';
  }

  /**
   * The message to send in place of one refused whole by screen(): a simple Query for a Query or a
   * FunctionCall (the caller accounts for the unnamed statement a Query drops), an unnamed Parse for a Parse.
   */
  substitute(type: number, length: number): Buffer {
    if (type === Frontend.FunctionCall) {
      return serialize.query(
        this.block(
          {
            allowed: false,
            rule: 'function_call',
            message:
              'the FunctionCall protocol message (fast-path call by function OID, as in libpq PQfn and its lo_* large-object calls) is not accepted for tenants, except for the OIDs in tenant.function_call_allow: the guard cannot see which function it calls. Call the function with SQL instead (SELECT f(...))',
          },
          '',
        ),
      );
    }
    const marker = this.block({ allowed: false, rule: 'statement_too_large', message: `a ${length}-byte ${type === Frontend.Parse ? 'Parse' : 'Query'} message is larger than the statement guard reads; send smaller statements (bind large values as parameters)` }, '');
    return type === Frontend.Parse ? serialize.parse({ name: '', text: marker }) : serialize.query(marker);
  }

  /** A FunctionCall body (read because an allowlist is configured): null if its OID is allowed, else its substitute (see substitute()). */
  functionCall(body: Buffer): Buffer | null {
    if (body.length >= 4 && this.functionCallAllow.has(body.readUInt32BE(0))) return null;
    return this.substitute(Frontend.FunctionCall, body.length + 4);
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
      C: v?.sqlstate ?? '42501',
      M: v ? `statement blocked by pg-tenant-proxy (rule ${v.rule}): ${v.message}` : 'statement blocked by pg-tenant-proxy',
      ...(v && !CONTEXT_RULES.has(v.rule)
        ? {}
        : { H: 'The tenant context (tenant setting, search_path, role) is set by the proxy for every transaction and cannot be changed by the client.' }),
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
