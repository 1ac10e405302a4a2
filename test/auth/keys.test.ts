// Tests token verification with real keys: every algorithm, forged tokens, algorithm confusion, key files, JWKS files and a served JWKS URL.
import { createHmac, generateKeyPairSync, sign as rsaSign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair, importPKCS8, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createTokenVerifier, type AuthFailureReason, type TokenVerifier } from '../../src/auth/jwt.js';
import type { JwtConfig, TenantConfig } from '../../src/config/types.js';

const TENANT: TenantConfig = { setting: 'app.current_tenant', id_pattern: /^[a-z0-9][a-z0-9_]{0,47}$/, schema_map: new Map(), deny: [], readback_check: true, guard: true, protected_settings: ['app.current_tenant', 'search_path', 'role', 'session_authorization'], guard_allow: [], proof_setting: 'app.tenant_proof', proof_max_ttl_s: 3600 };
const BASE = { tenant_claim: 'tenant_id', max_token_bytes: 8192, clock_tolerance_s: 0 };
const ASYMMETRIC = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
type Asym = (typeof ASYMMETRIC)[number];

const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

interface Pair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  pem: string;
  jwk: JWK;
}

async function pair(alg: Asym, kid?: string): Promise<Pair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), ...(kid !== undefined ? { kid } : {}) };
  return { privateKey, publicKey, pem: await exportSPKI(publicKey), jwk };
}

interface SignOpts {
  alg: string;
  kid?: string;
  exp?: number;
  nbf?: number;
  iss?: string;
  aud?: string;
}

function sign(payload: Record<string, unknown>, key: CryptoKey | Uint8Array, o: SignOpts): Promise<string> {
  const jwt = new SignJWT(payload)
    .setProtectedHeader({ alg: o.alg, ...(o.kid !== undefined ? { kid: o.kid } : {}) })
    .setIssuedAt()
    .setExpirationTime(o.exp ?? now() + 300);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  if (o.iss !== undefined) jwt.setIssuer(o.iss);
  if (o.aud !== undefined) jwt.setAudience(o.aud);
  return jwt.sign(key);
}

