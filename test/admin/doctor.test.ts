// doctor against real databases: one protected by the tenancy kit (the sample schema, and sql/rls-kit.sql
// on a fresh database) has no critical finding; each kind of escape route, a key mismatch, a table without
// the verified policy and a missing revocation are reported at the right level.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { doctorCommand, type Finding } from '../../src/admin/doctor.js';
import { applyKit } from '../../src/admin/kit.js';
import type { TenantConfig } from '../../src/config/types.js';
import { adminClient, createFixtureDatabase, primaryServer, TEST_PROOF_KEY, type FixtureDatabase, type PgServer } from '../support/pg.js';

// Config files here hold passwords (a superuser's, in one test): removed in afterAll.
const dir = mkdtempSync(path.join(tmpdir(), 'pgtp-doctor-'));

function configFor(server: PgServer, database: string, user: string, password: string, proofKey: string | null = TEST_PROOF_KEY): string {
  const file = path.join(dir, `${database}-${user}-${proofKey ? 'key' : 'nokey'}.yaml`);
  writeFileSync(
    file,
    `backend: { host: ${server.host}, port: ${server.port}, database: ${database}, user: ${user}, password: "${password}", sslmode: disable }
auth: { jwt: { algorithms: [HS256], secret: "doctor-test-secret-that-is-32-bytes-long" } }
tenant: { search_path: "tenant_{tenant}, public"${proofKey ? `, proof_key: "${proofKey}"` : ''} }
`,
    { mode: 0o600 },
  );
  return file;
}

async function doctor(config: string): Promise<{ code: number; findings: Finding[]; critical: number }> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  let code: number;
  try {
    code = await doctorCommand(['--config', config, '--json']);
  } finally {
    process.stdout.write = write;
  }
  const parsed = JSON.parse(out) as { findings: Finding[]; critical: number };
  return { code, ...parsed };
}

const server = primaryServer();
const criticals = (r: { findings: Finding[] }): Finding[] => r.findings.filter((f) => f.level === 'critical');

