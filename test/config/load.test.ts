// Tests the config loader: defaults, secret forms, and that each invalid input yields a one-line ConfigError naming its key.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/types.js';

const SECRET = 'x'.repeat(32);
const MINIMAL = `
backend: { database: app, user: app_pool, password: pw }
auth:
  jwt: { algorithms: [HS256], secret: "${SECRET}" }
`;

/** MINIMAL with `extra` YAML appended (later top-level sections must not repeat MINIMAL's). */
function cfg(extra = '', env: NodeJS.ProcessEnv = {}, baseDir?: string) {
  return parseConfig(MINIMAL + extra, env, baseDir);
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const err = e as ConfigError;
    expect(err.message).not.toContain('\n');
    expect(err.message.startsWith(`config: ${err.key}: `)).toBe(true);
    return err;
  }
  throw new Error('expected a ConfigError');
}

function expectError(text: string, key: string, ...fragments: string[]): ConfigError {
  const err = configError(() => parseConfig(text, {}));
  expect(err.key).toBe(key);
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

/** Replaces a jwt/backend field in MINIMAL-like text. */
function withJwt(fields: string): string {
  return `
backend: { database: app, user: app_pool, password: pw }
auth:
  jwt: { ${fields} }
`;
}

describe('defaults', () => {
  it('fills every optional key', () => {
    const c = cfg();
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 6432, max_client_conn: 1000, startup_timeout_ms: 10000, plaintext_tokens: 'refuse', client_idle_timeout_ms: 0 });
    expect(c.admin).toEqual({ host: '127.0.0.1', port: 9187 });
    expect(c.backend).toEqual({ host: '127.0.0.1', port: 5432, database: 'app', user: 'app_pool', password: 'pw', connect_timeout_ms: 5000, sslmode: 'prefer' });
    expect(c.pool).toEqual({ size: 20, acquire_timeout_ms: 5000, max_waiting: 10000, idle_timeout_ms: 600000, reset_timeout_ms: 5000, reset_delay_ms: 50, mode: 'transaction', max_prepared_statements: 1000, max_prepared_statement_bytes: 16777216, max_prepared_statement_bytes_total: 268435456, partial_message_timeout_ms: 5000, overflow: 0, overflow_idle_ms: 30000, min_idle: 0, pre_ping: false, pre_ping_after_ms: 5000, max_lifetime_ms: 0, tenant_max_backends: 0, fairness: 'tenant', alert_threshold: 0.8, alert_recovery_ms: 5000, query_timeout_ms: 0, idle_in_transaction_timeout_ms: 0 });
    expect(c.shutdown).toEqual({ drain_timeout_ms: 25000 });
    expect(c.auth.jwt).toEqual({ algorithms: ['HS256'], secret: SECRET, tenant_claim: 'tenant_id', max_token_bytes: 8192, clock_tolerance_s: 0 });
    expect(c.tenant.setting).toBe('app.current_tenant');
    expect(c.tenant.search_path).toBeUndefined();
    expect('search_path' in c.tenant).toBe(false);
    expect(c.tenant.id_pattern).toBeInstanceOf(RegExp);
    expect(c.tenant.id_pattern.source).toBe('^[a-z0-9][a-z0-9_]{0,47}$');
    expect(c.tenant.id_pattern.flags).toBe('');
    expect(c.log.level).toBe('info');
  });

  it('keeps explicit values and allows admin.port 0, pool.idle_timeout_ms 0 and an empty backend password', () => {
    const c = parseConfig(
      `
listen: { host: 0.0.0.0, port: 7000 }
admin: { port: 0 }
backend: { host: db, port: 5433, database: d, user: u, password: "" }
pool: { size: 3, idle_timeout_ms: 0, max_waiting: 0 }
auth: { jwt: { algorithms: [HS256, HS512], secret: "${SECRET}", issuer: iss, audience: aud, tenant_claim: app_metadata.tenant_id } }
tenant: { setting: App.Current_Tenant, search_path: '"$user", tenant_{tenant}, public' }
log: { level: debug }
`,
      {},
    );
    expect(c.listen.port).toBe(7000);
    expect(c.admin.port).toBe(0);
    expect(c.backend.password).toBe('');
    expect(c.pool).toMatchObject({ size: 3, idle_timeout_ms: 0, max_waiting: 0 });
    expect(c.auth.jwt).toMatchObject({ algorithms: ['HS256', 'HS512'], issuer: 'iss', audience: 'aud', tenant_claim: 'app_metadata.tenant_id' });
    expect(c.tenant.setting).toBe('app.current_tenant');
    expect(c.tenant.search_path).toBe('"$user", tenant_{tenant}, public');
    expect(c.log.level).toBe('debug');
  });

  it('treats an empty section as all defaults', () => {
    expect(cfg('listen:\npool:\n').listen.port).toBe(6432);
  });
});

