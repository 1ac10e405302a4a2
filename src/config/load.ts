// Loads the YAML config file, applies defaults and validates every key into a ProxyConfig (or throws one ConfigError).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import {
  ASYMMETRIC_ALGORITHMS,
  DEFAULT_JWKS_COOLDOWN_MS,
  DEFAULT_JWKS_GRACE_MS,
  DEFAULT_JWKS_MAX_AGE_MS,
  DEFAULT_JWKS_TIMEOUT_MS,
  HMAC_ALGORITHMS,
  isHmacAlgorithm,
  isLoopbackHost,
  KeySourceError,
  loadJwksFile,
  loadPublicKeyFile,
} from '../auth/keys.js';
import { POOL_LIMIT_KEYS, validatePoolLimits } from './pool-limits.js';
import { resolveSecret } from './secrets.js';
import { validateBool, validateDenyList, validateFunctionCallAllow, validateGuardAllow, validateProtected, validateSchemaMap } from './tenant-extras.js';
import { validateRateLimit, validateUsers } from './users.js';
import { validateWorkers } from './workers.js';
import { ConfigError, type ListenTlsConfig, type LogLevel, type ProxyConfig } from './types.js';
import { isFullyAnchored, int, join, MAX_TIMER_MS, oneOf, optStr, section, show, str, type Raw } from './validate.js';

export const POOL_MODES = ['transaction', 'session'] as const;
export const PLAINTEXT_TOKENS = ['refuse', 'loopback', 'allow'] as const;
export const SUPPORTED_ALGORITHMS = [...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS] as const;
export const MIN_SECRET_BYTES = 32;
export const DEFAULT_ID_PATTERN = '^[a-z0-9][a-z0-9_]{0,47}$';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const GUC_NAME = /^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$/;
const PORT = { min: 1, max: 65535 };
const TIMEOUT = { min: 1, max: MAX_TIMER_MS };
export const BACKEND_SSLMODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;

/** Reads and validates the config file; relative secret files resolve against the file's directory. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const abs = resolve(path);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError('--config', `cannot read ${abs}: ${err.code ? `${err.code} (${err.message})` : err.message}`);
  }
  return parseSource(text, env, dirname(abs), abs);
}

/** Validates config text; `baseDir` is where relative secret file paths resolve. */
export function parseConfig(text: string, env: NodeJS.ProcessEnv = process.env, baseDir: string = process.cwd()): ProxyConfig {
  return parseSource(text, env, baseDir, '(config text)');
}

function parseSource(text: string, env: NodeJS.ProcessEnv, baseDir: string, source: string): ProxyConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const pos = err.linePos?.[0];
    const where = pos ? `line ${pos.line}, column ${pos.col}` : `offset ${err.pos[0]}`;
    const what = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(source, `YAML syntax error at ${where}: ${what}`);
  }
  return validateConfig(doc.toJS({ maxAliasCount: 100 }), env, baseDir);
}

