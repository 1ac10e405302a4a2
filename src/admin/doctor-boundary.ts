// doctor's checks of the database-enforced boundary (sql/tenancy-kit.sql): the kit is installed, its key
// matches the proxy's (a proof the proxy computes verifies in the database), every table the pool role
// can reach is bound by a policy on tenancy.current_tenant(), and what the kit revokes stays revoked.
import type pg from 'pg';
import type { ProxyConfig } from '../config/types.js';
import { mintProof, proofKeyId } from '../session/tenant-proof.js';
import type { Finding } from './doctor.js';

const VERIFIED = /tenancy\.current_tenant\(\)/i;
const SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenancy') AND n.nspname NOT LIKE 'pg\\_%'";

/** What the kit revokes from PUBLIC, by family: what reaching it would let a tenant do, and how bad. */
const REVOKED: Array<{ family: string; level: 'critical' | 'warning'; why: string; sql: string }> = [
  {
    family: 'sql_from_string',
    level: 'warning',
    why: 'run SQL built from a string, out of the statement guard\'s sight (the verified context still holds)',
    sql: `p.proname IN ('query_to_xml', 'query_to_xmlschema', 'query_to_xml_and_xmlschema', 'ts_stat') OR (p.proname = 'ts_rewrite' AND p.pronargs = 2 AND p.proargtypes[1] = 'text'::regtype)`,
  },
  { family: 'large_objects', level: 'critical', why: 'read and overwrite large objects, which all tenants share through the pool role', sql: `p.proname LIKE 'lo\\_%' OR p.proname IN ('loread', 'lowrite')` },
  { family: 'signal_backend', level: 'critical', why: "cancel or terminate another tenant's statements", sql: `p.proname IN ('pg_cancel_backend', 'pg_terminate_backend')` },
  { family: 'query_text', level: 'critical', why: "read other tenants' running statements", sql: `p.proname IN ('pg_stat_get_activity', 'pg_stat_get_backend_activity')` },
];

export async function checkBoundary(c: pg.Client, cfg: ProxyConfig, add: (f: Finding) => void): Promise<void> {
  const key = cfg.tenant.proof_key;
  const installed = (await c.query("SELECT to_regprocedure('tenancy.current_tenant()') IS NOT NULL AS ok")).rows[0].ok as boolean;
  if (key === undefined) {
    add({
      level: 'warning',
      check: 'proof_key',
      message: `tenant.proof_key is not set: policies can only trust ${cfg.tenant.setting}, which any client can set, so isolation rests on the proxy's guard alone`,
      fix: 'set tenant.proof_key, run pg-tenant-proxy kit --apply, and protect tables with tenancy.protect_table / protect_schema',
    });
  } else if (!installed) {
    add({ level: 'critical', check: 'kit', message: 'tenant.proof_key is set but the tenancy kit is not installed in this database', fix: 'pg-tenant-proxy kit --apply --config FILE --database-url URL (as a superuser)' });
    return;
  } else {
    add({ level: 'ok', check: 'kit', message: 'the tenancy kit is installed' });
    await checkProof(c, cfg, key, add);
  }
  if (installed) await checkKeyTable(c, add);
  if (key !== undefined) await checkPolicies(c, cfg, add);
  await checkRevocations(c, add);
}

/** The proxy's key and the database's agree: a proof computed here verifies there, and a wrong one does not. */
async function checkProof(c: pg.Client, cfg: ProxyConfig, key: string, add: (f: Finding) => void): Promise<void> {
  const probe = 'doctor_probe';
  const exp = Math.floor(Date.now() / 1000) + 60;
  const verify = async (proof: string): Promise<string | null> => {
    await c.query('BEGIN');
    try {
      await c.query('SELECT pg_catalog.set_config($1, $2, true), pg_catalog.set_config($3, $4, true)', [cfg.tenant.setting, probe, cfg.tenant.proof_setting, proof]);
      return (await c.query('SELECT tenancy.current_tenant() AS t')).rows[0].t as string | null;
    } finally {
      await c.query('ROLLBACK');
    }
  };
  const kid = proofKeyId(key);
  const good = await verify(mintProof(key, kid, probe, exp));
  const swapped = await verify(mintProof(key, kid, `${probe}_other`, exp));
  if (good !== probe) {
    add({ level: 'critical', check: 'proof_key_match', subject: kid, message: "a proof made with the proxy's tenant.proof_key does not verify in the database: every tenant would see nothing", fix: 'pg-tenant-proxy kit --apply --config FILE (stores this key), or fix tenant.setting / tenant.proof_setting to match the installed kit' });
  } else if (swapped !== null) {
    add({ level: 'critical', check: 'proof_key_match', subject: kid, message: 'tenancy.current_tenant() accepted a proof made for another tenant: it does not verify', fix: 'reinstall it with pg-tenant-proxy kit --apply' });
  } else {
    add({ level: 'ok', check: 'proof_key_match', subject: kid, message: "the database verifies the proxy's proofs and refuses one for another tenant" });
  }
}

async function checkKeyTable(c: pg.Client, add: (f: Finding) => void): Promise<void> {
  const r = (
    await c.query(
      `SELECT has_table_privilege(current_user, 'tenancy.proof_keys', 'SELECT') AS can_read,
              pg_has_role(current_user, 'tenancy_owner', 'MEMBER') AS owner_member,
              (SELECT count(*)::int FROM pg_catalog.pg_roles WHERE rolname = 'tenancy_owner' AND (rolcanlogin OR rolsuper OR rolbypassrls)) AS owner_loose`,
    )
  ).rows[0];
  if (r.can_read || r.owner_member) {
    add({ level: 'critical', check: 'key_table', subject: 'tenancy.proof_keys', message: 'the backend role can read the proof keys: a tenant could mint a proof for any tenant', fix: 'REVOKE ALL ON tenancy.proof_keys FROM PUBLIC, <backend role>; REVOKE tenancy_owner FROM <backend role>' });
  } else if (r.owner_loose > 0) {
    add({ level: 'critical', check: 'key_table', subject: 'tenancy_owner', message: 'tenancy_owner can log in, is a superuser or bypasses RLS', fix: 'ALTER ROLE tenancy_owner NOLOGIN NOSUPERUSER NOBYPASSRLS' });
  } else {
    add({ level: 'ok', check: 'key_table', message: 'the backend role cannot read the proof keys' });
  }
}