async function refused(verify: TokenVerifier, token: string, reason: AuthFailureReason, sqlstate: string, fragment: string): Promise<AuthError> {
  const err = await verify(token).then(
    () => {
      throw new Error('expected the token to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  const a = err as AuthError;
  expect({ reason: a.reason, sqlstate: a.sqlstate }).toEqual({ reason, sqlstate });
  expect(a.message).toContain(fragment);
  expect(a.message).not.toContain(token);
  return a;
}

const KID_UNKNOWN = 'token key id (kid) is not in the configured key set';

let dir: string;
const keys = {} as Record<Asym, Pair>;
const others = {} as Record<Asym, Pair>;

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgtp-keys-'));
  for (const alg of ASYMMETRIC) {
    keys[alg] = await pair(alg, `${alg}-main`);
    others[alg] = await pair(alg, `${alg}-main`); // same kid: a forger can copy the header
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('every algorithm: a valid token verifies, a forged one does not', () => {
  for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
    it(alg, async () => {
      const secret = `secret-for-${alg}-that-is-long-enough-0123456789`;
      const verify = createTokenVerifier({ ...BASE, algorithms: [alg], secret }, TENANT);
      const enc = new TextEncoder();
      expect((await verify(await sign({ tenant_id: 'acme' }, enc.encode(secret), { alg }))).tenant).toBe('acme');
      const forged = await sign({ tenant_id: 'acme' }, enc.encode(`${secret}-but-not-quite`), { alg });
      await refused(verify, forged, 'bad_signature', '28P01', 'signature is not valid');
    });
  }

  for (const alg of ASYMMETRIC) {
    it(`${alg} with public_key_file`, async () => {
      const verify = createTokenVerifier({ ...BASE, algorithms: [alg], public_key_file: file(`${alg}.pem`, keys[alg].pem) }, TENANT);
      const id = await verify(await sign({ tenant_id: 'acme', sub: 'u1' }, keys[alg].privateKey, { alg }));
      expect(id).toMatchObject({ tenant: 'acme', claims: { sub: 'u1' } });
      await refused(verify, await sign({ tenant_id: 'acme' }, others[alg].privateKey, { alg }), 'bad_signature', '28P01', 'signature is not valid');
    });

    it(`${alg} with jwks_file`, async () => {
      const path = file(`${alg}.jwks.json`, JSON.stringify({ keys: [keys[alg].jwk] }));
      const verify = createTokenVerifier({ ...BASE, algorithms: [alg], jwks_file: path }, TENANT);
      const kid = `${alg}-main`;
      expect((await verify(await sign({ tenant_id: 'acme' }, keys[alg].privateKey, { alg, kid }))).tenant).toBe('acme');
      // Without a kid the only key of the right type is used.
      expect((await verify(await sign({ tenant_id: 'acme' }, keys[alg].privateKey, { alg }))).tenant).toBe('acme');
      await refused(verify, await sign({ tenant_id: 'acme' }, others[alg].privateKey, { alg, kid }), 'bad_signature', '28P01', 'signature is not valid');
      await refused(verify, await sign({ tenant_id: 'acme' }, keys[alg].privateKey, { alg, kid: 'nope' }), 'bad_signature', '28P01', KID_UNKNOWN);
    });
  }

  it('RS256 and PS256 from one RSA public key file', async () => {
    const verify = createTokenVerifier({ ...BASE, algorithms: ['RS256', 'PS256'], public_key_file: file('rsa-both.pem', keys.RS256.pem) }, TENANT);
    const pkcs8 = await exportPKCS8(keys.RS256.privateKey);
    for (const alg of ['RS256', 'PS256']) {
      expect((await verify(await sign({ tenant_id: 'acme' }, await importPKCS8(pkcs8, alg), { alg }))).tenant).toBe('acme');
    }
  });

  it('a JWKS mixing key types picks the key by kid and type', async () => {
    const path = file('mixed.jwks.json', JSON.stringify({ keys: ASYMMETRIC.map((a) => ({ ...keys[a].jwk, kid: a })) }));
    const verify = createTokenVerifier({ ...BASE, algorithms: [...ASYMMETRIC], jwks_file: path }, TENANT);
    for (const alg of ASYMMETRIC) {
      expect((await verify(await sign({ tenant_id: alg.toLowerCase() }, keys[alg].privateKey, { alg, kid: alg }))).tenant).toBe(alg.toLowerCase());
    }
    // An RS256 token naming the EC key's kid finds no RSA key under it.
    await refused(verify, await sign({ tenant_id: 'acme' }, keys.RS256.privateKey, { alg: 'RS256', kid: 'ES256' }), 'bad_signature', '28P01', KID_UNKNOWN);
  });

  it('without a kid, each of several candidate keys is tried', async () => {
    const path = file('two-rsa.jwks.json', JSON.stringify({ keys: [{ ...others.RS256.jwk, kid: undefined }, { ...keys.RS256.jwk, kid: undefined }] }));
    const verify = createTokenVerifier({ ...BASE, algorithms: ['RS256'], jwks_file: path }, TENANT);
    expect((await verify(await sign({ tenant_id: 'acme' }, keys.RS256.privateKey, { alg: 'RS256' }))).tenant).toBe('acme');
    const third = await pair('RS256');
    await refused(verify, await sign({ tenant_id: 'acme' }, third.privateKey, { alg: 'RS256' }), 'bad_signature', '28P01', 'signature is not valid');
  });
});

describe('refused tokens with public keys', () => {
  let rs: TokenVerifier;
  let es: TokenVerifier;
  beforeAll(() => {
    rs = createTokenVerifier({ ...BASE, algorithms: ['RS256'], public_key_file: file('rs.pem', keys.RS256.pem) }, TENANT);
    es = createTokenVerifier(
      { ...BASE, algorithms: ['ES256'], public_key_file: file('es.pem', keys.ES256.pem), issuer: 'https://idp.example.com/', audience: 'pg' },
      TENANT,
    );
  });
  const esOpts = { alg: 'ES256', iss: 'https://idp.example.com/', aud: 'pg' };

  it('algorithm confusion: an HS256 token keyed with the RSA public key PEM', async () => {
    const pem = keys.RS256.pem;
    // With jose...
    const token = await sign({ tenant_id: 'acme' }, new TextEncoder().encode(pem), { alg: 'HS256' });
    await refused(rs, token, 'bad_token', '28P01', 'token algorithm "HS256" is not allowed; allowed: RS256');
    // ...and by hand, also keyed with the DER bytes and the trimmed PEM.
    const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ tenant_id: 'acme', exp: now() + 300 })}`;
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    for (const secret of [pem, pem.trim(), der]) {
      const sig = createHmac('sha256', secret).update(input).digest('base64url');
      await refused(rs, `${input}.${sig}`, 'bad_token', '28P01', '"HS256" is not allowed');
    }
    // The same with a JWKS holding the key.
    const viaJwks = createTokenVerifier({ ...BASE, algorithms: ['RS256'], jwks_file: file('rs.jwks.json', JSON.stringify({ keys: [keys.RS256.jwk] })) }, TENANT);
    await refused(viaJwks, token, 'bad_token', '28P01', '"HS256" is not allowed');
  });

  it('an algorithm the key fits but that is not configured (PS256 with RS256 configured)', async () => {
    const pss = await importPKCS8(await exportPKCS8(keys.RS256.privateKey), 'PS256');
    await refused(rs, await sign({ tenant_id: 'acme' }, pss, { alg: 'PS256' }), 'bad_token', '28P01', '"PS256" is not allowed');
  });

  it('alg none', async () => {
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ tenant_id: 'acme', exp: now() + 300 })}.`;
    await refused(rs, token, 'bad_token', '28P01', 'token algorithm "none" is not allowed');
  });

  it('expired', async () => {
    await refused(es, await sign({ tenant_id: 'acme' }, keys.ES256.privateKey, { ...esOpts, exp: now() - 60 }), 'expired', '28P01', 'token expired at');
  });

  it('not yet valid (nbf)', async () => {
    const token = await sign({ tenant_id: 'acme' }, keys.ES256.privateKey, { ...esOpts, nbf: now() + 600, exp: now() + 900 });
    await refused(es, token, 'not_yet_valid', '28P01', 'not valid before');
  });

  it('wrong issuer or audience', async () => {
    expect((await es(await sign({ tenant_id: 'acme' }, keys.ES256.privateKey, esOpts))).tenant).toBe('acme');
    await refused(es, await sign({ tenant_id: 'acme' }, keys.ES256.privateKey, { ...esOpts, iss: 'https://evil.example.com/' }), 'claim_mismatch', '28P01', 'auth.jwt.issuer');
    await refused(es, await sign({ tenant_id: 'acme' }, keys.ES256.privateKey, { ...esOpts, aud: 'other' }), 'claim_mismatch', '28P01', 'auth.jwt.audience');
  });

  it('missing tenant', async () => {
    await refused(rs, await sign({ sub: 'u1' }, keys.RS256.privateKey, { alg: 'RS256' }), 'no_tenant', '28000', 'token has no tenant claim "tenant_id"');
  });

  it('an RSA key under 2048 bits in a JWKS is never used', async () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const jwk = { ...small.publicKey.export({ format: 'jwk' }), kid: 'small' };
    const path = file('small.jwks.json', JSON.stringify({ keys: [jwk, keys.RS256.jwk] }));
    const verify = createTokenVerifier({ ...BASE, algorithms: ['RS256'], jwks_file: path }, TENANT);
    // jose will not sign with it either, so sign by hand.
    const input = `${b64url({ alg: 'RS256', kid: 'small' })}.${b64url({ tenant_id: 'acme', exp: now() + 300 })}`;
    const token = `${input}.${rsaSign('sha256', Buffer.from(input), small.privateKey).toString('base64url')}`;
    await refused(verify, token, 'bad_signature', '28P01', KID_UNKNOWN);
  });
});