/** Applies defaults to a parsed YAML tree and checks every key. */
export function validateConfig(tree: unknown, env: NodeJS.ProcessEnv, baseDir: string): ProxyConfig {
  const root = section(tree, '', ['workers', 'listen', 'admin', 'backend', 'pool', 'auth', 'tenant', 'log', 'users', 'metrics', 'shutdown']);

  const l = section(root.listen, 'listen', ['host', 'port', 'max_client_conn', 'startup_timeout_ms', 'tls', 'plaintext_tokens', 'client_idle_timeout_ms']);
  const listenTls = validateListenTls(l.tls, baseDir);
  const listen = {
    host: str(l, 'listen', 'host', '127.0.0.1'),
    port: int(l, 'listen', 'port', { min: 0, max: 65535, def: 6432 }), // 0: any free port (tests, embedding)
    max_client_conn: int(l, 'listen', 'max_client_conn', { min: 1, max: 1_000_000, def: 1000 }),
    startup_timeout_ms: int(l, 'listen', 'startup_timeout_ms', { ...TIMEOUT, def: 10_000 }),
    ...(listenTls ? { tls: listenTls } : {}),
    plaintext_tokens: oneOf(l, 'listen', 'plaintext_tokens', PLAINTEXT_TOKENS, 'refuse'),
    // 0: off. A client idle outside a transaction this long is disconnected (FATAL 57P01).
    client_idle_timeout_ms: int(l, 'listen', 'client_idle_timeout_ms', { min: 0, max: MAX_TIMER_MS, def: 0 }),
  };

  const a = section(root.admin, 'admin', ['host', 'port']);
  const admin = {
    host: str(a, 'admin', 'host', '127.0.0.1'),
    port: int(a, 'admin', 'port', { min: 0, max: 65535, def: 9187 }),
  };

  const b = section(root.backend, 'backend', ['host', 'port', 'database', 'user', 'password', 'connect_timeout_ms', 'sslmode', 'sslrootcert']);
  const sslmode = oneOf(b, 'backend', 'sslmode', BACKEND_SSLMODES, 'prefer');
  const sslrootcert = optStr(b, 'backend', 'sslrootcert');
  if (sslrootcert !== undefined && (sslmode === 'disable' || sslmode === 'prefer')) {
    throw new ConfigError('backend.sslrootcert', `is only used with sslmode require, verify-ca or verify-full (sslmode is ${sslmode}, which never verifies the server)`);
  }
  const backend = {
    host: str(b, 'backend', 'host', '127.0.0.1'),
    port: int(b, 'backend', 'port', { ...PORT, def: 5432 }),
    database: str(b, 'backend', 'database'),
    user: str(b, 'backend', 'user'),
    password: resolveSecret(b.password, 'backend.password', env, baseDir, true),
    connect_timeout_ms: int(b, 'backend', 'connect_timeout_ms', { ...TIMEOUT, def: 5000 }),
    sslmode,
    ...(sslrootcert !== undefined ? { sslrootcert: resolve(baseDir, sslrootcert) } : {}),
  };

  const p = section(root.pool, 'pool', ['mode', 'size', 'acquire_timeout_ms', 'max_waiting', 'idle_timeout_ms', 'reset_timeout_ms', 'max_prepared_statements', 'max_prepared_statement_bytes', 'max_prepared_statement_bytes_total', 'partial_message_timeout_ms', 'reset_delay_ms', ...POOL_LIMIT_KEYS]);
  const size = int(p, 'pool', 'size', { min: 1, max: 10_000, def: 20 });
  const pool = {
    ...validatePoolLimits(p, size),
    size,
    acquire_timeout_ms: int(p, 'pool', 'acquire_timeout_ms', { ...TIMEOUT, def: 5000 }),
    // 0: a client never waits; it gets 53300 at once when every backend is busy.
    max_waiting: int(p, 'pool', 'max_waiting', { min: 0, max: 1_000_000, def: 10_000 }),
    // 0: idle backends are never closed.
    idle_timeout_ms: int(p, 'pool', 'idle_timeout_ms', { min: 0, max: MAX_TIMER_MS, def: 600_000 }),
    reset_timeout_ms: int(p, 'pool', 'reset_timeout_ms', { ...TIMEOUT, def: 5000 }),
    // 0: reset at once. Capped at 1 s: it bounds how long a client's session state (locks) outlives it.
    reset_delay_ms: int(p, 'pool', 'reset_delay_ms', { min: 0, max: 1000, def: 50 }),
    mode: oneOf(p, 'pool', 'mode', POOL_MODES, 'transaction'),
    max_prepared_statements: int(p, 'pool', 'max_prepared_statements', { min: 0, max: 1_000_000, def: 1000 }),
    max_prepared_statement_bytes: int(p, 'pool', 'max_prepared_statement_bytes', { min: 0, max: 1 << 30, def: 16 << 20 }),
    max_prepared_statement_bytes_total: int(p, 'pool', 'max_prepared_statement_bytes_total', { min: 0, max: 2 ** 40, def: 256 << 20 }),
    partial_message_timeout_ms: int(p, 'pool', 'partial_message_timeout_ms', { ...TIMEOUT, def: 5000 }),
  };

  const au = section(root.auth, 'auth', ['jwt', 'rate_limit']);
  if (au.jwt === undefined || au.jwt === null) throw new ConfigError('auth.jwt', 'is required (algorithms, and a secret or a key source, at least)');
  const jwt = validateJwt(
    section(au.jwt, 'auth.jwt', [
      'algorithms',
      'secret',
      'public_key_file',
      'jwks_file',
      'jwks_url',
      ...JWKS_TIMING_KEYS,
      'tenant_claim',
      'max_token_bytes',
      'clock_tolerance_s',
      'issuer',
      'audience',
      'role_claim',
      'allowed_roles',
    ]),
    env,
    baseDir,
  );

  const t = section(root.tenant, 'tenant', ['setting', 'search_path', 'id_pattern', 'schema_map', 'deny', 'readback_check', 'guard', 'protected_settings', 'guard_allow', 'proof_key', 'proof_setting', 'proof_max_ttl_s', 'function_call_allow']);
  const setting = str(t, 'tenant', 'setting', 'app.current_tenant');
  if (!GUC_NAME.test(setting)) {
    throw new ConfigError('tenant.setting', `must be a two-part custom setting name like app.current_tenant, got ${show(setting)}`);
  }
  const search_path = optStr(t, 'tenant', 'search_path');
  if (search_path !== undefined) checkSearchPath(search_path);
  const tenant = {
    setting: setting.toLowerCase(), // PostgreSQL setting names are case-insensitive
    ...(search_path !== undefined ? { search_path } : {}),
    id_pattern: compileIdPattern(str(t, 'tenant', 'id_pattern', DEFAULT_ID_PATTERN)),
  };
  const proof = validateProof(t, env, baseDir, tenant.setting);
  const tenantExtras = {
    ...proof,
    schema_map: validateSchemaMap(t.schema_map, tenant.id_pattern),
    deny: validateDenyList(t.deny, tenant.id_pattern),
    readback_check: validateBool(t.readback_check, 'tenant.readback_check', true),
    guard: validateBool(t.guard, 'tenant.guard', true),
    protected_settings: validateProtected(t.protected_settings, [tenant.setting, proof.proof_setting]),
    guard_allow: validateGuardAllow(t.guard_allow),
    function_call_allow: validateFunctionCallAllow(t.function_call_allow),
  };

  const lg = section(root.log, 'log', ['level']);
  const log = { level: oneOf(lg, 'log', 'level', LOG_LEVELS, 'info') };

  const sd = section(root.shutdown, 'shutdown', ['drain_timeout_ms']);
  const shutdown = { drain_timeout_ms: int(sd, 'shutdown', 'drain_timeout_ms', { min: 0, max: MAX_TIMER_MS, def: 25_000 }) };

  const users = validateUsers(root.users, tenant.id_pattern, pool.size);
  const m = section(root.metrics, 'metrics', ['tenant_top_k']);
  // Each labelled tenant is a set of Prometheus series; past a few hundred a scrape gets expensive.
  const metrics = { tenant_top_k: int(m, 'metrics', 'tenant_top_k', { min: 0, max: 1000, def: 20 }) };
  const workers = validateWorkers(root.workers, pool.size, users);
  return { workers, listen, admin, backend, pool, auth: { jwt, rate_limit: validateRateLimit(au.rate_limit) }, tenant: { ...tenant, ...tenantExtras }, log, users, metrics, shutdown };
}