describe('secrets', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgtp-config-'));
    writeFileSync(join(dir, 'jwt-secret'), `${'f'.repeat(40)}\n`);
    writeFileSync(join(dir, 'pw'), 'from-file\r\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads { env: VAR }', () => {
    const c = parseConfig(
      `
backend: { database: d, user: u, password: { env: PW } }
auth: { jwt: { algorithms: [HS256], secret: { env: JWT_SECRET } } }
`,
      { PW: 'from-env', JWT_SECRET: 'e'.repeat(32) },
    );
    expect(c.backend.password).toBe('from-env');
    expect(c.auth.jwt.secret).toBe('e'.repeat(32));
  });

  it('reads { file: path } relative to baseDir and trims the trailing newline', () => {
    const c = parseConfig(
      `
backend: { database: d, user: u, password: { file: pw } }
auth: { jwt: { algorithms: [HS256], secret: { file: ${join(dir, 'jwt-secret')} } } }
`,
      {},
      dir,
    );
    expect(c.backend.password).toBe('from-file');
    expect(c.auth.jwt.secret).toBe('f'.repeat(40));
  });

  it('loadConfigFile resolves secret files against the config file directory', () => {
    const path = join(dir, 'proxy.yaml');
    writeFileSync(path, 'backend: { database: d, user: u, password: { file: pw } }\nauth: { jwt: { algorithms: [HS256], secret: { file: jwt-secret } } }\n');
    const c = loadConfigFile(path, {});
    expect(c.backend.password).toBe('from-file');
  });

  it('names the variable when it is not set', () => {
    expectError(withJwt('algorithms: [HS256], secret: { env: NOPE_SECRET }'), 'auth.jwt.secret.env', 'NOPE_SECRET', 'not set');
  });

  it('names the path when the file cannot be read', () => {
    const err = configError(() => parseConfig(withJwt('algorithms: [HS256], secret: { file: missing-secret }'), {}, dir));
    expect(err.key).toBe('auth.jwt.secret.file');
    expect(err.message).toContain(join(dir, 'missing-secret'));
    expect(err.message).toContain('ENOENT');
  });

  it('refuses other shapes without echoing the value', () => {
    const err = expectError(withJwt('algorithms: [HS256], secret: 123456789012345678901234567890123'), 'auth.jwt.secret', 'env', 'file');
    expect(err.message).not.toContain('1234567890');
    expectError(withJwt(`algorithms: [HS256], secret: { vault: x }`), 'auth.jwt.secret', '"vault"');
    expectError(withJwt(`algorithms: [HS256], secret: { env: A, file: b }`), 'auth.jwt.secret');
  });

  it('requires the secrets', () => {
    expectError(withJwt('algorithms: [HS256]'), 'auth.jwt.secret', 'required');
    expectError(`backend: { database: d, user: u }\nauth: { jwt: { algorithms: [HS256], secret: "${SECRET}" } }`, 'backend.password', 'required');
  });

  it('requires an HS secret of at least 32 bytes and never echoes it', () => {
    const err = expectError(withJwt('algorithms: [HS256], secret: short-secret-value'), 'auth.jwt.secret', 'at least 32 bytes');
    expect(err.message).not.toContain('short-secret-value');
  });
});

