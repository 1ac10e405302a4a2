// The statement guard: decides with the real PostgreSQL parser (libpg-query, PG 18 grammar) whether a
// tenant's statement could change, reset or escape the tenant context. It fails closed: a statement it
// cannot parse, a tree too deep or too large, or any exception is a refusal. A conservative text pre-check
// lets ordinary statements through without a parse; verdicts are cached by text, and allowed verdicts
// that no literal decided are also cached by statement shape (literals normalised, see shape.ts), so
// DML with fresh literals does not pay a parse each time. Statement size is bounded because the parser's
// WASM memory never shrinks.
import { loadModule, parseSync } from 'libpg-query';
import { ALLOWED, type GuardVerdict, judge, type Refusal, type RuleOptions } from './rules.js';
import { MAX_NESTING_SCORE, nestingScore } from './nesting.js';
import { statementShape } from './shape.js';
import { dropsPreparedStatements, isSessionReset } from './session-reset.js';

export type { GuardVerdict } from './rules.js';

export interface GuardOptions {
  tenantSetting: string;
  /** Settings a tenant may not SET, RESET or set_config (lowercase). */
  protectedSettings?: string[];
  /** Longer statements are refused (rule statement_too_large). */
  maxStatementBytes?: number;
  /** Verdicts cached (LRU) by text and, separately, by shape, for statements up to 4 KiB. */
  cacheEntries?: number;
  /** Rule ids not enforced. */
  allowRules?: string[];
  /** The pool mode: in transaction mode LISTEN is refused before it runs. Default transaction. */
  poolMode?: 'transaction' | 'session';
}

const CACHEABLE_BYTES = 4096;

/**
 * Pre-check: could this text touch the context at all? Every statement the guard blocks must contain one
 * of these as written. Keywords cannot be split by comments (a comment separates tokens), quoted
 * identifiers keep their letters ("set_config"), and the only other way to spell an identifier is a
 * Unicode escape, caught by `u&`. Whole words where a substring would match ordinary text too often.
 * Function and relation names the rules refuse anywhere are matched as substrings (they may be quoted
 * or qualified).
 */
const NEEDS_PARSE_BASE = 'set|reset|discard|do|load|prepare|function|procedure|role|user|grant|database';
const NEEDS_PARSE_NAMES = 'set_config|search_path|authorization|pg_settings|query_to_xml|cursor_to_xml|ts_stat|ts_rewrite|crosstab|connectby|u&';
const NEEDS_PARSE = new RegExp(`\\b(?:${NEEDS_PARSE_BASE})\\b|${NEEDS_PARSE_NAMES}`, 'i');
/** In transaction mode LISTEN must be parsed too (it is refused there). */
const NEEDS_PARSE_TX = new RegExp(`\\b(?:${NEEDS_PARSE_BASE}|listen)\\b|${NEEDS_PARSE_NAMES}`, 'i');

/**
 * CREATE/ALTER/DROP GROUP is role DDL (rule role_ddl) with none of the words above. `group` alone would send
 * every GROUP BY to the parser, so it needs one of create/alter/drop as well (two linear scans).
 */
const GROUP_WORD = /\bgroup\b/i;
const DDL_WORD = /\b(?:create|alter|drop)\b/i;
const groupDdl = (sql: string): boolean => GROUP_WORD.test(sql) && DDL_WORD.test(sql);

/** The pre-check for a pool mode (transaction by default). */
export function needsParse(sql: string, poolMode: 'transaction' | 'session' = 'transaction'): boolean {
  return (poolMode === 'transaction' ? NEEDS_PARSE_TX : NEEDS_PARSE).test(sql) || groupDdl(sql);
}

export class StatementGuard {
  private readonly rules: RuleOptions;
  private readonly precheck: RegExp;
  private readonly maxBytes: number;
  private readonly cacheEntries: number;
  private readonly cache = new Map<string, GuardVerdict>();
  /** Shapes whose statements were allowed with no rule reading a literal. */
  private readonly shapes = new Map<string, true>();
  /** sessionReset() answers by text, bounded. */
  private readonly resets = new Map<string, { dropsStatements: boolean } | null>();
  readonly stats = { prechecked: 0, parsed: 0, cacheHits: 0, shapeHits: 0, blocked: 0 };

  private constructor(o: GuardOptions) {
    const setting = o.tenantSetting.toLowerCase();
    const poolMode = o.poolMode ?? 'transaction';
    this.rules = {
      protectedSettings: new Set((o.protectedSettings ?? [setting, 'search_path', 'role', 'session_authorization']).map((s) => s.toLowerCase())),
      allowRules: new Set(o.allowRules ?? []),
      poolMode,
    };
    this.precheck = poolMode === 'transaction' ? NEEDS_PARSE_TX : NEEDS_PARSE;
    this.maxBytes = o.maxStatementBytes ?? 1 << 20;
    this.cacheEntries = o.cacheEntries ?? 10_000;
  }

