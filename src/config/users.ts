// Validation of static users (people and jobs that log in with a password, not a token) and of the
// authentication-failure rate limit.
import { parseVerifier, ScramError } from '../auth/scram.js';
import { ConfigError, type RateLimitConfig, type StaticUser } from './types.js';
import { int, isMapping, section, str } from './validate.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,62}$/;

export function validateUsers(raw: unknown, idPattern: RegExp, poolSize: number): StaticUser[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError('users', 'must be a list of { name, scram, tenant, pool_size, admin }');
  const seen = new Set<string>();
  return raw.map((entry, i) => {
    const key = `users[${i}]`;
    if (!isMapping(entry)) throw new ConfigError(key, 'must be a mapping with name, scram and tenant');
    const u = section(entry, key, ['name', 'scram', 'tenant', 'pool_size', 'admin']);
    const name = str(u, key, 'name');
    if (!NAME.test(name)) throw new ConfigError(`${key}.name`, `"${name.slice(0, 64)}" is not a valid user name`);
    if (seen.has(name)) throw new ConfigError(`${key}.name`, `user "${name}" is listed twice`);
    seen.add(name);
    const scramText = str(u, key, 'scram');
    let verifier;
    try {
      verifier = parseVerifier(scramText);
    } catch (e) {
      throw new ConfigError(`${key}.scram`, `${(e as ScramError).message}; make one with: pg-tenant-proxy hash-password`);
    }
    const tenantText = str(u, key, 'tenant');
    let tenant: string | null;
    if (tenantText === 'none') tenant = null;
    else if (idPattern.test(tenantText)) tenant = tenantText;
    else throw new ConfigError(`${key}.tenant`, `"${tenantText.slice(0, 64)}" is neither "none" nor a tenant id matching tenant.id_pattern`);
    const pool_size = int(u, key, 'pool_size', { min: 1, max: poolSize, def: poolSize });
    const admin = u.admin === undefined ? false : u.admin;
    if (typeof admin !== 'boolean') throw new ConfigError(`${key}.admin`, 'must be true or false');
    return { name, verifier, tenant, pool_size, admin };
  });
}

export function validateRateLimit(raw: unknown): RateLimitConfig {
  const r = section(raw, 'auth.rate_limit', ['max_failures', 'window_ms', 'max_tracked_addresses']);
  return {
    max_failures: int(r, 'auth.rate_limit', 'max_failures', { min: 0, max: 1_000_000, def: 20 }),
    window_ms: int(r, 'auth.rate_limit', 'window_ms', { min: 1, max: 86_400_000, def: 60_000 }),
    max_tracked_addresses: int(r, 'auth.rate_limit', 'max_tracked_addresses', { min: 1, max: 10_000_000, def: 100_000 }),
  };
}