describe('errors name the key', () => {
  it('missing required keys', () => {
    expectError(`auth: { jwt: { algorithms: [HS256], secret: "${SECRET}" } }`, 'backend.database', 'required');
    expectError(`backend: { database: d, password: p }\nauth: { jwt: { algorithms: [HS256], secret: "${SECRET}" } }`, 'backend.user', 'required');
    expectError(`backend: { database: d, user: u, password: p }`, 'auth.jwt', 'required');
    expectError(withJwt(`secret: "${SECRET}"`), 'auth.jwt.algorithms', 'required', 'HS256');
  });

  it('types and ranges', () => {
    expect(cfg('listen: { port: 0 }').listen.port).toBe(0);
    expectError(MINIMAL + 'listen: { port: 70000 }', 'listen.port', '0 to 65535');
    expectError(MINIMAL + 'listen: { port: "6432" }', 'listen.port', 'integer');
    expectError(MINIMAL + 'admin: { port: -1 }', 'admin.port', '0 to 65535');
    expectError(MINIMAL + 'pool: { size: 0 }', 'pool.size', '1 to 10000');
    expectError(MINIMAL + 'pool: { size: 10001 }', 'pool.size');
    expectError(MINIMAL + 'pool: { size: 2.5 }', 'pool.size', 'integer');
    expectError(MINIMAL + 'pool: { acquire_timeout_ms: 0 }', 'pool.acquire_timeout_ms');
    expectError(MINIMAL + 'pool: { reset_timeout_ms: 9999999999 }', 'pool.reset_timeout_ms');
    expectError(MINIMAL + 'listen: { host: "" }', 'listen.host', 'non-empty');
    expectError(MINIMAL + 'log: { level: verbose }', 'log.level', 'info', 'debug');
    expectError(MINIMAL + 'listen: [1, 2]', 'listen', 'mapping');
    expectError('- a\n- b', '(top level)', 'mapping');
  });

  it('unknown keys, with a suggestion', () => {
    expectError(MINIMAL + 'listen: { prot: 1 }', 'listen.prot', 'unknown key', 'did you mean "port"');
    expectError(MINIMAL + 'pools: { size: 1 }', 'pools', 'unknown key', '"pool"');
    expectError(withJwt(`algorithms: [HS256], secret: "${SECRET}", tenantclaim: x`), 'auth.jwt.tenantclaim', 'unknown key', 'tenant_claim');
    expectError(MINIMAL + 'zzz: 1', 'zzz', 'unknown key');
  });

  it('algorithms', () => {
    expectError(withJwt(`algorithms: [], secret: "${SECRET}"`), 'auth.jwt.algorithms', 'non-empty');
    expectError(withJwt(`algorithms: HS256, secret: "${SECRET}"`), 'auth.jwt.algorithms', 'list');
    expectError(withJwt(`algorithms: [none], secret: "${SECRET}"`), 'auth.jwt.algorithms[0]', 'supported: HS256, HS384, HS512');
    expectError(withJwt(`algorithms: [HS256, RS999], secret: "${SECRET}"`), 'auth.jwt.algorithms[1]', '"RS999"', 'supported: HS256, HS384, HS512, RS256, PS256, ES256, EdDSA');
  });

  it('tenant.setting', () => {
    expectError(MINIMAL + 'tenant: { setting: current_tenant }', 'tenant.setting', 'two-part');
    expectError(MINIMAL + 'tenant: { setting: "app.tenant; drop" }', 'tenant.setting');
    expectError(MINIMAL + 'tenant: { setting: a.b.c }', 'tenant.setting');
  });

  it('tenant.id_pattern must compile and be anchored', () => {
    expectError(MINIMAL + 'tenant: { id_pattern: "^[a-z$" }', 'tenant.id_pattern', 'not a valid regular expression');
    expectError(MINIMAL + 'tenant: { id_pattern: "[a-z]+" }', 'tenant.id_pattern', 'anchored with ^');
    expectError(MINIMAL + 'tenant: { id_pattern: "^[a-z]+" }', 'tenant.id_pattern', 'anchored');
    expectError(MINIMAL + 'tenant: { id_pattern: "^[a-z]+\\\\$" }', 'tenant.id_pattern', 'anchored');
    expectError(MINIMAL + 'tenant: { id_pattern: "^[a-z]+|admin$" }', 'tenant.id_pattern', 'anchored');
    const c = cfg('tenant: { id_pattern: "^(?:[a-z]+|t[0-9]+)$" }');
    expect(c.tenant.id_pattern.test('t42')).toBe(true);
    expect(c.tenant.id_pattern.test('t42x!')).toBe(false);
    expect(cfg('tenant: { id_pattern: "^[a|b]+$" }').tenant.id_pattern.test('a|b')).toBe(true);
  });

  it('tenant.search_path template', () => {
    for (const ok of ['public', 'tenant_{tenant}', '{tenant}', '"$user", public', ' t_{tenant}_data ,  shared$1 ']) {
      expect(cfg(`tenant: { search_path: '${ok}' }`).tenant.search_path).toBe(ok);
    }
    for (const bad of ['Public', 'a-b', '{tenant}_{tenant}', 'x{tenant}y z', 'public,', '"public"', '{tenant}; drop', '$user']) {
      expectError(MINIMAL + `tenant: { search_path: '${bad}' }`, 'tenant.search_path', 'not allowed');
    }
    expectError(MINIMAL + `tenant: { search_path: '' }`, 'tenant.search_path', 'non-empty');
  });

  it('tenant_claim paths', () => {
    expectError(withJwt(`algorithms: [HS256], secret: "${SECRET}", tenant_claim: "a..b"`), 'auth.jwt.tenant_claim', 'dotted path');
  });
});

