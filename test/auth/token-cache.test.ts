// The verified-token cache: bounded, never outlives a token's exp (with jose's clock tolerance) or its own
// maximum age, and a token verified once is refused again after it expires through the real verifier.
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { AuthError, createTokenVerifier } from '../../src/auth/jwt.js';
import { VerifiedTokenCache } from '../../src/auth/token-cache.js';
import type { JwtConfig, TenantConfig } from '../../src/config/types.js';

const SECRET = 'test-secret-that-is-at-least-32-bytes-long!';
const JWT: JwtConfig = { algorithms: ['HS256'], secret: SECRET, tenant_claim: 'tenant_id', max_token_bytes: 8192, clock_tolerance_s: 0 };
const TENANT = { setting: 'app.current_tenant', id_pattern: /^[a-z0-9][a-z0-9_]{0,47}$/, schema_map: new Map(), deny: [], readback_check: true, guard: true, protected_settings: [], guard_allow: [], proof_setting: 'app.tenant_proof', proof_max_ttl_s: 3600 } as TenantConfig;

describe('VerifiedTokenCache', () => {
  it('keeps at most maxEntries, dropping the least recently used', () => {
    const c = new VerifiedTokenCache<string>(2, 60_000, 0);
    const exp = Date.now() / 1000 + 100;
    c.set('a', { identity: 'A', expiresAt: exp });
    c.set('b', { identity: 'B', expiresAt: exp });
    expect(c.get('a')).toBe('A'); // a is now the most recent
    c.set('c', { identity: 'C', expiresAt: exp });
    expect(c.size).toBe(2);
    expect(c.get('b')).toBeNull();
    expect(c.get('a')).toBe('A');
    expect(c.get('c')).toBe('C');
  });

  it('misses once the token expired (minus the clock tolerance) or the entry is older than maxAgeMs', () => {
    const t0 = 1_000_000_000_000;
    const long = new VerifiedTokenCache<string>(10, 60_000, 2);
    long.set('x', { identity: 'X', expiresAt: t0 / 1000 + 10 }, t0);
    expect(long.get('x', t0 + 11_000)).toBe('X'); // within tolerance: exp + 2 s
    expect(long.get('x', t0 + 12_000)).toBeNull();
    const c = new VerifiedTokenCache<string>(10, 5_000, 2);
    c.set('y', { identity: 'Y', expiresAt: t0 / 1000 + 100 }, t0);
    expect(c.get('y', t0 + 5_000)).toBe('Y');
    expect(c.get('y', t0 + 5_001)).toBeNull();
  });

  it('keys on a digest of the token, never the token', () => {
    expect(VerifiedTokenCache.digest('a.b.c')).not.toContain('a.b.c');
    expect(VerifiedTokenCache.digest('a.b.c')).toBe(VerifiedTokenCache.digest('a.b.c'));
    expect(VerifiedTokenCache.digest('a.b.c')).not.toBe(VerifiedTokenCache.digest('a.b.d'));
  });
});

describe('createTokenVerifier with the cache', () => {
  it('a token verified (and cached) is refused as expired once its exp passes', async () => {
    const verify = createTokenVerifier(JWT, TENANT);
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(SECRET));
    expect((await verify(token)).tenant).toBe('acme');
    expect((await verify(token)).tenant).toBe('acme'); // served from the cache
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    const e = await verify(token).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(AuthError);
    expect((e as AuthError).reason).toBe('expired');
  });

  it('a forged token that differs in one byte from a cached one is checked, not served', async () => {
    const verify = createTokenVerifier(JWT, TENANT);
    const token = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
    await verify(token);
    const forged = token.slice(0, -2) + (token.endsWith('AA') ? 'AB' : 'AA');
    const e = await verify(forged).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(AuthError);
  });
});