/** tenant.proof_key / proof_setting / proof_max_ttl_s: the verified tenant context (see sql/tenancy-kit.sql). */
function validateProof(t: Raw, env: NodeJS.ProcessEnv, baseDir: string, tenantSetting: string): { proof_key?: string; proof_setting: string; proof_max_ttl_s: number } {
  const proof_setting = str(t, 'tenant', 'proof_setting', 'app.tenant_proof').toLowerCase();
  if (!GUC_NAME.test(proof_setting)) {
    throw new ConfigError('tenant.proof_setting', `must be a two-part custom setting name like app.tenant_proof, got ${show(proof_setting)}`);
  }
  if (proof_setting === tenantSetting) throw new ConfigError('tenant.proof_setting', `must differ from tenant.setting (${tenantSetting})`);
  const proof_max_ttl_s = int(t, 'tenant', 'proof_max_ttl_s', { min: 10, max: 7 * 86_400, def: 3600 });
  if (t.proof_key === undefined || t.proof_key === null) return { proof_setting, proof_max_ttl_s };
  const proof_key = resolveSecret(t.proof_key, 'tenant.proof_key', env, baseDir, false);
  const bytes = Buffer.byteLength(proof_key, 'utf8');
  if (bytes < MIN_SECRET_BYTES) {
    throw new ConfigError('tenant.proof_key', `must be at least ${MIN_SECRET_BYTES} bytes, got ${bytes}; generate one with: openssl rand -base64 48`);
  }
  return { proof_key, proof_setting, proof_max_ttl_s };
}

const JWKS_TIMING_KEYS = ['jwks_cooldown_ms', 'jwks_grace_ms', 'jwks_timeout_ms', 'jwks_max_age_ms'] as const;
const KEY_SOURCES = ['public_key_file', 'jwks_file', 'jwks_url'] as const;
const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

function checkClaimPath(j: Raw, P: string, name: string, def?: string): string | undefined {
  const path = def !== undefined ? str(j, P, name, def) : optStr(j, P, name);
  if (path !== undefined && path.split('.').some((part) => part.length === 0)) {
    throw new ConfigError(`${P}.${name}`, `must be a claim name or a dotted path like app_metadata.${name === 'role_claim' ? 'role' : 'tenant_id'}, got ${show(path)}`);
  }
  return path;
}

