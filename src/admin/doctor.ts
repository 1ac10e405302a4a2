// `pg-tenant-proxy doctor --config FILE [--json]`: connects as the backend role and reports what would
// let a tenant escape row-level security, each finding critical, warning or ok. Exits 2 on a critical
// finding, 1 if it cannot check, 0 otherwise.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { loadConfigFile } from '../config/load.js';
import { ConfigError, type ProxyConfig } from '../config/types.js';
import { checkBoundary } from './doctor-boundary.js';
import { budgetArgs, budgetFindings } from './doctor-budget.js';

export type Level = 'critical' | 'warning' | 'ok';
export interface Finding {
  level: Level;
  check: string;
  subject?: string;
  message: string;
  fix?: string;
}

const SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'";

/** Schemas a tenant reaches through the search_path template: shared ones, and a LIKE pattern for per-tenant ones. */
function reachable(cfg: ProxyConfig): { shared: string[]; tenantLike: string | null } {
  const shared: string[] = [];
  let tenantLike: string | null = null;
  for (const raw of (cfg.tenant.search_path ?? 'public').split(',')) {
    const el = raw.trim().replace(/^"|"$/g, '');
    if (el === '$user') continue;
    if (el.includes('{tenant}')) tenantLike = el.replace(/_/g, '\\_').replace('{tenant}', '%');
    else shared.push(el);
  }
  return { shared, tenantLike };
}

/** A connected client as the proxy's backend role, with the configured TLS mode (doctor connects as the pool does). */
export async function backendClient(cfg: ProxyConfig): Promise<pg.Client> {
  const b = cfg.backend;
  const ssl =
    b.sslmode === 'disable' || b.sslmode === 'prefer'
      ? false
      : { rejectUnauthorized: b.sslmode !== 'require', ...(b.sslrootcert ? { ca: readFileSync(b.sslrootcert) } : {}) };
  const c = new pg.Client({ host: b.host, port: b.port, database: b.database, user: b.user, password: b.password, ssl });
  await c.connect();
  return c;
}

export async function runDoctor(cfg: ProxyConfig): Promise<Finding[]> {
  const b = cfg.backend;
  const c = await backendClient(cfg);
  const out: Finding[] = [];
  const add = (f: Finding): void => void out.push(f);
  const { shared } = reachable(cfg);
  try {
    // 1. Superuser and BYPASSRLS ignore every policy.
    const r = (await c.query('SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user')).rows[0];
    if (r.rolsuper) add({ level: 'critical', check: 'role', subject: b.user, message: 'the backend role is a superuser: row-level security does not apply to it', fix: `use a NOSUPERUSER NOBYPASSRLS role (sql/rls-kit.sql)` });
    else if (r.rolbypassrls) add({ level: 'critical', check: 'role', subject: b.user, message: 'the backend role has BYPASSRLS: row-level security does not apply to it', fix: `ALTER ROLE ${b.user} NOBYPASSRLS` });
    else add({ level: 'ok', check: 'role', subject: b.user, message: 'not a superuser, no BYPASSRLS' });

    // 2. Owners bypass RLS on their own tables unless it is forced.
    const owned = await c.query(
      `SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND NOT c.relforcerowsecurity AND ${SYSTEM} ORDER BY 1, 2`,
    );
    for (const t of owned.rows) add({ level: 'critical', check: 'force_rls', subject: `${t.s}.${t.t}`, message: 'owned by the backend role without FORCE ROW LEVEL SECURITY: its owner bypasses the policies', fix: `ALTER TABLE ${t.s}.${t.t} FORCE ROW LEVEL SECURITY (or give the table another owner)` });
    if (owned.rows.length === 0) add({ level: 'ok', check: 'force_rls', message: 'the backend role owns no table without FORCE ROW LEVEL SECURITY' });

    // 3-4. With a proof key, checkBoundary below holds every reachable table to the verified policy instead.
    if (cfg.tenant.proof_key === undefined) await checkRawPolicies(c, cfg, add);

    // 5. CREATE on a schema lets the role plant functions or shadow tables on the search_path.
    const creat = await c.query(`SELECT n.nspname AS s, n.nspname = ANY($1::text[]) AS shared FROM pg_namespace n WHERE has_schema_privilege(current_user, n.oid, 'CREATE') AND ${SYSTEM} ORDER BY 1`, [shared]);
    const langs = await c.query(`SELECT lanname FROM pg_language WHERE lanpltrusted AND has_language_privilege(current_user, oid, 'USAGE') ORDER BY 1`);
    for (const s of creat.rows) {
      add({ level: s.shared ? 'critical' : 'warning', check: 'schema_create', subject: s.s, message: `the backend role can CREATE in this schema${langs.rows.length ? ` and use language(s) ${langs.rows.map((l) => l.lanname).join(', ')}: it can create functions that call set_config` : ''}`, fix: `REVOKE CREATE ON SCHEMA ${s.s} FROM ${b.user}, PUBLIC` });
    }
    if (creat.rows.length === 0) add({ level: 'ok', check: 'schema_create', message: 'the backend role cannot CREATE in any schema' });

    // 6. Functions that change settings behind the guard's back (the read-back check catches them afterwards).
    const fns = await c.query(
      `SELECT n.nspname AS s, p.proname AS f, p.prosecdef AS secdef FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
        WHERE l.lanname IN ('plpgsql', 'sql') AND p.prosrc ILIKE '%set_config%' AND ${SYSTEM} ORDER BY 1, 2`,
    );
    for (const f of fns.rows) {
      add({ level: f.secdef ? 'critical' : 'warning', check: 'set_config_function', subject: `${f.s}.${f.f}`, message: `${f.secdef ? 'SECURITY DEFINER function' : 'function'} calling set_config: a tenant calling it can change its own context`, fix: 'remove it or revoke EXECUTE from the backend role; keep tenant.readback_check on' });
    }
    if (fns.rows.length === 0) add({ level: 'ok', check: 'set_config_function', message: 'no plpgsql/sql function calls set_config' });

    // 7. The database-enforced boundary: kit, key match, verified policies, revocations.
    await checkBoundary(c, cfg, add);
  } finally {
    await c.end();
  }
  return out;
}

