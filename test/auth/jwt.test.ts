// Tests the JWT verifier: tenant extraction and the reason/SQLSTATE/message of every way a token is refused.
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { AuthError, createTokenVerifier, type AuthFailureReason } from '../../src/auth/jwt.js';
import type { JwtConfig, TenantConfig } from '../../src/config/types.js';

const SECRET = 'test-secret-that-is-at-least-32-bytes-long!';
const KEY = new TextEncoder().encode(SECRET);
const OTHER_KEY = new TextEncoder().encode('another-secret-that-is-at-least-32-bytes');

const JWT: JwtConfig = { algorithms: ['HS256'], secret: SECRET, tenant_claim: 'tenant_id', max_token_bytes: 8192, clock_tolerance_s: 0 };
const TENANT: TenantConfig = { setting: 'app.current_tenant', id_pattern: /^[a-z0-9][a-z0-9_]{0,47}$/, schema_map: new Map(), deny: [], readback_check: true, guard: true, protected_settings: ['app.current_tenant', 'search_path', 'role', 'session_authorization'], guard_allow: [], proof_setting: 'app.tenant_proof', proof_max_ttl_s: 3600 };

const now = () => Math.floor(Date.now() / 1000);

async function sign(payload: Record<string, unknown>, opts: { alg?: string; key?: Uint8Array; exp?: number | null } = {}): Promise<string> {
  const jwt = new SignJWT(payload).setProtectedHeader({ alg: opts.alg ?? 'HS256' }).setIssuedAt();
  if (opts.exp !== null) jwt.setExpirationTime(opts.exp ?? now() + 300);
  return jwt.sign(opts.key ?? KEY);
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

async function refused(
  token: string,
  reason: AuthFailureReason,
  sqlstate: string,
  fragment: string,
  jwt: Partial<JwtConfig> = {},
  tenant: Partial<TenantConfig> = {},
): Promise<AuthError> {
  const verify = createTokenVerifier({ ...JWT, ...jwt }, { ...TENANT, ...tenant });
  const err = await verify(token).then(
    () => {
      throw new Error('expected the token to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  const a = err as AuthError;
  expect(a.reason).toBe(reason);
  expect(a.sqlstate).toBe(sqlstate);
  expect(a.message).toContain(fragment);
  expect(a.message).not.toContain(token);
  expect(a.message).not.toContain(SECRET);
  return a;
}

describe('createTokenVerifier', () => {
  it('accepts a valid HS256 token and returns the tenant', async () => {
    const exp = now() + 300;
    const id = await createTokenVerifier(JWT, TENANT)(await sign({ tenant_id: 'acme', sub: 'u1' }, { exp }));
    expect(id.tenant).toBe('acme');
    expect(id.expiresAt).toBe(exp);
    expect(id.claims.sub).toBe('u1');
  });

  it('reads a nested claim by dotted path, and a literal key containing dots', async () => {
    const nested = createTokenVerifier({ ...JWT, tenant_claim: 'app_metadata.tenant_id' }, TENANT);
    expect((await nested(await sign({ app_metadata: { tenant_id: 'globex' } }))).tenant).toBe('globex');
    expect((await nested(await sign({ 'app_metadata.tenant_id': 'initech' }))).tenant).toBe('initech');
  });

  it('accepts an integer tenant id as a string', async () => {
    expect((await createTokenVerifier(JWT, TENANT)(await sign({ tenant_id: 42 }))).tenant).toBe('42');
  });

  it('accepts the other configured HS algorithms', async () => {
    const verify = createTokenVerifier({ ...JWT, algorithms: ['HS256', 'HS512'] }, TENANT);
    expect((await verify(await sign({ tenant_id: 'acme' }, { alg: 'HS512' }))).tenant).toBe('acme');
  });

  it('refuses an expired token', async () => {
    const exp = now() - 60;
    const err = await refused(await sign({ tenant_id: 'acme' }, { exp }), 'expired', '28P01', 'token expired at');
    expect(err.message).toContain(new Date(exp * 1000).toISOString());
  });

  it('honours clock_tolerance_s', async () => {
    const verify = createTokenVerifier({ ...JWT, clock_tolerance_s: 120 }, TENANT);
    expect((await verify(await sign({ tenant_id: 'acme' }, { exp: now() - 30 }))).tenant).toBe('acme');
  });

  it('refuses a token signed with another key', async () => {
    await refused(await sign({ tenant_id: 'acme' }, { key: OTHER_KEY }), 'bad_signature', '28P01', 'signature is not valid');
  });

  it('refuses alg none', async () => {
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ tenant_id: 'acme', exp: now() + 300 })}.`;
    await refused(token, 'bad_token', '28P01', 'token algorithm "none" is not allowed; allowed: HS256');
  });

  it('refuses an algorithm that is not configured', async () => {
    await refused(await sign({ tenant_id: 'acme' }, { alg: 'HS512' }), 'bad_token', '28P01', 'token algorithm "HS512" is not allowed; allowed: HS256');
  });

  it('refuses a token without exp', async () => {
    await refused(await sign({ tenant_id: 'acme' }, { exp: null }), 'bad_token', '28P01', '"exp"');
  });

  it('refuses a token that is not yet valid', async () => {
    const token = await new SignJWT({ tenant_id: 'acme' })
      .setProtectedHeader({ alg: 'HS256' })
      .setNotBefore(now() + 600)
      .setExpirationTime(now() + 900)
      .sign(KEY);
    await refused(token, 'not_yet_valid', '28P01', 'not valid before');
  });

  it('refuses garbage as "not a valid JWT"', async () => {
    await refused('hunter2', 'bad_token', '28P01', 'password is not a valid JWT');
    // Correctly signed, but the payload is not a JSON object.
    const input = `${b64url({ alg: 'HS256' })}.${Buffer.from('not json').toString('base64url')}`;
    const sig = createHmac('sha256', KEY).update(input).digest('base64url');
    await refused(`${input}.${sig}`, 'bad_token', '28P01', 'password is not a valid JWT');
  });

  it('refuses a token without a tenant claim', async () => {
    await refused(await sign({ sub: 'u1' }), 'no_tenant', '28000', 'token has no tenant claim "tenant_id"');
    await refused(await sign({ tenant_id: '' }), 'no_tenant', '28000', 'no tenant claim');
    await refused(await sign({ tenant_id: 1.5 }), 'no_tenant', '28000', 'no tenant claim');
    await refused(await sign({ tenant_id: ['acme'] }), 'no_tenant', '28000', 'no tenant claim');
    await refused(await sign({ app_metadata: 'x' }), 'no_tenant', '28000', '"app_metadata.tenant_id"', { tenant_claim: 'app_metadata.tenant_id' });
  });

  it('refuses a tenant id outside tenant.id_pattern, echoing it escaped and truncated', async () => {
    const err = await refused(await sign({ tenant_id: 'Acme; DROP' }), 'bad_tenant', '28000', 'does not match tenant.id_pattern');
    expect(err.message).toContain('"Acme; DROP"');
    const long = await refused(await sign({ tenant_id: `a\n${'b'.repeat(200)}` }), 'bad_tenant', '28000', 'tenant.id_pattern');
    expect(long.message).not.toContain('\n');
    expect(long.message).not.toContain('b'.repeat(100));
  });

  it('refuses an oversized token before parsing it', async () => {
    const token = await sign({ tenant_id: 'acme', pad: 'x'.repeat(500) });
    await refused(token, 'token_too_large', '28P01', 'limit is 256', { max_token_bytes: 256 });
    await refused('x'.repeat(300), 'token_too_large', '28P01', 'bytes', { max_token_bytes: 256 });
  });

  it('checks issuer and audience when configured', async () => {
    const signed = (iss: string, aud: string) =>
      new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(iss).setAudience(aud).setExpirationTime('5m').sign(KEY);
    const cfg = { issuer: 'https://auth.example.com/', audience: 'pg' };
    const verify = createTokenVerifier({ ...JWT, ...cfg }, TENANT);
    expect((await verify(await signed('https://auth.example.com/', 'pg'))).tenant).toBe('acme');
    await refused(await signed('https://evil.example.com/', 'pg'), 'claim_mismatch', '28P01', '"iss" claim does not match auth.jwt.issuer', cfg);
    await refused(await signed('https://auth.example.com/', 'other'), 'claim_mismatch', '28P01', '"aud" claim does not match auth.jwt.audience', cfg);
    await refused(await sign({ tenant_id: 'acme' }), 'claim_mismatch', '28P01', '"iss"', cfg);
  });
});

describe('role claim', () => {
  const ROLES: Partial<JwtConfig> = { role_claim: 'db_role', allowed_roles: ['tenant_reader', 'tenant_writer'] };

  it('returns an allowed role, and no role when the token has none', async () => {
    const verify = createTokenVerifier({ ...JWT, ...ROLES }, TENANT);
    const id = await verify(await sign({ tenant_id: 'acme', db_role: 'tenant_writer' }));
    expect(id.role).toBe('tenant_writer');
    const none = await verify(await sign({ tenant_id: 'acme' }));
    expect(none.role).toBeUndefined();
    expect('role' in none).toBe(false);
  });

  it('reads a nested role claim by dotted path', async () => {
    const verify = createTokenVerifier({ ...JWT, role_claim: 'app_metadata.role', allowed_roles: ['tenant_reader'] }, TENANT);
    expect((await verify(await sign({ tenant_id: 'acme', app_metadata: { role: 'tenant_reader' } }))).role).toBe('tenant_reader');
  });

  it('ignores the role claim when role_claim is not configured', async () => {
    const id = await createTokenVerifier(JWT, TENANT)(await sign({ tenant_id: 'acme', db_role: 'postgres' }));
    expect(id.role).toBeUndefined();
  });

  it('refuses a role outside allowed_roles', async () => {
    const err = await refused(
      await sign({ tenant_id: 'acme', db_role: 'postgres' }),
      'role_not_allowed',
      '28000',
      'role "postgres" in claim "db_role" is not in auth.jwt.allowed_roles',
      ROLES,
    );
    expect(err.message).toBe('role "postgres" in claim "db_role" is not in auth.jwt.allowed_roles');
    await refused(await sign({ tenant_id: 'acme', db_role: 'Tenant_Reader' }), 'role_not_allowed', '28000', '"Tenant_Reader"', ROLES);
    await refused(await sign({ tenant_id: 'acme', db_role: '' }), 'role_not_allowed', '28000', 'role ""', ROLES);
    await refused(await sign({ tenant_id: 'acme', db_role: ['tenant_reader'] }), 'role_not_allowed', '28000', 'is not in auth.jwt.allowed_roles', ROLES);
    await refused(await sign({ tenant_id: 'acme', db_role: null }), 'role_not_allowed', '28000', 'role "null"', ROLES);
    const long = await refused(await sign({ tenant_id: 'acme', db_role: `x\n${'y'.repeat(200)}` }), 'role_not_allowed', '28000', 'allowed_roles', ROLES);
    expect(long.message).not.toContain('\n');
    expect(long.message).not.toContain('y'.repeat(100));
  });

  it('checks the tenant before the role', async () => {
    await refused(await sign({ db_role: 'postgres' }), 'no_tenant', '28000', 'no tenant claim', ROLES);
  });
});

describe('TokenVerifier', () => {
  it('is callable and has reload()', async () => {
    const verify = createTokenVerifier(JWT, TENANT);
    expect(typeof verify.reload).toBe('function');
    await verify.reload();
    expect((await verify(await sign({ tenant_id: 'acme' }))).tenant).toBe('acme');
  });

  it('refuses to build a verifier without a usable key source', () => {
    expect(() => createTokenVerifier({ ...JWT, secret: undefined }, TENANT)).toThrow(/secret/);
    expect(() => createTokenVerifier({ ...JWT, algorithms: ['RS256'], secret: undefined }, TENANT)).toThrow(/public_key_file, jwks_file or jwks_url/);
    expect(() => createTokenVerifier({ ...JWT, algorithms: ['HS256', 'RS256'] }, TENANT)).toThrow(/mixes/);
  });
});