/** The key source for asymmetric algorithms: exactly one of public_key_file, jwks_file, jwks_url, checked now. */
function validateKeySource(j: Raw, P: string, algorithms: string[], baseDir: string): Partial<ProxyConfig['auth']['jwt']> {
  const given = KEY_SOURCES.filter((k) => j[k] !== undefined && j[k] !== null);
  if (given.length === 0) {
    throw new ConfigError(P, `${algorithms.join(', ')} need a public key: set one of public_key_file, jwks_file or jwks_url`);
  }
  if (given.length > 1) throw new ConfigError(`${P}.${given[1]}`, `give only one key source; ${given[0]} is already set`);
  const source = given[0];
  if (source !== 'jwks_url') {
    for (const k of JWKS_TIMING_KEYS) {
      if (j[k] !== undefined && j[k] !== null) throw new ConfigError(`${P}.${k}`, 'only applies with auth.jwt.jwks_url');
    }
    const path = resolve(baseDir, str(j, P, source));
    try {
      if (source === 'public_key_file') loadPublicKeyFile(path, algorithms);
      else loadJwksFile(path, algorithms);
    } catch (e) {
      if (e instanceof KeySourceError) throw new ConfigError(`${P}.${source}`, `${path} ${e.message}`);
      throw e;
    }
    return { [source]: path };
  }
  const raw = str(j, P, 'jwks_url');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${P}.jwks_url`, `is not a valid URL: ${show(raw)}`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new ConfigError(`${P}.jwks_url`, `must use https:// (plain http:// only for a loopback host), got ${show(raw)}: anyone on the path could substitute their own keys`);
  }
  if (url.username !== '' || url.password !== '') throw new ConfigError(`${P}.jwks_url`, 'must not carry credentials');
  return {
    jwks_url: url.href,
    jwks_cooldown_ms: int(j, P, 'jwks_cooldown_ms', { min: 0, max: MAX_TIMER_MS, def: DEFAULT_JWKS_COOLDOWN_MS }),
    jwks_grace_ms: int(j, P, 'jwks_grace_ms', { min: 0, max: MAX_TIMER_MS, def: DEFAULT_JWKS_GRACE_MS }),
    jwks_timeout_ms: int(j, P, 'jwks_timeout_ms', { min: 1, max: 120_000, def: DEFAULT_JWKS_TIMEOUT_MS }),
    jwks_max_age_ms: int(j, P, 'jwks_max_age_ms', { min: 1000, max: MAX_TIMER_MS, def: DEFAULT_JWKS_MAX_AGE_MS }),
  };
}

