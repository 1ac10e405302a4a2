// `pg-tenant-proxy token --config FILE --tenant ID`: signs a token with the config's own auth.jwt.secret (HS*
// only), for trying the proxy out, smoke tests and the demo: a third tenant, an expired token, a role.
// Production tokens come from your identity provider; this command never prints the secret.
import { SignJWT } from 'jose';
import { loadConfigFile } from '../config/load.js';
import { ConfigError, type ProxyConfig } from '../config/types.js';

export const TOKEN_USAGE = `usage: pg-tenant-proxy token --config FILE --tenant ID [--expires-in DURATION] [--role ROLE]

Prints a token signed with the config's auth.jwt.secret (HS256/HS384/HS512 configs only), carrying the tenant
in auth.jwt.tenant_claim, and iss/aud when auth.jwt.issuer/audience are set.

  --config FILE          the proxy's config
  --tenant ID            tenant id (must match tenant.id_pattern)
  --expires-in DURATION  e.g. 30s, 15m, 12h, 7d (default 1h); a negative one (-5m) makes an expired token
  --role ROLE            a role for auth.jwt.role_claim (must be in auth.jwt.allowed_roles)
`;

const DURATION = /^(-?\d+)(s|m|h|d)$/;
const UNIT_S = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** Puts `value` at a dotted claim path (app_metadata.tenant_id → { app_metadata: { tenant_id } }). */
function setClaim(claims: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = claims;
  for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
  node[parts[parts.length - 1]] = value;
}

export async function mintToken(config: ProxyConfig, tenant: string, expiresInS: number, role?: string): Promise<string> {
  const jwt = config.auth.jwt;
  const alg = jwt.algorithms[0];
  if (jwt.secret === undefined || !alg.startsWith('HS')) {
    throw new Error(`this config verifies ${jwt.algorithms.join(', ')} tokens with a public key: mint them with the identity provider that holds the private key`);
  }
  if (!config.tenant.id_pattern.test(tenant)) throw new Error(`tenant "${tenant.slice(0, 64)}" does not match tenant.id_pattern ${config.tenant.id_pattern.source}: the proxy would refuse it`);
  const claims: Record<string, unknown> = {};
  setClaim(claims, jwt.tenant_claim, tenant);
  if (role !== undefined) {
    if (jwt.role_claim === undefined) throw new Error('--role needs auth.jwt.role_claim in the config');
    if (!jwt.allowed_roles?.includes(role)) throw new Error(`role "${role}" is not in auth.jwt.allowed_roles (${jwt.allowed_roles?.join(', ')})`);
    setClaim(claims, jwt.role_claim, role);
  }
  const now = Math.floor(Date.now() / 1000);
  let t = new SignJWT(claims).setProtectedHeader({ alg }).setIssuedAt(Math.min(now, now + expiresInS)).setExpirationTime(now + expiresInS);
  if (jwt.issuer !== undefined) t = t.setIssuer(jwt.issuer);
  if (jwt.audience !== undefined) t = t.setAudience(jwt.audience);
  return t.sign(new TextEncoder().encode(jwt.secret));
}

export async function tokenCommand(args: string[]): Promise<number> {
  let configPath: string | undefined;
  let tenant: string | undefined;
  let role: string | undefined;
  let expires = '1h';
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--config' || a === '-c') configPath = args[++i];
    else if (a === '--tenant') tenant = args[++i];
    else if (a === '--expires-in') expires = args[++i] ?? '';
    else if (a === '--role') role = args[++i];
    else {
      process.stderr.write(`pg-tenant-proxy token: unknown argument "${a}"\n${TOKEN_USAGE}`);
      return 2;
    }
  }
  const d = DURATION.exec(expires);
  if (!configPath || !tenant || !d) {
    process.stderr.write(`pg-tenant-proxy token: ${!configPath ? '--config FILE' : !tenant ? '--tenant ID' : '--expires-in like 15m, 12h or -5m'} is required\n${TOKEN_USAGE}`);
    return 2;
  }
  try {
    const config = loadConfigFile(configPath);
    process.stdout.write((await mintToken(config, tenant, Number(d[1]) * UNIT_S[d[2] as keyof typeof UNIT_S], role)) + '\n');
    return 0;
  } catch (e) {
    process.stderr.write(`pg-tenant-proxy token: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
    return e instanceof ConfigError ? 2 : 1;
  }
}
