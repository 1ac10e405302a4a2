// `pg-tenant-proxy kit`: prints the tenancy kit (sql/tenancy-kit.sql) rendered for a config, or applies it
// to a database and stores the proxy's proof key there, so policies can trust tenancy.current_tenant().
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { loadConfigFile } from '../config/load.js';
import { ConfigError, type ProxyConfig } from '../config/types.js';
import { proofKeyId, proofKeyPads } from '../session/tenant-proof.js';

export const KIT_USAGE = `usage: pg-tenant-proxy kit [--config FILE]
         prints the tenancy kit SQL, rendered for the config's tenant.setting and tenant.proof_setting
       pg-tenant-proxy kit --apply --config FILE [--database-url URL] [--retire-other-keys]
         installs it in the database (idempotent) and stores the config's tenant.proof_key there

  --config FILE          the proxy's YAML configuration
  --apply                run the kit instead of printing it
  --database-url URL     a superuser in the proxy's database (the kit revokes built-in functions);
                         default: $DATABASE_URL, else the PG* environment variables (PGHOST, PGUSER, ...)
  --retire-other-keys    delete every other proof key (the last step of a key rotation: do it once every
                         proxy runs with the new tenant.proof_key)
  --help                 this text

Then protect tables as that superuser:
  SELECT tenancy.protect_table('public.orders', 'tenant_id');      -- a shared table with a tenant column
  SELECT tenancy.protect_schema('tenant_acme', 'acme');            -- every table of a per-tenant schema
and check with: pg-tenant-proxy doctor --config FILE
`;

const KIT_FILE = new URL('../../sql/tenancy-kit.sql', import.meta.url);
const GUC_NAME = /^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$/;

/** The kit's SQL with the setting names filled in (they are validated names, written as SQL literals). */
export function renderKit(settings: { tenantSetting: string; proofSetting: string }): string {
  for (const name of [settings.tenantSetting, settings.proofSetting]) {
    if (!GUC_NAME.test(name)) throw new Error(`not a two-part setting name: ${JSON.stringify(name)}`);
  }
  return readFileSync(KIT_FILE, 'utf8')
    .replaceAll('@TENANT_SETTING@', `'${settings.tenantSetting}'`)
    .replaceAll('@PROOF_SETTING@', `'${settings.proofSetting}'`);
}

export function kitFor(cfg: Pick<ProxyConfig, 'tenant'>): string {
  return renderKit({ tenantSetting: cfg.tenant.setting, proofSetting: cfg.tenant.proof_setting });
}

/** Stores a proof key (its padded forms, under its kid); keeps other keys unless `retireOthers`. */
export async function storeProofKey(c: pg.ClientBase, key: string, retireOthers: boolean): Promise<string> {
  const kid = proofKeyId(key);
  const { ipad, opad } = proofKeyPads(key);
  await c.query(
    'INSERT INTO tenancy.proof_keys (kid, ipad, opad) VALUES ($1, $2, $3) ON CONFLICT (kid) DO UPDATE SET ipad = EXCLUDED.ipad, opad = EXCLUDED.opad',
    [kid, ipad, opad],
  );
  if (retireOthers) await c.query('DELETE FROM tenancy.proof_keys WHERE kid <> $1', [kid]);
  return kid;
}

/** Installs the kit and stores the key, in one transaction: a failure leaves the database as it was. */
export async function applyKit(c: pg.ClientBase, cfg: Pick<ProxyConfig, 'tenant'>, opts: { retireOtherKeys?: boolean } = {}): Promise<string | null> {
  await c.query('BEGIN');
  try {
    await c.query(kitFor(cfg));
    const kid = cfg.tenant.proof_key !== undefined ? await storeProofKey(c, cfg.tenant.proof_key, opts.retireOtherKeys ?? false) : null;
    await c.query('COMMIT');
    return kid;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

export async function kitCommand(args: string[]): Promise<number> {
  let configPath: string | undefined;
  let apply = false;
  let url: string | undefined;
  let retire = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(KIT_USAGE);
      return 0;
    }
    if (a === '--config' || a === '-c') configPath = args[++i];
    else if (a === '--apply') apply = true;
    else if (a === '--database-url') url = args[++i];
    else if (a === '--retire-other-keys') retire = true;
    else {
      process.stderr.write(`pg-tenant-proxy kit: unknown argument "${a}"\n${KIT_USAGE}`);
      return 2;
    }
  }
  let cfg: Pick<ProxyConfig, 'tenant'> = { tenant: { setting: 'app.current_tenant', proof_setting: 'app.tenant_proof' } as ProxyConfig['tenant'] };
  if (configPath !== undefined) {
    try {
      cfg = loadConfigFile(configPath);
    } catch (e) {
      process.stderr.write(`pg-tenant-proxy kit: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
      return 2;
    }
  }
  if (!apply) {
    if (retire || url !== undefined) {
      process.stderr.write(`pg-tenant-proxy kit: --database-url and --retire-other-keys need --apply\n`);
      return 2;
    }
    process.stdout.write(kitFor(cfg));
    return 0;
  }
  if (configPath === undefined) {
    process.stderr.write(`pg-tenant-proxy kit: --apply needs --config FILE (for the setting names and tenant.proof_key)\n`);
    return 2;
  }
  if (cfg.tenant.proof_key === undefined) {
    process.stderr.write('pg-tenant-proxy kit: tenant.proof_key is not set in the config: the kit would install a boundary no proxy can pass; set it (openssl rand -base64 48) and re-run\n');
    return 2;
  }
  const c = new pg.Client(url ?? process.env.DATABASE_URL ? { connectionString: url ?? process.env.DATABASE_URL } : {});
  try {
    await c.connect();
    const kid = await applyKit(c, cfg, { retireOtherKeys: retire });
    const keys = (await c.query('SELECT count(*)::int AS n FROM tenancy.proof_keys')).rows[0].n as number;
    process.stdout.write(`tenancy kit installed in database "${c.database}"; proof key ${kid} stored (${keys} key(s) in tenancy.proof_keys)\n`);
    process.stdout.write('next: protect tables with tenancy.protect_table / tenancy.protect_schema, then run pg-tenant-proxy doctor --config FILE\n');
    return 0;
  } catch (e) {
    process.stderr.write(`pg-tenant-proxy kit: could not apply the kit: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await c.end().catch(() => undefined);
  }
}