function validateJwt(j: Raw, env: NodeJS.ProcessEnv, baseDir: string): ProxyConfig['auth']['jwt'] {
  const P = 'auth.jwt';
  const algs = j.algorithms;
  const supported = SUPPORTED_ALGORITHMS.join(', ');
  if (algs === undefined || algs === null) throw new ConfigError(`${P}.algorithms`, `is required, e.g. [HS256] or [RS256]; supported: ${supported}`);
  if (!Array.isArray(algs) || algs.length === 0) {
    throw new ConfigError(`${P}.algorithms`, `must be a non-empty list, e.g. [HS256] or [RS256]; supported: ${supported}`);
  }
  const algorithms: string[] = [];
  algs.forEach((alg, i) => {
    if (typeof alg !== 'string' || !(SUPPORTED_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new ConfigError(`${P}.algorithms[${i}]`, `unsupported algorithm ${show(alg)}; supported: ${supported}`);
    }
    if (!algorithms.includes(alg)) algorithms.push(alg);
  });
  const hmac = algorithms.filter(isHmacAlgorithm);
  const asymmetric = algorithms.filter((a) => !isHmacAlgorithm(a));
  if (hmac.length > 0 && asymmetric.length > 0) {
    throw new ConfigError(
      `${P}.algorithms`,
      `mixes shared-secret (${hmac.join(', ')}) and public-key (${asymmetric.join(', ')}) algorithms; that is refused because a token could then be signed with HMAC using the public key as the secret (algorithm confusion); list one kind only`,
    );
  }

  let keys: Partial<ProxyConfig['auth']['jwt']>;
  if (hmac.length > 0) {
    const other = [...KEY_SOURCES, ...JWKS_TIMING_KEYS].find((k) => j[k] !== undefined && j[k] !== null);
    if (other !== undefined) {
      throw new ConfigError(`${P}.${other}`, `is only for public-key algorithms (${ASYMMETRIC_ALGORITHMS.join(', ')}); ${hmac.join(', ')} verify with auth.jwt.secret`);
    }
    const secret = resolveSecret(j.secret, `${P}.secret`, env, baseDir, false);
    const bytes = Buffer.byteLength(secret, 'utf8');
    if (bytes < MIN_SECRET_BYTES) {
      throw new ConfigError(`${P}.secret`, `must be at least ${MIN_SECRET_BYTES} bytes for ${algorithms.join('/')}, got ${bytes}; generate one with: openssl rand -base64 48`);
    }
    keys = { secret };
  } else {
    if (j.secret !== undefined && j.secret !== null) {
      throw new ConfigError(`${P}.secret`, `is only for ${HMAC_ALGORITHMS.join(', ')}; ${asymmetric.join(', ')} verify with public_key_file, jwks_file or jwks_url`);
    }
    keys = validateKeySource(j, P, asymmetric, baseDir);
  }

  const tenant_claim = checkClaimPath(j, P, 'tenant_claim', 'tenant_id') as string;
  const role_claim = checkClaimPath(j, P, 'role_claim');
  const rolesRaw = j.allowed_roles;
  const hasRoles = rolesRaw !== undefined && rolesRaw !== null;
  if (role_claim !== undefined && !hasRoles) throw new ConfigError(`${P}.allowed_roles`, 'is required with auth.jwt.role_claim: list the roles a token may name');
  if (role_claim === undefined && hasRoles) throw new ConfigError(`${P}.role_claim`, 'is required with auth.jwt.allowed_roles: name the claim that carries the role');
  let allowed_roles: string[] | undefined;
  if (hasRoles) {
    if (!Array.isArray(rolesRaw) || rolesRaw.length === 0) throw new ConfigError(`${P}.allowed_roles`, `must be a non-empty list of role names, got ${show(rolesRaw)}`);
    allowed_roles = [];
    for (const [i, r] of rolesRaw.entries()) {
      if (typeof r !== 'string' || !ROLE_NAME.test(r)) {
        throw new ConfigError(`${P}.allowed_roles[${i}]`, `must be a lowercase identifier matching ${ROLE_NAME.source}, got ${show(r)}`);
      }
      if (!allowed_roles.includes(r)) allowed_roles.push(r);
    }
  }
  const issuer = optStr(j, P, 'issuer');
  const audience = optStr(j, P, 'audience');
  return {
    algorithms,
    ...keys,
    tenant_claim,
    max_token_bytes: int(j, P, 'max_token_bytes', { min: 64, max: 1_048_576, def: 8192 }),
    clock_tolerance_s: int(j, P, 'clock_tolerance_s', { min: 0, max: 86_400, def: 0 }),
    ...(issuer !== undefined ? { issuer } : {}),
    ...(audience !== undefined ? { audience } : {}),
    ...(role_claim !== undefined ? { role_claim, allowed_roles } : {}),
  };
}

const PLAIN_SCHEMA = /^[a-z_][a-z0-9_$]*$/;
const TENANT_SCHEMA = /^[a-z0-9_]*\{tenant\}[a-z0-9_]*$/;

function checkSearchPath(template: string): void {
  template.split(',').forEach((raw, i) => {
    const el = raw.trim();
    if (el === '"$user"' || PLAIN_SCHEMA.test(el) || TENANT_SCHEMA.test(el)) return;
    throw new ConfigError(
      'tenant.search_path',
      `element ${i + 1} ${show(el)} is not allowed: use lowercase schema names ([a-z_][a-z0-9_$]*), "$user", or one {tenant} with only [a-z0-9_] around it, separated by commas`,
    );
  });
}

function compileIdPattern(source: string): RegExp {
  let re: RegExp;
  try {
    re = new RegExp(source);
  } catch (e) {
    throw new ConfigError('tenant.id_pattern', `is not a valid regular expression: ${(e as Error).message}`);
  }
  if (!isFullyAnchored(source)) {
    throw new ConfigError(
      'tenant.id_pattern',
      'must be anchored with ^…$ (and any top-level | wrapped in a group, ^(?:a|b)$) so a tenant id cannot smuggle extra characters',
    );
  }
  return re;
}

/** listen.tls: absent → no TLS; cert_file and key_file are required when the section is given (relative to the config's directory). */
function validateListenTls(v: unknown, baseDir: string): ListenTlsConfig | undefined {
  if (v === undefined || v === null) return undefined;
  const P = 'listen.tls';
  const t = section(v, P, ['cert_file', 'key_file', 'min_version']);
  return {
    cert_file: resolve(baseDir, str(t, P, 'cert_file')),
    key_file: resolve(baseDir, str(t, P, 'key_file')),
    min_version: oneOf(t, P, 'min_version', TLS_VERSIONS, 'TLSv1.2'),
  };
}