describe('reload', () => {
  it('jwks_file: a new kid is accepted after reload; a broken file is refused and the old keys stay', async () => {
    const a = await pair('ES256', 'a');
    const b = await pair('ES256', 'b');
    const path = file('reload.jwks.json', JSON.stringify({ keys: [a.jwk] }));
    const verify = createTokenVerifier({ ...BASE, algorithms: ['ES256'], jwks_file: path }, TENANT);
    const tokenA = await sign({ tenant_id: 'acme' }, a.privateKey, { alg: 'ES256', kid: 'a' });
    const tokenB = await sign({ tenant_id: 'globex' }, b.privateKey, { alg: 'ES256', kid: 'b' });
    expect((await verify(tokenA)).tenant).toBe('acme');
    await refused(verify, tokenB, 'bad_signature', '28P01', KID_UNKNOWN);

    writeFileSync(path, JSON.stringify({ keys: [a.jwk, b.jwk] }));
    await refused(verify, tokenB, 'bad_signature', '28P01', KID_UNKNOWN); // not before reload
    await verify.reload();
    expect((await verify(tokenB)).tenant).toBe('globex');
    expect((await verify(tokenA)).tenant).toBe('acme');

    writeFileSync(path, '{ "keys": [');
    await expect(verify.reload()).rejects.toThrow(/not valid JSON/);
    writeFileSync(path, JSON.stringify({ keys: [{ ...b.jwk, d: 'secret' }] }));
    await expect(verify.reload()).rejects.toThrow(/private key material/);
    expect((await verify(tokenB)).tenant).toBe('globex');

    writeFileSync(path, JSON.stringify({ keys: [b.jwk] }));
    await verify.reload();
    await refused(verify, tokenA, 'bad_signature', '28P01', KID_UNKNOWN);
  });

  it('public_key_file: the rotated key takes over after reload', async () => {
    const a = await pair('EdDSA');
    const b = await pair('EdDSA');
    const path = file('reload.pem', a.pem);
    const verify = createTokenVerifier({ ...BASE, algorithms: ['EdDSA'], public_key_file: path }, TENANT);
    const tokenA = await sign({ tenant_id: 'acme' }, a.privateKey, { alg: 'EdDSA' });
    const tokenB = await sign({ tenant_id: 'acme' }, b.privateKey, { alg: 'EdDSA' });
    expect((await verify(tokenA)).tenant).toBe('acme');
    writeFileSync(path, b.pem);
    expect((await verify(tokenA)).tenant).toBe('acme');
    await verify.reload();
    expect((await verify(tokenB)).tenant).toBe('acme');
    await refused(verify, tokenA, 'bad_signature', '28P01', 'signature is not valid');

    writeFileSync(path, await exportPKCS8(b.privateKey));
    await expect(verify.reload()).rejects.toThrow(/private key/);
    writeFileSync(path, keys.RS256.pem);
    await expect(verify.reload()).rejects.toThrow(/cannot verify EdDSA/);
    expect((await verify(tokenB)).tenant).toBe('acme');
  });

  it('is a no-op for a shared secret', async () => {
    const verify = createTokenVerifier({ ...BASE, algorithms: ['HS256'], secret: 'x'.repeat(32) }, TENANT);
    await expect(verify.reload()).resolves.toBeUndefined();
  });
});

