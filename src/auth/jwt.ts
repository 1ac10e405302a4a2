// Verifies the JWT a client sends as its password and extracts the tenant id; errors carry a reason and SQLSTATE, never the token.
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import type { JwtConfig, TenantConfig } from '../config/types.js';
import { createKeySource, DEFAULT_JWKS_GRACE_MS, DEFAULT_JWKS_MAX_AGE_MS, KeysUnavailableError } from './keys.js';
import { VerifiedTokenCache } from './token-cache.js';

export type AuthFailureReason =
  | 'bad_token'
  | 'expired'
  | 'no_tenant'
  | 'bad_tenant'
  | 'token_too_large'
  | 'bad_signature'
  | 'not_yet_valid'
  | 'claim_mismatch'
  | 'role_not_allowed'
  | 'keys_unavailable';

/** A refused login: `reason` is a metrics/log label, `sqlstate` goes in the ErrorResponse, `message` is safe to show the client. */
export class AuthError extends Error {
  constructor(
    public readonly reason: AuthFailureReason,
    public readonly sqlstate: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AuthError';
  }
}

export interface VerifiedIdentity {
  tenant: string;
  claims: Record<string, unknown>;
  /** Epoch seconds. */
  expiresAt: number;
  /** The role_claim value, when auth.jwt.role_claim is configured and the token carries it (always in allowed_roles). */
  role?: string;
}

/** Verifies one token; `reload()` re-reads public_key_file / jwks_file (or refetches jwks_url), keeping the old keys on failure. */
export type TokenVerifier = ((token: string) => Promise<VerifiedIdentity>) & { reload(): Promise<void> };

const INVALID_PASSWORD = '28P01';
const INVALID_AUTHORIZATION = '28000';
/** cannot_connect_now: drivers and poolers treat it as "retry later". */
const CANNOT_CONNECT_NOW = '57P03';

/** JSON-escaped and truncated: for attacker-controlled strings that end up in messages and logs. */
function quoted(v: string, max = 64): string {
  return JSON.stringify(v.length > max ? `${v.slice(0, max)}…` : v);
}

function isoTime(epochSeconds: unknown): string {
  if (typeof epochSeconds !== 'number' || !Number.isFinite(epochSeconds)) return 'an unknown time';
  const d = new Date(epochSeconds * 1000);
  return Number.isNaN(d.getTime()) ? 'an unknown time' : d.toISOString();
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The claim at `path`: a literal top-level key first (namespaced claims such as
 * "https://example.com/tenant" contain dots), else a dotted path through nested objects.
 */
export function readClaim(payload: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let cur: unknown = payload;
  for (const part of path.split('.')) {
    if (!isRecord(cur) || !Object.hasOwn(cur, part)) return undefined;
    cur = cur[part];
  }
  return cur;
}

function mapJoseError(e: unknown, token: string, allowed: string[]): AuthError {
  if (e instanceof errors.JWTExpired) {
    return new AuthError('expired', INVALID_PASSWORD, `token expired at ${isoTime(e.payload.exp)}; get a fresh token`);
  }
  if (e instanceof errors.JWKSNoMatchingKey) {
    return new AuthError('bad_signature', INVALID_PASSWORD, 'token key id (kid) is not in the configured key set');
  }
  if (e instanceof KeysUnavailableError) {
    return new AuthError('keys_unavailable', CANNOT_CONNECT_NOW, 'cannot verify tokens right now: the signing keys could not be fetched; try again later', { cause: e });
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return new AuthError('bad_signature', INVALID_PASSWORD, 'token signature is not valid for the configured key');
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === 'exp' && e.reason === 'missing') {
      return new AuthError('bad_token', INVALID_PASSWORD, 'token has no "exp" claim; tokens must expire');
    }
    if (e.claim === 'nbf' && e.reason === 'check_failed') {
      return new AuthError('not_yet_valid', INVALID_PASSWORD, `token is not valid before ${isoTime(e.payload.nbf)}; check the clocks`);
    }
    if ((e.claim === 'iss' || e.claim === 'aud') && (e.reason === 'check_failed' || e.reason === 'missing')) {
      const setting = e.claim === 'iss' ? 'auth.jwt.issuer' : 'auth.jwt.audience';
      return new AuthError('claim_mismatch', INVALID_PASSWORD, `token "${e.claim}" claim does not match ${setting}`);
    }
    return new AuthError('bad_token', INVALID_PASSWORD, `token "${e.claim}" claim is not valid`);
  }
  if (e instanceof errors.JOSEAlgNotAllowed) {
    let alg = 'unknown';
    try {
      const h = decodeProtectedHeader(token);
      if (typeof h.alg === 'string') alg = quoted(h.alg, 16);
    } catch {
      // keep "unknown"
    }
    return new AuthError('bad_token', INVALID_PASSWORD, `token algorithm ${alg} is not allowed; allowed: ${allowed.join(', ')}`);
  }
  return new AuthError('bad_token', INVALID_PASSWORD, 'password is not a valid JWT');
}

/**
 * jwtVerify, except that when the key set has several keys matching the token's header (no kid, or a
 * rotated key kept for its grace period under the same kid), each is tried in turn.
 */