  static async create(o: GuardOptions): Promise<StatementGuard> {
    await loadModule();
    return new StatementGuard(o);
  }

  /**
   * Whether a refused simple Query is a client's own session reset (session-reset.ts), and whether it drops
   * the client's prepared statements. Parsed again (only refused texts get here; pools send one text).
   * Any doubt is null: the refusal stands.
   */
  sessionReset(sql: string): { dropsStatements: boolean } | null {
    if (sql.length > 4096 || nestingScore(sql) > MAX_NESTING_SCORE) return null;
    const hit = this.resets.get(sql);
    if (hit !== undefined) return hit;
    let found: { dropsStatements: boolean } | null = null;
    try {
      const tree = parseSync(sql);
      if (isSessionReset(tree)) found = { dropsStatements: dropsPreparedStatements(tree) };
    } catch {
      found = null;
    }
    this.resets.set(sql, found);
    if (this.resets.size > 64) this.resets.delete(this.resets.keys().next().value as string);
    return found;
  }

  /** The verdict for one statement text (a simple Query's string or a Parse's text). Never throws; never allows on error. */
  check(sql: string): GuardVerdict {
    try {
      return this.decide(sql);
    } catch (e) {
      return this.block({ allowed: false, rule: 'guard_error', message: `the statement guard failed on this statement (${String((e as Error)?.message ?? e).slice(0, 120)}), so it was not run; simplify the statement` });
    }
  }

  private decide(sql: string): GuardVerdict {
    if (!this.precheck.test(sql) && !groupDdl(sql)) {
      this.stats.prechecked++;
      return ALLOWED;
    }
    // A UTF-16 unit is at most 3 UTF-8 bytes: count bytes only for texts that could be over.
    if (sql.length > this.maxBytes || (sql.length * 3 > this.maxBytes && Buffer.byteLength(sql) > this.maxBytes)) {
      return this.block({ allowed: false, rule: 'statement_too_large', message: `statements over ${this.maxBytes} bytes that may touch settings are not accepted` });
    }
    const cached = this.cache.get(sql);
    if (cached) {
      this.stats.cacheHits++;
      this.cache.delete(sql);
      this.cache.set(sql, cached);
      if (!cached.allowed) this.stats.blocked++;
      return cached;
    }
    const cacheable = sql.length <= CACHEABLE_BYTES;
    const shape = cacheable ? statementShape(sql) : null;
    if (shape && this.shapes.has(shape.key)) {
      this.stats.shapeHits++;
      this.shapes.delete(shape.key);
      this.shapes.set(shape.key, true);
      return ALLOWED;
    }
    if (nestingScore(sql) > MAX_NESTING_SCORE) {
      // Never handed to the parser: a stack overflow inside its WASM would corrupt it for every later statement.
      const verdict: Refusal = { allowed: false, rule: 'too_complex', sqlstate: '54001', message: 'the statement is nested too deeply for the guard to check (parentheses, subqueries, casts or operators); simplify it' };
      if (cacheable) this.remember(sql, verdict);
      return this.block(verdict);
    }
    this.stats.parsed++;
    let tree: unknown;
    try {
      tree = parseSync(sql);
    } catch (e) {
      const verdict = unparsable(e);
      if (cacheable) this.remember(sql, verdict);
      return this.block(verdict);
    }
    const j = judge(tree, this.rules);
    if (shape && j.verdict.allowed && !j.literalSensitive && shape.literals.every(([at, alt]) => j.constLocations.has(at) || j.constLocations.has(alt))) {
      // Same shape = same tokens but for literal values, and every literal became a constant no rule read.
      this.shapes.set(shape.key, true);
      if (this.shapes.size > this.cacheEntries) this.shapes.delete(this.shapes.keys().next().value as string);
    } else if (cacheable) {
      this.remember(sql, j.verdict);
    }
    if (!j.verdict.allowed) this.stats.blocked++;
    return j.verdict;
  }

  private remember(sql: string, verdict: GuardVerdict): void {
    this.cache.set(sql, verdict);
    if (this.cache.size > this.cacheEntries) this.cache.delete(this.cache.keys().next().value as string);
  }

  private block(v: Refusal): GuardVerdict {
    this.stats.blocked++;
    return v;
  }
}

/** A statement the PG 18 grammar rejects: refused, since the server's own major might accept and run it. */
function unparsable(e: unknown): Refusal {
  const detail = String((e as Error)?.message ?? e).slice(0, 160);
  return {
    allowed: false,
    rule: 'unparsable',
    sqlstate: '42601',
    message: `the statement guard could not parse this statement with the PostgreSQL 18 grammar (${detail}), so it was not run; fix the syntax, or rewrite it in syntax PostgreSQL 18 also accepts`,
  };
}