describe('YAML and files', () => {
  it('names the line and column of a syntax error', () => {
    const err = configError(() => parseConfig('listen:\n  port: [1\nadmin: {}\n', {}));
    expect(err.message).toMatch(/YAML syntax error at line \d+, column \d+/);
  });

  it('refuses duplicate keys', () => {
    const err = configError(() => parseConfig('log: { level: info }\nlog: { level: debug }\n', {}));
    expect(err.message).toContain('line 2');
  });

  it('names the path and OS error when the file cannot be read', () => {
    const err = configError(() => loadConfigFile('/nonexistent/pgtp.yaml', {}));
    expect(err.key).toBe('--config');
    expect(err.message).toContain('/nonexistent/pgtp.yaml');
    expect(err.message).toContain('ENOENT');
  });

  it('config/example.yaml parses when its secrets are provided', () => {
    const path = fileURLToPath(new URL('../../config/example.yaml', import.meta.url));
    const c = loadConfigFile(path, { PGTP_BACKEND_PASSWORD: 'pw', PGTP_JWT_SECRET: 'k'.repeat(48) });
    expect(c.backend).toMatchObject({ database: 'app', user: 'app_pool', password: 'pw' });
    expect(c.auth.jwt.algorithms).toEqual(['HS256']);
    expect(c.tenant.search_path).toBe('tenant_{tenant}, public');
    expect(c.tenant.id_pattern.source).toBe('^[a-z0-9][a-z0-9_]{0,47}$');
    // Without the variables, the error names the first missing one.
    expectErrorFromFile(path);
  });
});

function expectErrorFromFile(path: string): void {
  const err = configError(() => loadConfigFile(path, {}));
  expect(err.key).toBe('backend.password.env');
  expect(err.message).toContain('PGTP_BACKEND_PASSWORD');
}

