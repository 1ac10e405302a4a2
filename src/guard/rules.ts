// The statement guard's rules over a libpg-query parse tree (PG 18 grammar). The tree is walked with an
// explicit stack under depth and node caps, so no statement can overflow the walk: too deep or too large is
// a refusal, never an allow. The walk also reports whether any rule looked at a constant's value (then the
// verdict may change with the literals, and the statement must not be cached by shape).
// Node shapes: https://github.com/pganalyze/libpg_query (protobuf JSON of PostgreSQL's parsenodes.h)

export type GuardVerdict = { allowed: true } | { allowed: false; rule: string; message: string; sqlstate?: string };
export type Refusal = Extract<GuardVerdict, { allowed: false }>;

export const ALLOWED: GuardVerdict = { allowed: true };

export interface RuleOptions {
  /** Settings a tenant may not SET, RESET or set_config (lowercase). */
  protectedSettings: ReadonlySet<string>;
  /** Rule ids not enforced. */
  allowRules: ReadonlySet<string>;
  /** transaction: LISTEN is refused (the subscription would end with the transaction). */
  poolMode: 'transaction' | 'session';
}

export interface Judgement {
  verdict: GuardVerdict;
  /** A rule read a constant's value (set_config's arguments, a SET value): the verdict depends on literals. */
  literalSensitive: boolean;
  /** Byte offsets of every A_Const in the tree (the shape cache checks that each literal became one). */
  constLocations: Set<number>;
}

/** JSON nesting beyond this is refused (9,000 nested casts are ~18,000 levels; real queries stay far below). */
export const MAX_DEPTH = 4000;
/** Nodes beyond this are refused: the walk's time stays bounded. */
export const MAX_NODES = 1_000_000;

/**
 * Built-ins that run SQL given as a string, in the caller's session: the string can be built at run time
 * (convert_from(decode(...))), so the guard can never read it. Refused wherever they are named.
 * Core: xml.c (query_to_xml*, cursor_to_xml*: SPI), tsvector_op.c (ts_stat: SPI on its text argument),
 * tsquery_rewrite.c (ts_rewrite(tsquery, text): SPI). contrib/tablefunc: crosstab*, connectby (SPI).
 */
export const SQL_FROM_STRING: ReadonlySet<string> = new Set([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'ts_stat',
  'ts_rewrite',
  'crosstab',
  'crosstab2',
  'crosstab3',
  'crosstab4',
  'connectby',
]);

/** Statements that only read: pg_settings may be named in them (writes to it call set_config through its rule). */
const READ_STATEMENTS: ReadonlySet<string> = new Set(['SelectStmt', 'ExplainStmt', 'DeclareCursorStmt', 'PrepareStmt', 'CreateTableAsStmt', 'VariableShowStmt']);

type Node = Record<string, unknown>;

const no = (rule: string, message: string, sqlstate?: string): Refusal => (sqlstate ? { allowed: false, rule, message, sqlstate } : { allowed: false, rule, message });

/** Client encodings the guard lexes exactly as the server does (UTF8; SQL_ASCII, which the server validates as the database encoding). */
export function isGuardableEncoding(name: string): boolean {
  // PostgreSQL's clean_encoding_name: lowercase, non-alphanumerics dropped (utf-8, UTF_8, unicode all mean UTF8).
  const clean = name.toLowerCase().replace(/[^a-z0-9]/g, '');
  return clean === 'utf8' || clean === 'unicode' || clean === 'sqlascii';
}

/**
 * Whether a reported session setting may be re-applied for a guarded tenant in its later transactions: a
 * value the guard refuses (a non-UTF8 encoding, standard_conforming_strings off) never is, by any route.
 */
export function guardKeepsSetting(name: string, value: string): boolean {
  if (name === 'client_encoding') return isGuardableEncoding(value);
  if (name === 'standard_conforming_strings') return isTrue(value);
  return true;
}

/** True only for values PostgreSQL's parse_bool reads as true. */
function isTrue(value: string): boolean {
  return /^(?:t|tr|tru|true|y|ye|yes|on|1)$/i.test(value.trim());
}

