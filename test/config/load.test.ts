// Tests the config loader: defaults, secret forms, and that each invalid input yields a one-line ConfigError naming its key.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 6432, max_client_conn: 1000, startup_timeout_ms: 10000 });
    expect(c.admin).toEqual({ host: '127.0.0.1', port: 9187 });
    expect(c.backend).toEqual({ host: '127.0.0.1', port: 5432, database: 'app', user: 'app_pool', password: 'pw', connect_timeout_ms: 5000 });
    expect(c.pool).toEqual({ size: 20, acquire_timeout_ms: 5000, max_waiting: 10000, idle_timeout_ms: 600000, reset_timeout_ms: 5000, mode: 'transaction', max_prepared_statements: 1000, max_prepared_statement_bytes: 16777216 });
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
    expectError(withJwt(`algorithms: [HS256, RS256], secret: "${SECRET}"`), 'auth.jwt.algorithms[1]', '"RS256"', 'supported');
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