describe('doctor', () => {
  let good: FixtureDatabase;
  let bad: FixtureDatabase;
  let raw: FixtureDatabase;
  beforeAll(async () => {
    [good, bad, raw] = await Promise.all([
      createFixtureDatabase(server, 'doctor_good'),
      createFixtureDatabase(server, 'doctor_bad'),
      createFixtureDatabase(server, 'doctor_raw', 'raw'),
    ]);
    const a = await adminClient(server, bad.database);
    await a.query(`
      CREATE TABLE public.owned_by_pool (id int, tenant_id text);
      ALTER TABLE public.owned_by_pool OWNER TO ${bad.poolUser};
      CREATE TABLE public.shared_no_rls (id int);
      GRANT SELECT ON public.shared_no_rls TO ${bad.poolUser};
      CREATE TABLE public.legacy (id int, tenant_id text);
      ALTER TABLE public.legacy ENABLE ROW LEVEL SECURITY;
      CREATE POLICY raw_only ON public.legacy USING (tenant_id = current_setting('app.current_tenant', true));
      GRANT SELECT ON public.legacy TO ${bad.poolUser};
      CREATE POLICY leaky ON public.orders USING (tenant_id = COALESCE(current_setting('app.current_tenant', true), tenant_id));
      GRANT CREATE ON SCHEMA public TO ${bad.poolUser};
      CREATE FUNCTION public.become(t text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN PERFORM set_config('app.current_tenant', t, false); END $$;
      GRANT EXECUTE ON FUNCTION pg_catalog.lo_get(oid) TO ${bad.poolUser};
      GRANT SELECT ON pg_catalog.pg_stat_activity TO ${bad.poolUser};
    `);
    await a.end();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the sample schema under the kit: no critical finding, the key matches, exit 0', async () => {
    const r = await doctor(configFor(server, good.database, good.poolUser, good.poolPassword));
    expect(criticals(r)).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'ok', check: 'proof_key_match' }));
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'ok', check: 'verified_policy' }));
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'ok', check: 'key_table' }));
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'ok', check: 'role' }));
  });

  it('a proxy key the database does not hold is critical', async () => {
    const r = await doctor(configFor(server, good.database, good.poolUser, good.poolPassword, 'a-different-proof-key-of-at-least-32-bytes'));
    expect(criticals(r)).toEqual([expect.objectContaining({ check: 'proof_key_match' })]);
    expect(r.code).toBe(2);
  });

  it('every escape route is reported at its level, and the exit code is 2', async () => {
    const r = await doctor(configFor(server, bad.database, bad.poolUser, bad.poolPassword));
    expect(r.code).toBe(2);
    const has = (level: string, check: string, subject?: string) =>
      expect(r.findings, `${level} ${check} ${subject ?? ''}`).toContainEqual(expect.objectContaining({ level, check, ...(subject ? { subject } : {}) }));
    has('critical', 'force_rls', 'public.owned_by_pool');
    has('critical', 'verified_policy', 'public.owned_by_pool');
    has('critical', 'verified_policy', 'public.shared_no_rls');
    has('critical', 'verified_policy', 'public.legacy');
    has('critical', 'raw_setting_policy', 'public.legacy policy raw_only');
    // Bounded by the kit's restrictive policy: redundant, not an escape.
    has('warning', 'raw_setting_policy', 'public.orders policy leaky');
    has('critical', 'schema_create', 'public');
    has('critical', 'set_config_function', 'public.become');
    has('critical', 'revocation', 'large_objects');
    has('critical', 'revocation', 'pg_stat_activity');
    expect(r.findings.find((f) => f.subject === 'large_objects')?.message).toContain('lo_get(oid)');
    expect(r.findings.some((f) => f.check === 'verified_policy' && f.subject === 'public.orders')).toBe(false);
    expect(r.critical).toBe(criticals(r).length);
  });

  it('without tenant.proof_key (the layout before the kit): reported, plus every revocation the database lacks', async () => {
    const r = await doctor(configFor(server, raw.database, raw.poolUser, raw.poolPassword, null));
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'warning', check: 'proof_key' }));
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'warning', check: 'rls_enabled', subject: 'tenant_acme.notes' }));
    for (const family of ['sql_from_string', 'large_objects', 'signal_backend', 'query_text', 'pg_stat_activity']) {
      expect(r.findings, family).toContainEqual(expect.objectContaining({ check: 'revocation', subject: family }));
    }
    expect(r.code).toBe(2);
  });

  it('a superuser backend role is critical', async () => {
    const r = await doctor(configFor(server, good.database, server.user, server.password));
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'critical', check: 'role' }));
    expect(r.code).toBe(2);
  });

  it('the kit and sql/rls-kit.sql on a fresh database leave nothing critical, and re-run cleanly', async () => {
    const a = await adminClient(server);
    await a.query('DROP DATABASE IF EXISTS doctor_kit WITH (FORCE)');
    await a.query('CREATE DATABASE doctor_kit');
    await a.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kit_pool') THEN CREATE ROLE kit_pool LOGIN PASSWORD 'kit-pool-pw'; END IF; END $$`);
    await a.end();
    const example = readFileSync(new URL('../../sql/rls-kit.sql', import.meta.url), 'utf8').replace(/app_pool/g, 'kit_pool').replace(/app_owner/g, 'kit_owner');
    const k = await adminClient(server, 'doctor_kit');
    const tenant = { setting: 'app.current_tenant', proof_setting: 'app.tenant_proof', proof_key: TEST_PROOF_KEY } as TenantConfig;
    for (let run = 0; run < 2; run++) {
      await applyKit(k, { tenant });
      await k.query(example);
    }
    await k.query('GRANT CONNECT ON DATABASE doctor_kit TO kit_pool');
    expect((await k.query('SELECT count(*)::int AS n FROM tenancy.proof_keys')).rows[0].n).toBe(1);
    await k.end();
    const r = await doctor(configFor(server, 'doctor_kit', 'kit_pool', 'kit-pool-pw'));
    expect(criticals(r)).toEqual([]);
    expect(r.code).toBe(0);
  });
});