async function verifyWithKeys(token: string, key: Parameters<typeof jwtVerify>[1], options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, key, options)).payload;
  } catch (e) {
    if (!(e instanceof errors.JWKSMultipleMatchingKeys)) throw e;
    let last: unknown = new errors.JWSSignatureVerificationFailed();
    for await (const candidate of e) {
      try {
        return (await jwtVerify(token, candidate, options)).payload;
      } catch (err) {
        if (!(err instanceof errors.JWSSignatureVerificationFailed)) throw err;
        last = err;
      }
    }
    throw last;
  }
}

/**
 * Builds the per-login verifier: size check, signature and claims (jose, with the configured key source),
 * then the tenant claim and the optional role claim.
 */
/** Verified tokens remembered (LRU). */
const VERIFIED_CACHE_ENTRIES = 10_000;
/** Longest a verified token is trusted without a fresh signature check. */
const VERIFIED_CACHE_MAX_AGE_MS = 60_000;

export function createTokenVerifier(jwt: JwtConfig, tenant: TenantConfig): TokenVerifier {
  const keys = createKeySource(jwt);
  const algorithms = [...jwt.algorithms];
  const claimName = jwt.tenant_claim;
  const roleClaim = jwt.role_claim;
  const allowedRoles = new Set(jwt.allowed_roles ?? []);
  // A copy without g/y flags, which would make test() stateful across logins.
  const idPattern = new RegExp(tenant.id_pattern.source, tenant.id_pattern.flags.replace(/[gy]/g, ''));
  const options: JWTVerifyOptions = {
    algorithms,
    requiredClaims: ['exp'],
    clockTolerance: jwt.clock_tolerance_s,
    ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
    ...(jwt.audience !== undefined ? { audience: jwt.audience } : {}),
  };

  // Verified tokens, so a reconnect with the same token skips the signature check (token-cache.ts). An entry
  // lives at most a minute, and with a remote JWKS no longer than a removed key stays accepted nor than the
  // set may go without a refetch, so rotation is seen as soon as it would be without the cache.
  const cache = new VerifiedTokenCache<VerifiedIdentity>(
    VERIFIED_CACHE_ENTRIES,
    jwt.jwks_url !== undefined
      ? Math.min(VERIFIED_CACHE_MAX_AGE_MS, jwt.jwks_grace_ms ?? DEFAULT_JWKS_GRACE_MS, jwt.jwks_max_age_ms ?? DEFAULT_JWKS_MAX_AGE_MS)
      : VERIFIED_CACHE_MAX_AGE_MS,
    jwt.clock_tolerance_s,
  );

  const verify = async (token: string): Promise<VerifiedIdentity> => {
    const size = Buffer.byteLength(token, 'utf8');
    if (size > jwt.max_token_bytes) {
      throw new AuthError('token_too_large', INVALID_PASSWORD, `token is ${size} bytes; the limit is ${jwt.max_token_bytes} (auth.jwt.max_token_bytes)`);
    }
    const digest = VerifiedTokenCache.digest(token);
    const cached = cache.get(digest);
    if (cached) return cached;
    let payload: JWTPayload;
    try {
      payload = await verifyWithKeys(token, keys.key, options);
    } catch (e) {
      throw mapJoseError(e, token, algorithms);
    }
    if (typeof payload.exp !== 'number') {
      // jose enforces this already (requiredClaims); kept so expiresAt can never be wrong.
      throw new AuthError('bad_token', INVALID_PASSWORD, 'token has no "exp" claim; tokens must expire');
    }

    const raw = readClaim(payload, claimName);
    let id: string | undefined;
    if (typeof raw === 'string' && raw.length > 0) id = raw;
    else if (typeof raw === 'number' && Number.isSafeInteger(raw)) id = String(raw);
    if (id === undefined) {
      throw new AuthError('no_tenant', INVALID_AUTHORIZATION, `token has no tenant claim "${claimName}"`);
    }
    if (!idPattern.test(id)) {
      throw new AuthError(
        'bad_tenant',
        INVALID_AUTHORIZATION,
        `tenant id ${quoted(id)} in claim "${claimName}" does not match tenant.id_pattern`,
      );
    }

    let role: string | undefined;
    if (roleClaim !== undefined) {
      const r = readClaim(payload, roleClaim);
      if (r !== undefined) {
        if (typeof r !== 'string' || !allowedRoles.has(r)) {
          const shown = typeof r === 'string' ? r : String(JSON.stringify(r));
          throw new AuthError('role_not_allowed', INVALID_AUTHORIZATION, `role ${quoted(shown)} in claim "${roleClaim}" is not in auth.jwt.allowed_roles`);
        }
        role = r;
      }
    }
    const identity: VerifiedIdentity = { tenant: id, claims: payload as Record<string, unknown>, expiresAt: payload.exp, ...(role !== undefined ? { role } : {}) };
    // Only a token jose accepted now is cached (nbf already passed); exp is checked again on every hit.
    cache.set(digest, { identity, expiresAt: payload.exp });
    return identity;
  };
  // New keys (SIGHUP, RELOAD): nothing verified under the old ones is trusted without a fresh check.
  return Object.assign(verify, {
    reload: async () => {
      cache.clear();
      await keys.reload();
      cache.clear();
    },
  });
}