describe('jwks_url', () => {
  let server: Server;
  let url: string;
  let served: JWK[] = [];
  let status = 200;
  let requests = 0;
  let hang = false;

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests++;
      if (hang) return; // never answers
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? JSON.stringify({ keys: served }) : '{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const reset = (keysServed: JWK[]) => {
    served = keysServed;
    status = 200;
    requests = 0;
    hang = false;
  };
  const remote = (o: Partial<JwtConfig> = {}) =>
    createTokenVerifier(
      { ...BASE, algorithms: ['RS256', 'ES256'], jwks_url: url, jwks_cooldown_ms: 200, jwks_grace_ms: 3_600_000, jwks_timeout_ms: 2000, jwks_max_age_ms: 600_000, ...o },
      TENANT,
    );

  it('a new kid triggers one refetch; another unknown kid within the cooldown does not', async () => {
    const a = await pair('RS256', 'a');
    const b = await pair('ES256', 'b');
    const c = await pair('ES256', 'c');
    reset([a.jwk]);
    const verify = remote();
    expect(requests).toBe(0); // fetched on first use
    expect((await verify(await sign({ tenant_id: 'acme' }, a.privateKey, { alg: 'RS256', kid: 'a' }))).tenant).toBe('acme');
    expect(requests).toBe(1);
    expect((await verify(await sign({ tenant_id: 'acme' }, a.privateKey, { alg: 'RS256', kid: 'a' }))).tenant).toBe('acme');
    expect(requests).toBe(1); // cached

    await sleep(250); // past the cooldown
    served = [a.jwk, b.jwk];
    expect((await verify(await sign({ tenant_id: 'globex' }, b.privateKey, { alg: 'ES256', kid: 'b' }))).tenant).toBe('globex');
    expect(requests).toBe(2);

    served = [a.jwk, b.jwk, c.jwk];
    const tokenC = await sign({ tenant_id: 'initech' }, c.privateKey, { alg: 'ES256', kid: 'c' });
    await refused(verify, tokenC, 'bad_signature', '28P01', KID_UNKNOWN);
    await refused(verify, await sign({ tenant_id: 'x' }, c.privateKey, { alg: 'ES256', kid: 'zzz' }), 'bad_signature', '28P01', KID_UNKNOWN);
    expect(requests).toBe(2); // within the cooldown: no refetch

    await sleep(250);
    expect((await verify(tokenC)).tenant).toBe('initech');
    expect(requests).toBe(3);
  });

  it('concurrent logins with an unknown kid share one fetch', async () => {
    const a = await pair('ES256', 'a');
    reset([a.jwk]);
    const verify = remote();
    const token = await sign({ tenant_id: 'acme' }, a.privateKey, { alg: 'ES256', kid: 'a' });
    const ids = await Promise.all(Array.from({ length: 10 }, () => verify(token)));
    expect(ids.map((i) => i.tenant)).toEqual(Array(10).fill('acme'));
    expect(requests).toBe(1);
  });

  it('rotation: a removed key is accepted within the grace period, refused after it', async () => {
    const old = await pair('RS256', 'old');
    const next = await pair('RS256', 'next');
    reset([old.jwk]);
    const verify = remote({ jwks_cooldown_ms: 50, jwks_grace_ms: 400 });
    const tokenOld = await sign({ tenant_id: 'acme' }, old.privateKey, { alg: 'RS256', kid: 'old' });
    const tokenNext = await sign({ tenant_id: 'acme' }, next.privateKey, { alg: 'RS256', kid: 'next' });
    expect((await verify(tokenOld)).tenant).toBe('acme');

    served = [next.jwk]; // the old key disappears from the set
    await sleep(70);
    expect((await verify(tokenNext)).tenant).toBe('acme'); // refetch: the set now lacks "old"
    expect(requests).toBe(2);
    expect((await verify(tokenOld)).tenant).toBe('acme'); // still within its grace period
    expect(requests).toBe(2);

    await sleep(450);
    await refused(verify, tokenOld, 'bad_signature', '28P01', KID_UNKNOWN);
    expect((await verify(tokenNext)).tenant).toBe('acme');
  });

  it('a key rotated under the same kid: both verify during the grace period', async () => {
    const v1 = await pair('ES256', 'k');
    const v2 = await pair('ES256', 'k');
    reset([v1.jwk]);
    const verify = remote({ jwks_cooldown_ms: 0, jwks_max_age_ms: 1 });
    const t1 = await sign({ tenant_id: 'acme' }, v1.privateKey, { alg: 'ES256', kid: 'k' });
    const t2 = await sign({ tenant_id: 'acme' }, v2.privateKey, { alg: 'ES256', kid: 'k' });
    expect((await verify(t1)).tenant).toBe('acme');
    served = [v2.jwk];
    await sleep(5);
    expect((await verify(t2)).tenant).toBe('acme');
    expect((await verify(t1)).tenant).toBe('acme');
  });

  it('the set is refetched once older than jwks_max_age_ms, keeping the stale set if that fails', async () => {
    const a = await pair('ES256', 'a');
    reset([a.jwk]);
    const verify = remote({ jwks_cooldown_ms: 0, jwks_max_age_ms: 100 });
    const token = await sign({ tenant_id: 'acme' }, a.privateKey, { alg: 'ES256', kid: 'a' });
    expect((await verify(token)).tenant).toBe('acme');
    await sleep(150);
    status = 500;
    expect((await verify(token)).tenant).toBe('acme');
    expect(requests).toBe(2);
    await expect(verify.reload()).rejects.toThrow(/HTTP 500/);
    status = 200;
    served = [];
    await expect(verify.reload()).rejects.toThrow(/no signing key/);
    expect((await verify(token)).tenant).toBe('acme');
  });

  it('when no set could be fetched yet, logins fail with 57P03 until a fetch succeeds', async () => {
    const a = await pair('ES256', 'a');
    reset([a.jwk]);
    status = 503;
    const verify = remote({ jwks_cooldown_ms: 100 });
    const token = await sign({ tenant_id: 'acme' }, a.privateKey, { alg: 'ES256', kid: 'a' });
    const err = await refused(verify, token, 'keys_unavailable', '57P03', 'try again later');
    expect(err.message).not.toContain(url);
    await refused(verify, token, 'keys_unavailable', '57P03', 'signing keys could not be fetched');
    expect(requests).toBe(1); // the cooldown also spaces out failed fetches
    status = 200;
    await sleep(150);
    expect((await verify(token)).tenant).toBe('acme');
    expect(requests).toBe(2);
  });

  it('a fetch that does not answer within jwks_timeout_ms fails', async () => {
    const a = await pair('ES256', 'a');
    reset([a.jwk]);
    hang = true;
    const verify = remote({ jwks_timeout_ms: 150 });
    const token = await sign({ tenant_id: 'acme' }, a.privateKey, { alg: 'ES256', kid: 'a' });
    const started = Date.now();
    await refused(verify, token, 'keys_unavailable', '57P03', 'try again later');
    expect(Date.now() - started).toBeLessThan(1500);
    await expect(verify.reload()).rejects.toThrow(/within 150 ms/);
  });

  it('refuses HS256 tokens keyed with a served key', async () => {
    const a = await pair('RS256', 'a');
    reset([a.jwk]);
    const verify = remote();
    const token = await sign({ tenant_id: 'acme' }, new TextEncoder().encode(JSON.stringify(a.jwk)), { alg: 'HS256', kid: 'a' });
    await refused(verify, token, 'bad_token', '28P01', '"HS256" is not allowed');
    expect(requests).toBe(0); // refused before any key lookup
  });
});