export function encodingRefusal(value: string): Refusal {
  return no(
    'encoding',
    `client_encoding ${JSON.stringify(value.slice(0, 32))} is not accepted for tenants: the guard reads statements as UTF8, and encodings such as SJIS, BIG5 and GBK would make it read them differently from the server. Use UTF8 and convert in the application`,
    '0A000',
  );
}

const SCS_REFUSAL = no(
  'standard_conforming_strings',
  'standard_conforming_strings cannot be turned off for tenants: with it off, backslashes in strings would make the guard read statements differently from the server. Use E\'...\' strings for backslash escapes',
  '0A000',
);

export function judge(tree: unknown, o: RuleOptions): Judgement {
  const constLocations = new Set<number>();
  let literalSensitive = false;
  let pgSettings = false;
  let writes = false;
  let nodes = 0;
  // Explicit stack of [value, depth]: no recursion, so no depth can overflow the JS stack.
  const stack: Array<[unknown, number]> = [[tree, 0]];
  const found = (v: Refusal | null): Refusal | null => (v && !o.allowRules.has(v.rule) ? v : null);

  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (++nodes > MAX_NODES) return refused(no('too_complex', `the statement has more than ${MAX_NODES} parse nodes, more than the guard checks; split it`, '54001'));
    if (depth > MAX_DEPTH) return refused(no('too_complex', 'the statement is nested too deeply for the guard to check; simplify it (fewer nested casts, parentheses or operators)', '54001'));
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], depth + 1]);
      continue;
    }
    const obj = v as Node;
    // pg_settings as a relation (RangeVar, wrapped or as a typed field such as UpdateStmt.relation).
    if (typeof obj.relname === 'string' && obj.relname.toLowerCase() === 'pg_settings') pgSettings = true;
    for (const key in obj) {
      const child = obj[key];
      if (key.endsWith('Stmt') && !READ_STATEMENTS.has(key)) writes = true;
      switch (key) {
        case 'A_Const': {
          const loc = (child as Node).location;
          if (typeof loc === 'number') constLocations.add(loc);
          continue; // its sval is data, never a name
        }
        case 'String': {
          const r = found(nameRule(String((child as Node).sval ?? '')));
          if (r) return refused(r);
          continue;
        }
        case 'FuncCall': {
          const f = child as Node;
          const name = lastName(f.funcname);
          if (name === 'set_config') {
            literalSensitive = true;
            const r = found(setConfigCall(f, o));
            if (r) return refused(r);
          } else if (SQL_FROM_STRING.has(name)) {
            const r = found(sqlFromString(name));
            if (r) return refused(r);
          } else {
            stack.push([f.funcname, depth + 1]); // a qualified or quoted name still passes the String rule
          }
          for (const k in f) if (k !== 'funcname') stack.push([f[k], depth + 2]);
          continue;
        }
        case 'VariableSetStmt':
        case 'setstmt': {
          // setstmt: the SET inside ALTER ROLE/DATABASE/SYSTEM ... SET (unwrapped), checked even if role_db_set is allowed.
          literalSensitive = true;
          const r = found(variableSet(child as Node, o));
          if (r) return refused(r);
          break;
        }
        case 'RenameStmt': {
          const r = (child as Node).renameType === 'OBJECT_ROLE' ? found(statementRule('AlterRoleStmt', o)) : null;
          if (r) return refused(r);
          break;
        }
        default: {
          const r = found(statementRule(key, o));
          if (r) return refused(r);
        }
      }
      stack.push([child, depth + 1]);
    }
  }
  if (pgSettings && writes && !o.allowRules.has('pg_settings_write')) {
    return refused(no('pg_settings_write', 'writing to pg_settings (or defining a view, rule or trigger over it) is not allowed: its update rule calls set_config'));
  }
  return { verdict: ALLOWED, literalSensitive, constLocations };

  function refused(r: Refusal): Judgement {
    return { verdict: r, literalSensitive: true, constLocations };
  }
}