/**
 * With a key, every table the backend role can reach must be bound to the verified tenant: a RESTRICTIVE
 * policy for all commands on tenancy.current_tenant() (ANDed with whatever else exists), or else every
 * permissive policy on it. A permissive policy on the raw setting next to it would widen access again.
 */
async function checkPolicies(c: pg.Client, cfg: ProxyConfig, add: (f: Finding) => void): Promise<void> {
  const tables = await c.query(
    `SELECT n.nspname AS s, c.relname AS t, c.relrowsecurity AS rls,
            coalesce(json_agg(json_build_object('name', p.polname, 'permissive', p.polpermissive, 'cmd', p.polcmd,
                     'expr', coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')))
                     FILTER (WHERE p.oid IS NOT NULL), '[]') AS policies
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_policy p ON p.polrelid = c.oid
      WHERE c.relkind IN ('r', 'p') AND ${SYSTEM}
        AND (has_table_privilege(current_user, c.oid, 'SELECT') OR has_table_privilege(current_user, c.oid, 'INSERT')
             OR has_table_privilege(current_user, c.oid, 'UPDATE') OR has_table_privilege(current_user, c.oid, 'DELETE'))
      GROUP BY 1, 2, 3 ORDER BY 1, 2`,
  );
  const raw = new RegExp(`current_setting\\(\\s*'${cfg.tenant.setting.replace(/\./g, '\\.')}'`, 'i');
  let bad = 0;
  for (const t of tables.rows as Array<{ s: string; t: string; rls: boolean; policies: Array<{ name: string; permissive: boolean; cmd: string; expr: string }> }>) {
    const subject = `${t.s}.${t.t}`;
    const restrictive = t.policies.some((p) => !p.permissive && p.cmd === '*' && VERIFIED.test(p.expr));
    const permissive = t.policies.filter((p) => p.permissive);
    const bound = t.rls && (restrictive || (permissive.length > 0 && permissive.every((p) => VERIFIED.test(p.expr))));
    if (!bound) {
      bad++;
      add({ level: 'critical', check: 'verified_policy', subject, message: `the backend role can reach this table and no policy binds it to tenancy.current_tenant()${t.rls ? '' : ' (row-level security is off)'}`, fix: `SELECT tenancy.protect_table('${subject}', 'tenant_id') -- or tenancy.protect_schema('${t.s}', '<tenant>') for a per-tenant schema` });
    }
    for (const p of t.policies.filter((x) => raw.test(x.expr) && !VERIFIED.test(x.expr))) {
      add(
        bound && restrictive
          ? { level: 'warning', check: 'raw_setting_policy', subject: `${subject} policy ${p.name}`, message: `uses the raw ${cfg.tenant.setting}; harmless under the verified restrictive policy, but redundant`, fix: `DROP POLICY ${p.name} ON ${subject}` }
          : { level: 'critical', check: 'raw_setting_policy', subject: `${subject} policy ${p.name}`, message: `trusts the raw ${cfg.tenant.setting}, which any client can set, while a proof key is configured`, fix: `DROP POLICY ${p.name} ON ${subject}; SELECT tenancy.protect_table('${subject}', 'tenant_id')` },
      );
    }
  }
  if (bad === 0) add({ level: 'ok', check: 'verified_policy', message: `every table the backend role can reach (${tables.rows.length}) is bound to tenancy.current_tenant()` });
}

async function checkRevocations(c: pg.Client, add: (f: Finding) => void): Promise<void> {
  for (const r of REVOKED) {
    const fns = await c.query(
      `SELECT p.oid::regprocedure::text AS f FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND (${r.sql})
          AND has_function_privilege(current_user, p.oid, 'EXECUTE') ORDER BY 1`,
    );
    if (fns.rows.length === 0) continue;
    const list = fns.rows.map((x) => x.f as string);
    add({ level: r.level, check: 'revocation', subject: r.family, message: `the backend role can ${r.why}: ${list.join(', ')}`, fix: `pg-tenant-proxy kit --apply (or REVOKE EXECUTE ON FUNCTION ... FROM PUBLIC, <backend role>)` });
  }
  const views = (
    await c.query(
      `SELECT has_table_privilege(current_user, 'pg_catalog.pg_stat_activity', 'SELECT') AS activity,
              pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') AS read_all_stats,
              pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal`,
    )
  ).rows[0];
  if (views.activity) add({ level: 'critical', check: 'revocation', subject: 'pg_stat_activity', message: "the backend role can read pg_stat_activity: other tenants' statements of the same role", fix: 'REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC' });
  if (views.read_all_stats) add({ level: 'critical', check: 'revocation', subject: 'pg_read_all_stats', message: "the backend role is a member of pg_read_all_stats: it reads every session's statements", fix: 'REVOKE pg_read_all_stats FROM <backend role>' });
  if (views.signal) add({ level: 'critical', check: 'revocation', subject: 'pg_signal_backend', message: 'the backend role is a member of pg_signal_backend: it can cancel any session', fix: 'REVOKE pg_signal_backend FROM <backend role>' });
}