describe('auth.jwt public-key algorithms and roles', () => {
  let dir: string;
  const path = (name: string) => join(dir, name);
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgtp-config-keys-'));
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const ec = await generateKeyPair('ES256', { extractable: true });
    writeFileSync(path('rsa.pem'), await exportSPKI(rsa.publicKey));
    writeFileSync(path('rsa-private.pem'), await exportPKCS8(rsa.privateKey));
    writeFileSync(path('ec.pem'), await exportSPKI(ec.publicKey));
    writeFileSync(path('small.pem'), generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'pem', type: 'spki' }));
    writeFileSync(path('garbage.pem'), 'not a key');
    const rsaJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'r1' };
    const ecJwk = { ...(await exportJWK(ec.publicKey)), kid: 'e1' };
    writeFileSync(path('keys.json'), JSON.stringify({ keys: [rsaJwk, ecJwk] }));
    writeFileSync(path('ec-only.json'), JSON.stringify({ keys: [ecJwk] }));
    writeFileSync(path('private.json'), JSON.stringify({ keys: [await exportJWK(rsa.privateKey)] }));
    writeFileSync(path('oct.json'), JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));
    writeFileSync(path('bad.json'), '{ "keys": ');
    writeFileSync(path('nokeys.json'), '{ "kids": [] }');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const jwt = (fields: string) => parseConfig(withJwt(fields), {}, dir).auth.jwt;
  const jwtError = (fields: string, key: string, ...fragments: string[]) => {
    const err = configError(() => parseConfig(withJwt(fields), {}, dir));
    expect(err.key).toBe(key);
    for (const f of fragments) expect(err.message).toContain(f);
    return err;
  };

  it('public_key_file resolves against the config directory', () => {
    expect(jwt('algorithms: [RS256, PS256], public_key_file: rsa.pem')).toEqual({
      algorithms: ['RS256', 'PS256'],
      public_key_file: path('rsa.pem'),
      tenant_claim: 'tenant_id',
      max_token_bytes: 8192,
      clock_tolerance_s: 0,
    });
    expect(jwt('algorithms: [ES256], public_key_file: ec.pem').public_key_file).toBe(path('ec.pem'));
  });

  it('public_key_file must hold a public key fit for every algorithm', () => {
    jwtError('algorithms: [RS256], public_key_file: missing.pem', 'auth.jwt.public_key_file', 'ENOENT');
    jwtError('algorithms: [RS256], public_key_file: garbage.pem', 'auth.jwt.public_key_file', 'BEGIN PUBLIC KEY');
    jwtError('algorithms: [RS256], public_key_file: rsa-private.pem', 'auth.jwt.public_key_file', 'private key');
    jwtError('algorithms: [RS256, ES256], public_key_file: rsa.pem', 'auth.jwt.public_key_file', 'RSA key', 'cannot verify ES256');
    jwtError('algorithms: [EdDSA], public_key_file: ec.pem', 'auth.jwt.public_key_file', 'EC key', 'cannot verify EdDSA');
    jwtError('algorithms: [RS256], public_key_file: small.pem', 'auth.jwt.public_key_file', '1024 bits', 'at least 2048');
  });

  it('jwks_file', () => {
    expect(jwt('algorithms: [RS256, ES256], jwks_file: keys.json')).toMatchObject({ jwks_file: path('keys.json') });
    jwtError('algorithms: [RS256], jwks_file: ec-only.json', 'auth.jwt.jwks_file', 'no signing key usable with RS256');
    jwtError('algorithms: [RS256], jwks_file: private.json', 'auth.jwt.jwks_file', 'private key material');
    jwtError('algorithms: [RS256], jwks_file: oct.json', 'auth.jwt.jwks_file', 'shared-secret (oct)');
    jwtError('algorithms: [RS256], jwks_file: bad.json', 'auth.jwt.jwks_file', 'not valid JSON');
    jwtError('algorithms: [RS256], jwks_file: nokeys.json', 'auth.jwt.jwks_file', '"keys" list');
    jwtError('algorithms: [RS256], jwks_file: nope.json', 'auth.jwt.jwks_file', 'ENOENT');
  });

  it('jwks_url with its defaults, or explicit timings', () => {
    expect(jwt('algorithms: [ES256], jwks_url: "https://idp.example.com/.well-known/jwks.json"')).toEqual({
      algorithms: ['ES256'],
      jwks_url: 'https://idp.example.com/.well-known/jwks.json',
      jwks_cooldown_ms: 30000,
      jwks_grace_ms: 3600000,
      jwks_timeout_ms: 5000,
      jwks_max_age_ms: 600000,
      tenant_claim: 'tenant_id',
      max_token_bytes: 8192,
      clock_tolerance_s: 0,
    });
    expect(
      jwt('algorithms: [RS256], jwks_url: "http://127.0.0.1:8080/jwks", jwks_cooldown_ms: 0, jwks_grace_ms: 0, jwks_timeout_ms: 100, jwks_max_age_ms: 60000'),
    ).toMatchObject({ jwks_url: 'http://127.0.0.1:8080/jwks', jwks_cooldown_ms: 0, jwks_grace_ms: 0, jwks_timeout_ms: 100, jwks_max_age_ms: 60000 });
    expect(jwt('algorithms: [RS256], jwks_url: "http://localhost/jwks"').jwks_url).toBe('http://localhost/jwks');
  });

  it('jwks_url must be https (or loopback http) and its timings need it', () => {
    jwtError('algorithms: [RS256], jwks_url: "http://idp.example.com/jwks"', 'auth.jwt.jwks_url', 'https://');
    jwtError('algorithms: [RS256], jwks_url: "ftp://idp.example.com/jwks"', 'auth.jwt.jwks_url', 'https://');
    jwtError('algorithms: [RS256], jwks_url: "not a url"', 'auth.jwt.jwks_url', 'not a valid URL');
    jwtError('algorithms: [RS256], jwks_url: "https://u:p@idp.example.com/jwks"', 'auth.jwt.jwks_url', 'credentials');
    jwtError('algorithms: [RS256], jwks_url: "https://idp.example.com/jwks", jwks_cooldown_ms: -1', 'auth.jwt.jwks_cooldown_ms', 'integer');
    jwtError('algorithms: [RS256], jwks_url: "https://idp.example.com/jwks", jwks_timeout_ms: 0', 'auth.jwt.jwks_timeout_ms', 'integer');
    jwtError('algorithms: [RS256], public_key_file: rsa.pem, jwks_grace_ms: 1000', 'auth.jwt.jwks_grace_ms', 'only applies with auth.jwt.jwks_url');
  });

  it('exactly one key source, and no secret, for public-key algorithms', () => {
    jwtError('algorithms: [RS256]', 'auth.jwt', 'public_key_file, jwks_file or jwks_url');
    jwtError('algorithms: [RS256], public_key_file: rsa.pem, jwks_file: keys.json', 'auth.jwt.jwks_file', 'only one key source', 'public_key_file');
    jwtError(`algorithms: [RS256], public_key_file: rsa.pem, secret: "${SECRET}"`, 'auth.jwt.secret', 'only for HS256, HS384, HS512');
  });

  it('HS* algorithms take the secret, never a key source', () => {
    jwtError(`algorithms: [HS256], secret: "${SECRET}", public_key_file: rsa.pem`, 'auth.jwt.public_key_file', 'only for public-key algorithms', 'auth.jwt.secret');
    jwtError(`algorithms: [HS512], secret: "${SECRET}", jwks_url: "https://idp.example.com/jwks"`, 'auth.jwt.jwks_url', 'only for public-key');
    jwtError(`algorithms: [HS256], secret: "${SECRET}", jwks_timeout_ms: 100`, 'auth.jwt.jwks_timeout_ms', 'only for public-key');
  });

  it('refuses mixing HS* and public-key algorithms (algorithm confusion)', () => {
    const err = jwtError(`algorithms: [RS256, HS256], secret: "${SECRET}", public_key_file: rsa.pem`, 'auth.jwt.algorithms', 'mixes', 'HS256', 'RS256', 'algorithm confusion');
    expect(err.message).toContain('public key as the secret');
    jwtError('algorithms: [ES256, HS384], jwks_file: keys.json', 'auth.jwt.algorithms', 'algorithm confusion');
  });

  it('role_claim and allowed_roles', () => {
    const base = `algorithms: [HS256], secret: "${SECRET}"`;
    expect(jwt(`${base}, role_claim: app_metadata.role, allowed_roles: [tenant_reader, _w1, tenant_reader]`)).toMatchObject({
      role_claim: 'app_metadata.role',
      allowed_roles: ['tenant_reader', '_w1'],
    });
    expect('role_claim' in jwt(base)).toBe(false);
    expect('allowed_roles' in jwt(base)).toBe(false);
    jwtError(`${base}, role_claim: role`, 'auth.jwt.allowed_roles', 'required with auth.jwt.role_claim');
    jwtError(`${base}, allowed_roles: [r]`, 'auth.jwt.role_claim', 'required with auth.jwt.allowed_roles');
    jwtError(`${base}, role_claim: role, allowed_roles: []`, 'auth.jwt.allowed_roles', 'non-empty list');
    jwtError(`${base}, role_claim: role, allowed_roles: reader`, 'auth.jwt.allowed_roles', 'non-empty list');
    jwtError(`${base}, role_claim: role, allowed_roles: [reader, Admin]`, 'auth.jwt.allowed_roles[1]', 'lowercase identifier', '"Admin"');
    jwtError(`${base}, role_claim: role, allowed_roles: ["1x"]`, 'auth.jwt.allowed_roles[0]', 'identifier');
    jwtError(`${base}, role_claim: role, allowed_roles: ["a-b"]`, 'auth.jwt.allowed_roles[0]', 'identifier');
    jwtError(`${base}, role_claim: role, allowed_roles: [${'r'.repeat(64)}]`, 'auth.jwt.allowed_roles[0]', 'identifier');
    expect(jwt(`${base}, role_claim: role, allowed_roles: [${'r'.repeat(63)}]`).allowed_roles).toEqual(['r'.repeat(63)]);
    jwtError(`${base}, role_claim: "a..b", allowed_roles: [r]`, 'auth.jwt.role_claim', 'dotted path');
  });
});