/** Without a proof key: tables tenants reach need RLS, and policies must reference the tenant setting and fail closed. */
async function checkRawPolicies(c: pg.Client, cfg: ProxyConfig, add: (f: Finding) => void): Promise<void> {
  const setting = cfg.tenant.setting;
  const { shared, tenantLike } = reachable(cfg);
  const inReach = `(n.nspname = ANY($1::text[]) OR ($2::text IS NOT NULL AND n.nspname LIKE $2))`;
  // 3. Tables a tenant can read without RLS: critical in shared schemas, a warning in per-tenant schemas.
  const norls = await c.query(
      `SELECT n.nspname AS s, c.relname AS t, n.nspname = ANY($1::text[]) AS shared FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relrowsecurity AND ${inReach} AND has_table_privilege(current_user, c.oid, 'SELECT') ORDER BY 1, 2`,
      [shared, tenantLike],
    );
    for (const t of norls.rows) {
      add(
        t.shared
          ? { level: 'critical', check: 'rls_enabled', subject: `${t.s}.${t.t}`, message: 'in a shared schema every tenant reaches, readable by the backend role, without row-level security', fix: `ALTER TABLE ${t.s}.${t.t} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY, and add a policy` }
          : { level: 'warning', check: 'rls_enabled', subject: `${t.s}.${t.t}`, message: 'in a per-tenant schema without row-level security: isolated by search_path only, not by the database', fix: 'add RLS as a second line, or revoke the backend role\'s access to other tenants\' schemas' },
      );
    }
    if (norls.rows.length === 0) add({ level: 'ok', check: 'rls_enabled', message: 'every table tenants can reach has row-level security' });

    // 4. Policies must reference the tenant setting and fail closed.
    const pols = await c.query(
      `SELECT p.schemaname AS s, p.tablename AS t, p.policyname AS name, coalesce(p.qual, '') AS qual, coalesce(p.with_check, '') AS chk
         FROM pg_policies p JOIN pg_namespace n ON n.nspname = p.schemaname WHERE ${inReach} ORDER BY 1, 2, 3`,
      [shared, tenantLike],
    );
    for (const p of pols.rows) {
      const text = `${p.qual} ${p.chk}`.toLowerCase();
      const subject = `${p.s}.${p.t} policy ${p.name}`;
      if (!text.includes(setting.toLowerCase()) && !text.includes('current_tenant(')) {
        add({ level: 'critical', check: 'policy_reference', subject, message: `does not reference ${setting}: it does not isolate tenants`, fix: `USING (tenant_id = current_setting('${setting}', true))` });
      } else if (/coalesce\s*\(\s*(?:pg_catalog\.)?current_setting/.test(text) || /current_setting\([^)]*\)\s+is\s+null\s+or/.test(text)) {
        add({ level: 'critical', check: 'policy_fail_open', subject, message: 'fails open: with no tenant set it still matches rows (COALESCE / IS NULL OR)', fix: `compare directly: tenant_id = current_setting('${setting}', true)` });
      } else {
        add({ level: 'ok', check: 'policy', subject, message: `references ${setting}` });
      }
    }
}

export async function doctorCommand(argv: string[]): Promise<number> {
  const budget = budgetArgs(argv); // --replicas N, --reserve N (doctor-budget.ts)
  if ('error' in budget) return void process.stderr.write(`pg-tenant-proxy doctor: ${budget.error}\n`), 1;
  const args = budget.rest;
  let configPath: string | undefined;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--config' || args[i] === '-c') configPath = args[++i];
    else if (args[i] === '--json') json = true;
    else {
      process.stderr.write(`pg-tenant-proxy doctor: unknown argument "${args[i]}"\nusage: pg-tenant-proxy doctor --config FILE [--json] [--replicas N] [--reserve N]\n`);
      return 1;
    }
  }
  if (!configPath) {
    process.stderr.write('usage: pg-tenant-proxy doctor --config FILE [--json] [--replicas N] [--reserve N]\n');
    return 1;
  }
  let findings: Finding[];
  try {
    const cfg = loadConfigFile(configPath);
    findings = [...(await runDoctor(cfg)), ...(await budgetFindings(cfg, budget.opts))];
  } catch (e) {
    const msg = e instanceof ConfigError ? e.message : `cannot check the database: ${(e as Error).message}`;
    process.stderr.write(`pg-tenant-proxy doctor: ${msg}\n`);
    return 1;
  }
  const critical = findings.filter((f) => f.level === 'critical').length;
  const warnings = findings.filter((f) => f.level === 'warning').length;
  if (json) {
    process.stdout.write(JSON.stringify({ findings, critical, warnings }, null, 2) + '\n');
  } else {
    for (const f of findings) {
      process.stdout.write(`${f.level.toUpperCase().padEnd(8)} ${f.check}${f.subject ? ` ${f.subject}` : ''}: ${f.message}${f.fix ? `\n         fix: ${f.fix}` : ''}\n`);
    }
    process.stdout.write(`${critical} critical, ${warnings} warning(s)\n`);
  }
  return critical > 0 ? 2 : 0;
}
