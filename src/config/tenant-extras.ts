// Validation of the tenant section's isolation keys: the explicit tenant → schema map (one schema per
// tenant, checked at load), the deny-list of suspended tenants, the read-back check and the statement guard.
import { ConfigError } from './types.js';
import { isMapping, record, show, type Raw } from './validate.js';

const SCHEMA = /^[a-z_][a-z0-9_$]{0,62}$/;

/** tenant.schema_map: tenant id → schema. Two tenants may never share a schema. */
export function validateSchemaMap(raw: unknown, idPattern: RegExp): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === undefined || raw === null) return out;
  if (!isMapping(raw)) throw new ConfigError('tenant.schema_map', 'must be a mapping of tenant id to schema name');
  const owner = new Map<string, string>();
  for (const [tenant, schema] of Object.entries(raw as Raw)) {
    const key = `tenant.schema_map.${tenant}`;
    if (!idPattern.test(tenant)) throw new ConfigError(key, 'the tenant id does not match tenant.id_pattern');
    if (typeof schema !== 'string' || !SCHEMA.test(schema)) throw new ConfigError(key, `must be a lowercase schema name, got ${show(schema)}`);
    const other = owner.get(schema);
    if (other !== undefined) {
      throw new ConfigError(key, `schema "${schema}" is already mapped to tenant "${other}": two tenants in one schema would see each other's data`);
    }
    owner.set(schema, tenant);
    out.set(tenant, schema);
  }
  return out;
}

/** tenant.deny: tenant ids refused at login and at the start of every transaction (re-read on SIGHUP). */
export function validateDenyList(raw: unknown, idPattern: RegExp): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError('tenant.deny', 'must be a list of tenant ids');
  return raw.map((t, i) => {
    if (typeof t !== 'string' || !idPattern.test(t)) throw new ConfigError(`tenant.deny[${i}]`, `${show(t)} is not a tenant id matching tenant.id_pattern`);
    return t;
  });
}

export function validateBool(raw: unknown, key: string, def: boolean): boolean {
  record({ key, type: 'boolean', default: def, required: false });
  if (raw === undefined || raw === null) return def;
  if (typeof raw !== 'boolean') throw new ConfigError(key, `must be true or false, got ${show(raw)}`);
  return raw;
}

/** The guard's rule ids; tenant.guard_allow may switch individual ones off. */
/** Rules that keep the context, or the guard's own reading of statements, intact: never switched off. */
const FIXED_RULES = [
  'set_protected',
  'set_config',
  'reset_all',
  'role_ddl',
  'pg_settings_write',
  'sql_from_string',
  'encoding',
  'standard_conforming_strings',
  'function_call',
  'statement_too_large',
  'unparsable',
  'too_complex',
  'guard_error',
];
export const GUARD_RULES = ['discard', 'do_block', 'function_ddl', 'role_db_set', 'load', 'listen', ...FIXED_RULES] as const;

/** tenant.protected_settings: always includes the tenant (and proof) setting, search_path, role and session_authorization. */
export function validateProtected(raw: unknown, contextSettings: readonly string[]): string[] {
  const base = [...contextSettings, 'search_path', 'role', 'session_authorization'];
  if (raw === undefined || raw === null) return base;
  if (!Array.isArray(raw) || raw.some((x) => typeof x !== 'string' || !/^[A-Za-z_][A-Za-z0-9_.]*$/.test(x))) {
    throw new ConfigError('tenant.protected_settings', 'must be a list of setting names (added to the tenant setting, search_path, role and session_authorization, which are always protected)');
  }
  return [...new Set([...base, ...(raw as string[]).map((x) => x.toLowerCase())])];
}

/** tenant.guard_allow: guard rules not enforced (the context settings stay protected whatever is listed). */
export function validateGuardAllow(raw: unknown): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError('tenant.guard_allow', `must be a list of rule ids: ${GUARD_RULES.join(', ')}`);
  return raw.map((r, i) => {
    if (typeof r !== 'string' || !(GUARD_RULES as readonly string[]).includes(r)) throw new ConfigError(`tenant.guard_allow[${i}]`, `${show(r)} is not a rule; rules: ${GUARD_RULES.join(', ')}`);
    if (FIXED_RULES.includes(r)) {
      throw new ConfigError(`tenant.guard_allow[${i}]`, `rule ${r} protects the tenant context itself or the guard's own reading of statements, and cannot be switched off (use tenant.guard: false to disable the guard)`);
    }
    return r;
  });
}

/**
 * tenant.function_call_allow: function OIDs a guarded tenant may call with the FunctionCall message (the
 * guard cannot see which function an OID is, so only these pass). Built-in functions have fixed OIDs
 * (`SELECT 'lo_open'::regproc::oid`); a function of your own has a per-database OID.
 */
export function validateFunctionCallAllow(raw: unknown): number[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError('tenant.function_call_allow', "must be a list of function OIDs (find one with SELECT 'name'::regproc::oid)");
  return raw.map((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 0xffffffff) {
      throw new ConfigError(`tenant.function_call_allow[${i}]`, `${show(x)} is not a function OID (a positive integer; SELECT 'name'::regproc::oid)`);
    }
    return x;
  });
}