describe('tenant proof keys', () => {
  const KEY = 'p'.repeat(40);
  it('defaults: no key, app.tenant_proof, 3600 s; the proof setting is protected from the guard', () => {
    const c = parseConfig(MINIMAL);
    expect(c.tenant.proof_key).toBeUndefined();
    expect(c.tenant.proof_setting).toBe('app.tenant_proof');
    expect(c.tenant.proof_max_ttl_s).toBe(3600);
    expect(c.tenant.protected_settings).toContain('app.tenant_proof');
  });

  it('takes the key inline, from the environment or a file, and never shows it in errors', () => {
    expect(parseConfig(MINIMAL + `tenant: { proof_key: "${KEY}", proof_setting: My.Proof, proof_max_ttl_s: 60 }`).tenant).toMatchObject({ proof_key: KEY, proof_setting: 'my.proof', proof_max_ttl_s: 60 });
    expect(parseConfig(MINIMAL + 'tenant: { proof_key: { env: PROOF } }', { PROOF: KEY }).tenant.proof_key).toBe(KEY);
    const err = expectError(MINIMAL + 'tenant: { proof_key: "short-secret" }', 'tenant.proof_key', 'at least 32 bytes');
    expect(err.message).not.toContain('short-secret');
    expectError(MINIMAL + 'tenant: { proof_key: { env: NOPE_PROOF } }', 'tenant.proof_key.env', 'NOPE_PROOF');
  });

  it('refuses a bad proof setting or lifetime', () => {
    expectError(MINIMAL + 'tenant: { proof_setting: proof }', 'tenant.proof_setting', 'two-part');
    expectError(MINIMAL + 'tenant: { proof_setting: app.current_tenant }', 'tenant.proof_setting', 'differ');
    expectError(MINIMAL + 'tenant: { proof_max_ttl_s: 5 }', 'tenant.proof_max_ttl_s');
    expectError(MINIMAL + 'tenant: { proof_max_ttl_s: 1000000 }', 'tenant.proof_max_ttl_s');
  });
});
