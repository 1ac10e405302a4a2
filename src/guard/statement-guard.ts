// The statement guard: decides with the real PostgreSQL parser (libpg-query, PG 18 grammar) whether a
// tenant's statement could change, reset or escape the tenant context. A conservative text pre-check
// lets ordinary statements through without a parse; verdicts are cached; statement size is bounded
// because the parser's WASM memory never shrinks.
import { loadModule, parseSync } from 'libpg-query';

export type GuardVerdict = { allowed: true } | { allowed: false; rule: string; message: string };

export interface GuardOptions {
  tenantSetting: string;
  /** Settings a tenant may not SET, RESET or set_config (lowercase). */
  protectedSettings?: string[];
  /** Longer statements are refused (rule statement_too_large). */
  maxStatementBytes?: number;
  /** Verdicts cached (LRU), for statements up to 4 KiB. */
  cacheEntries?: number;
  /** Rule ids not enforced. */
  allowRules?: string[];
}

const ALLOWED: GuardVerdict = { allowed: true };
const CACHEABLE_BYTES = 4096;

/**
 * Pre-check: could this text touch the context at all? Every statement the guard blocks must contain one
 * of these as written. Keywords cannot be split by comments (a comment separates tokens), quoted
 * identifiers keep their letters ("set_config"), and the only other way to spell an identifier is a
 * Unicode escape, caught by `u&`. Whole words where a substring would match ordinary text too often.
 */
const NEEDS_PARSE = /\b(?:set|reset|discard|do|load|prepare|function|procedure|role|database)\b|set_config|search_path|authorization|u&/i;

export function needsParse(sql: string): boolean {
  return NEEDS_PARSE.test(sql);
}

type Node = Record<string, unknown>;

export class StatementGuard {
  private readonly protectedSettings: Set<string>;
  private readonly maxBytes: number;
  private readonly cacheEntries: number;
  private readonly cache = new Map<string, GuardVerdict>();
  private readonly allowRules: Set<string>;
  readonly stats = { prechecked: 0, parsed: 0, cacheHits: 0, blocked: 0 };

  private constructor(o: GuardOptions) {
    const setting = o.tenantSetting.toLowerCase();
    this.protectedSettings = new Set((o.protectedSettings ?? [setting, 'search_path', 'role', 'session_authorization']).map((s) => s.toLowerCase()));
    this.maxBytes = o.maxStatementBytes ?? 1 << 20;
    this.cacheEntries = o.cacheEntries ?? 10_000;
    this.allowRules = new Set(o.allowRules ?? []);
  }

  static async create(o: GuardOptions): Promise<StatementGuard> {
    await loadModule();
    return new StatementGuard(o);
  }

  check(sql: string): GuardVerdict {
    if (!needsParse(sql)) {
      this.stats.prechecked++;
      return ALLOWED;
    }
    if (Buffer.byteLength(sql) > this.maxBytes) return this.block('statement_too_large', `statements over ${this.maxBytes} bytes that may touch settings are not accepted`);
    const cached = this.cache.get(sql);
    if (cached) {
      this.stats.cacheHits++;
      this.cache.delete(sql);
      this.cache.set(sql, cached);
      if (!cached.allowed) this.stats.blocked++;
      return cached;
    }
    this.stats.parsed++;
    let verdict: GuardVerdict;
    try {
      verdict = this.judge(parseSync(sql) as Node);
    } catch {
      verdict = ALLOWED; // a syntax error: the server reports it itself and nothing runs
    }
    if (sql.length <= CACHEABLE_BYTES) {
      this.cache.set(sql, verdict);
      if (this.cache.size > this.cacheEntries) this.cache.delete(this.cache.keys().next().value as string);
    }
    if (!verdict.allowed) this.stats.blocked++;
    return verdict;
  }

  private block(rule: string, message: string): GuardVerdict {
    this.stats.blocked++;
    return { allowed: false, rule, message };
  }

  /** Walks the whole tree: rules apply to every node, so statements nested in PREPARE, CTEs and subqueries are seen. */
  private judge(tree: Node): GuardVerdict {
    let verdict: GuardVerdict = ALLOWED;
    const visit = (v: unknown): void => {
      if (!verdict.allowed || v === null || typeof v !== 'object') return;
      if (Array.isArray(v)) {
        for (const x of v) visit(x);
        return;
      }
      for (const [key, child] of Object.entries(v as Node)) {
        const found = this.rule(key, child as Node);
        if (found && !found.allowed && !this.allowRules.has(found.rule)) {
          verdict = found;
          return;
        }
        visit(child);
      }
    };
    visit(tree);
    return verdict;
  }

  /** The rule a node breaks, if any. `key` is the node type (VariableSetStmt, FuncCall, ...). */
  private rule(key: string, n: Node): GuardVerdict | null {
    const no = (rule: string, message: string): GuardVerdict => ({ allowed: false, rule, message });
    switch (key) {
      case 'VariableSetStmt': {
        const kind = n.kind as string;
        const name = String(n.name ?? '').toLowerCase();
        if (kind === 'VAR_RESET_ALL') return no('reset_all', 'RESET ALL is not allowed: it would clear the tenant context');
        if (this.protectedSettings.has(name)) {
          return no('set_protected', `SET/RESET of "${name}" is not allowed: the tenant context is set by pg-tenant-proxy`);
        }
        return null;
      }
      case 'DiscardStmt':
        return no('discard', 'DISCARD is not allowed: pg-tenant-proxy resets connections itself');
      case 'DoStmt':
        return no('do_block', 'DO blocks are not allowed for tenants: they could change the tenant context');
      case 'CreateFunctionStmt':
      case 'AlterFunctionStmt':
        return no('function_ddl', 'CREATE/ALTER FUNCTION or PROCEDURE is not allowed for tenants');
      case 'AlterRoleSetStmt':
      case 'AlterDatabaseSetStmt':
        return no('role_db_set', 'ALTER ROLE/DATABASE ... SET is not allowed for tenants');
      case 'LoadStmt':
        return no('load', 'LOAD is not allowed for tenants');
      case 'FuncCall':
        return this.setConfigCall(n);
      default:
        return null;
    }
  }

  /** set_config(name, ...) is refused when the name is protected or not a string constant. */
  private setConfigCall(n: Node): GuardVerdict | null {
    const names = ((n.funcname as Node[]) ?? []).map((p) => String((p.String as Node | undefined)?.sval ?? '').toLowerCase());
    const fn = names[names.length - 1];
    if (fn !== 'set_config' || (names.length === 2 && names[0] !== 'pg_catalog') || names.length > 2) return null;
    const first = ((n.args as Node[]) ?? [])[0];
    const constant = constantString(first);
    if (constant === null) return { allowed: false, rule: 'set_config', message: 'set_config with a setting name that is not a constant is not allowed' };
    if (this.protectedSettings.has(constant.toLowerCase())) {
      return { allowed: false, rule: 'set_config', message: `set_config of "${constant}" is not allowed: the tenant context is set by pg-tenant-proxy` };
    }
    return null;
  }
}

/** A string constant, possibly cast (`'x'::text`), else null. */
function constantString(n: Node | undefined): string | null {
  if (!n) return null;
  const c = n.A_Const as Node | undefined;
  if (c) return ((c.sval as Node | undefined)?.sval as string | undefined) ?? null;
  const cast = n.TypeCast as Node | undefined;
  if (cast) return constantString(cast.arg as Node);
  return null;
}
