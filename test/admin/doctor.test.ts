// doctor against real databases: a hardened one (the sample schema, and sql/rls-kit.sql on a fresh
// database) has no critical finding; each kind of escape route is reported at the right level.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { doctorCommand, type Finding } from '../../src/admin/doctor.js';
import { adminClient, createFixtureDatabase, primaryServer, type PgServer } from '../support/pg.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pgtp-doctor-'));

function configFor(server: PgServer, database: string, user: string, password: string): string {
  const file = path.join(dir, `${database}-${user}.yaml`);
  writeFileSync(
    file,
    `backend: { host: ${server.host}, port: ${server.port}, database: ${database}, user: ${user}, password: "${password}", sslmode: disable }
auth: { jwt: { algorithms: [HS256], secret: "doctor-test-secret-that-is-32-bytes-long" } }
tenant: { search_path: "tenant_{tenant}, public" }
`,
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

describe('doctor', () => {
  let good: { database: string; poolUser: string; poolPassword: string };
  let bad: { database: string; poolUser: string; poolPassword: string };
  beforeAll(async () => {
    good = await createFixtureDatabase(server, 'doctor_good');
    bad = await createFixtureDatabase(server, 'doctor_bad');
    const a = await adminClient(server, bad.database);
    await a.query(`
      CREATE TABLE public.owned_by_pool (id int, tenant_id text);
      ALTER TABLE public.owned_by_pool OWNER TO ${bad.poolUser};
      CREATE TABLE public.shared_no_rls (id int);
      GRANT SELECT ON public.shared_no_rls TO ${bad.poolUser};
      DROP POLICY tenant_isolation ON public.orders;
      CREATE POLICY leaky ON public.orders USING (tenant_id = COALESCE(current_setting('app.current_tenant', true), tenant_id));
      CREATE POLICY unrelated ON public.orders USING (true);
      GRANT CREATE ON SCHEMA public TO ${bad.poolUser};
      CREATE FUNCTION public.become(t text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN PERFORM set_config('app.current_tenant', t, false); END $$;
    `);
    await a.end();
  });
  afterAll(() => undefined);

  it('the sample schema: no critical finding (per-tenant schemas without RLS are warnings), exit 0', async () => {
    const r = await doctor(configFor(server, good.database, good.poolUser, good.poolPassword));
    expect(r.findings.filter((f) => f.level === 'critical')).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'warning', check: 'rls_enabled', subject: 'tenant_acme.notes' }));
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'ok', check: 'role' }));
  });

  it('every escape route is reported at its level, and the exit code is 2', async () => {
    const r = await doctor(configFor(server, bad.database, bad.poolUser, bad.poolPassword));
    expect(r.code).toBe(2);
    const has = (level: string, check: string, subject?: string) =>
      expect(r.findings, `${level} ${check} ${subject ?? ''}`).toContainEqual(expect.objectContaining({ level, check, ...(subject ? { subject } : {}) }));
    has('critical', 'force_rls', 'public.owned_by_pool');
    has('critical', 'rls_enabled', 'public.shared_no_rls');
    has('critical', 'policy_fail_open', 'public.orders policy leaky');
    has('critical', 'policy_reference', 'public.orders policy unrelated');
    has('critical', 'schema_create', 'public');
    has('critical', 'set_config_function', 'public.become');
    expect(r.critical).toBe(r.findings.filter((f) => f.level === 'critical').length);
  });

  it('a superuser backend role is critical', async () => {
    const r = await doctor(configFor(server, good.database, server.user, server.password));
    expect(r.findings).toContainEqual(expect.objectContaining({ level: 'critical', check: 'role' }));
    expect(r.code).toBe(2);
  });

  it('sql/rls-kit.sql runs cleanly on a fresh database and leaves nothing critical', async () => {
    const a = await adminClient(server);
    await a.query('DROP DATABASE IF EXISTS doctor_kit WITH (FORCE)');
    await a.query('CREATE DATABASE doctor_kit');
    await a.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kit_pool') THEN CREATE ROLE kit_pool LOGIN PASSWORD 'kit-pool-pw'; END IF; END $$`);
    await a.end();
    const kit = readFileSync(new URL('../../sql/rls-kit.sql', import.meta.url), 'utf8').replace(/app_pool/g, 'kit_pool').replace(/app_owner/g, 'kit_owner');
    const k = await adminClient(server, 'doctor_kit');
    await k.query(kit);
    await k.query('GRANT CONNECT ON DATABASE doctor_kit TO kit_pool');
    await k.end();
    const r = await doctor(configFor(server, 'doctor_kit', 'kit_pool', 'kit-pool-pw'));
    expect(r.findings.filter((f) => f.level === 'critical')).toEqual([]);
    expect(r.code).toBe(0);
  });
});