/** Rules decided by the statement type alone. */
function statementRule(key: string, o: RuleOptions): Refusal | null {
  switch (key) {
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
    case 'AlterRoleStmt':
    case 'CreateRoleStmt':
    case 'DropRoleStmt':
    case 'GrantRoleStmt':
      // Every tenant shares the pool role, and any role may change its own password: one tenant's
      // ALTER USER CURRENT_USER PASSWORD would lock the proxy out of every new backend connection.
      return no('role_ddl', 'CREATE/ALTER/DROP ROLE (or USER, GROUP) and GRANT of roles are not allowed for tenants: all tenants share the backend role');
    case 'ListenStmt':
      return o.poolMode === 'transaction'
        ? no('listen', 'LISTEN does not work in transaction pooling mode: the subscription would outlive your transaction on a shared connection. Connect LISTEN clients through a proxy with pool.mode: session, or directly to PostgreSQL', '0A000')
        : null;
    default:
      return null;
  }
}

/** An identifier naming set_config or a SQL-from-string built-in, wherever it appears (DDL included). */
function nameRule(raw: string): Refusal | null {
  const name = raw.toLowerCase();
  const bare = name.slice(name.lastIndexOf('.') + 1); // a quoted "pg_catalog.set_config" string, as in sfunc = '...'
  if (bare === 'set_config') return no('set_config', 'set_config may only be called directly with a constant setting name; naming it elsewhere (an aggregate, operator, cast, trigger or rule) is not allowed');
  if (SQL_FROM_STRING.has(bare)) return sqlFromString(bare);
  return null;
}

function sqlFromString(name: string): Refusal {
  return no('sql_from_string', `${name}() runs SQL given as a string, which the guard cannot check; it is not allowed for tenants`);
}

function lastName(list: unknown): string {
  if (!Array.isArray(list) || list.length === 0) return '';
  return String(((list[list.length - 1] as Node).String as Node | undefined)?.sval ?? '').toLowerCase();
}

function variableSet(n: Node, o: RuleOptions): Refusal | null {
  const kind = n.kind as string;
  const name = String(n.name ?? '').toLowerCase();
  if (kind === 'VAR_RESET_ALL') return no('reset_all', 'RESET ALL is not allowed: it would clear the tenant context');
  if (o.protectedSettings.has(name)) return no('set_protected', `SET/RESET of "${name}" is not allowed: the tenant context is set by pg-tenant-proxy`);
  if (kind !== 'VAR_SET_VALUE') return null; // DEFAULT / RESET return to the connection's defaults (UTF8, on)
  const args = (n.args as Node[] | undefined) ?? [];
  const value = args.length === 1 ? constantValue(args[0]) : null;
  if (name === 'client_encoding' && (value === null || !isGuardableEncoding(value))) return encodingRefusal(value ?? '(not a single constant)');
  if (name === 'standard_conforming_strings' && (value === null || !isTrue(value))) return SCS_REFUSAL;
  return null;
}

/** set_config(name, value, local): refused when the name is protected or not a constant, or the value breaks lexing. */
function setConfigCall(n: Node, o: RuleOptions): Refusal | null {
  const args = (n.args as Node[] | undefined) ?? [];
  const setting = constantValue(args[0]);
  if (setting === null) return no('set_config', 'set_config with a setting name that is not a constant is not allowed');
  const name = setting.toLowerCase();
  if (o.protectedSettings.has(name)) return no('set_config', `set_config of "${setting}" is not allowed: the tenant context is set by pg-tenant-proxy`);
  if (name === 'client_encoding' || name === 'standard_conforming_strings') {
    const value = constantValue(args[1]);
    if (name === 'client_encoding' && (value === null || !isGuardableEncoding(value))) return encodingRefusal(value ?? '(not a constant)');
    if (name === 'standard_conforming_strings' && (value === null || !isTrue(value))) return SCS_REFUSAL;
  }
  return null;
}

/** A constant's text (`'x'`, `'x'::text`, `42`), else null. */
function constantValue(n: Node | undefined): string | null {
  if (!n) return null;
  const c = n.A_Const as Node | undefined;
  if (c) {
    if (c.sval) return ((c.sval as Node).sval as string | undefined) ?? '';
    if (c.ival) return String((c.ival as Node).ival ?? 0); // protobuf JSON leaves out a zero
    if (c.fval) return String((c.fval as Node).fval ?? '');
    return null;
  }
  const cast = n.TypeCast as Node | undefined;
  if (cast) return constantValue(cast.arg as Node);
  return null;
}
