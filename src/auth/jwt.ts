// Verifies the JWT a client sends as its password and extracts the tenant id; errors carry a reason and SQLSTATE, never the token.
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import type { JwtConfig, TenantConfig } from '../config/types.js';

export type AuthFailureReason =
  | 'bad_token'
  | 'expired'
  | 'no_tenant'
  | 'bad_tenant'
  | 'token_too_large'
  | 'bad_signature'
  | 'not_yet_valid'
  | 'claim_mismatch';

/** A refused login: `reason` is a metrics/log label, `sqlstate` goes in the ErrorResponse, `message` is safe to show the client. */
export class AuthError extends Error {
  constructor(
    public readonly reason: AuthFailureReason,
    public readonly sqlstate: string,
    message: string,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface VerifiedIdentity {
  tenant: string;
  claims: Record<string, unknown>;
  /** Epoch seconds. */
  expiresAt: number;
}

const INVALID_PASSWORD = '28P01';
const INVALID_AUTHORIZATION = '28000';

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

/** Builds the per-login verifier: size check, signature and claims (jose), then the tenant claim. */
export function createTokenVerifier(jwt: JwtConfig, tenant: TenantConfig): (token: string) => Promise<VerifiedIdentity> {
  const key = new TextEncoder().encode(jwt.secret);
  const algorithms = [...jwt.algorithms];
  const claimName = jwt.tenant_claim;
  // A copy without g/y flags, which would make test() stateful across logins.
  const idPattern = new RegExp(tenant.id_pattern.source, tenant.id_pattern.flags.replace(/[gy]/g, ''));
  const options = {
    algorithms,
    requiredClaims: ['exp'],
    clockTolerance: jwt.clock_tolerance_s,
    ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
    ...(jwt.audience !== undefined ? { audience: jwt.audience } : {}),
  };

  return async (token: string): Promise<VerifiedIdentity> => {
    const size = Buffer.byteLength(token, 'utf8');
    if (size > jwt.max_token_bytes) {
      throw new AuthError('token_too_large', INVALID_PASSWORD, `token is ${size} bytes; the limit is ${jwt.max_token_bytes} (auth.jwt.max_token_bytes)`);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, options));
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
    return { tenant: id, claims: payload as Record<string, unknown>, expiresAt: payload.exp };
  };
}
