// JWT verification keys: the HS* secret, a PEM public key file, a local JWKS file, or a remote JWKS URL (cooldown, grace, timeout).
import { createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, createLocalJWKSet, errors, importSPKI, type JWK, type JWTVerifyGetKey } from 'jose';
import type { JwtConfig } from '../config/types.js';

export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
export const MIN_RSA_BITS = 2048;
/** A remote JWKS larger than this is refused (a real one is a few KiB). */
export const MAX_JWKS_BYTES = 1 << 20;

export const DEFAULT_JWKS_COOLDOWN_MS = 30_000;
export const DEFAULT_JWKS_GRACE_MS = 3_600_000;
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000;
export const DEFAULT_JWKS_MAX_AGE_MS = 600_000;

export function isHmacAlgorithm(alg: string): boolean {
  return (HMAC_ALGORITHMS as readonly string[]).includes(alg);
}

/** A key file or key set that cannot be used; the message names the problem, never key material. */
export class KeySourceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeySourceError';
  }
}

/** No key set is available yet (the remote JWKS could not be fetched); a server-side problem, not the token's. */
export class KeysUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeysUnavailableError';
  }
}

/** What the verifier needs: a key (or key resolver) for jose, and a way to re-read file-based keys. */
export interface KeySource {
  readonly key: KeyObject | JWTVerifyGetKey;
  /** Re-reads public_key_file / jwks_file, or refetches jwks_url; on failure rejects and keeps the previous keys. */
  reload(): Promise<void>;
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

function describeKey(k: KeyObject): string {
  switch (k.asymmetricKeyType) {
    case 'rsa':
      return `an RSA key (${k.asymmetricKeyDetails?.modulusLength ?? '?'} bits)`;
    case 'ec':
      return `an EC key (curve ${k.asymmetricKeyDetails?.namedCurve ?? '?'})`;
    case undefined:
      return 'no public key';
    default:
      return `an ${k.asymmetricKeyType} key`;
  }
}

/** True when `k` can verify `alg` (RSA keys need at least MIN_RSA_BITS). */
function keyFits(k: KeyObject, alg: string): boolean {
  switch (alg) {
    case 'RS256':
    case 'PS256':
      return k.asymmetricKeyType === 'rsa' && (k.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_BITS;
    case 'ES256':
      return k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'prime256v1';
    case 'EdDSA':
      return k.asymmetricKeyType === 'ed25519';
    default:
      return false;
  }
}

/** Checks PEM text holds one SPKI public key that can verify every algorithm in `algorithms`. Returns the PEM. */
export function checkPublicKeyPem(text: string, algorithms: readonly string[]): string {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw new KeySourceError('holds a private key; give the public key only (openssl pkey -in key.pem -pubout)');
  }
  const m = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/.exec(text);
  if (!m) throw new KeySourceError('must be a PEM public key (-----BEGIN PUBLIC KEY-----, SPKI)');
  let k: KeyObject;
  try {
    k = createPublicKey({ key: m[0], format: 'pem' });
  } catch (e) {
    throw new KeySourceError(`is not a valid PEM public key: ${(e as Error).message}`);
  }
  for (const alg of algorithms) {
    if (!keyFits(k, alg)) {
      const small = k.asymmetricKeyType === 'rsa' && (alg === 'RS256' || alg === 'PS256');
      throw new KeySourceError(
        small
          ? `holds ${describeKey(k)}; ${alg} needs at least ${MIN_RSA_BITS} bits`
          : `holds ${describeKey(k)}, which cannot verify ${alg}; list only the algorithms this key is for`,
      );
    }
  }
  return m[0];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks a parsed JWKS: public keys only, and at least one key usable with a configured algorithm.
 * Keys of other types or uses (e.g. encryption keys) are dropped; returns the usable ones.
 */
export function checkJwks(json: unknown, algorithms: readonly string[]): JWK[] {
  if (!isRecord(json) || !Array.isArray(json.keys)) throw new KeySourceError('must be a JSON Web Key Set: an object with a "keys" list');
  const usable: JWK[] = [];
  json.keys.forEach((jwk: unknown, i: number) => {
    if (!isRecord(jwk) || typeof jwk.kty !== 'string') throw new KeySourceError(`keys[${i}] is not a JSON Web Key (no "kty")`);
    if (jwk.kty === 'oct') throw new KeySourceError(`keys[${i}] is a shared-secret (oct) key; HS* algorithms use auth.jwt.secret, never a key set`);
    const priv = PRIVATE_JWK_MEMBERS.find((m) => Object.hasOwn(jwk, m));
    if (priv !== undefined) throw new KeySourceError(`keys[${i}] holds private key material ("${priv}"); publish public keys only`);
    if (jwk.use !== undefined && jwk.use !== 'sig') return;
    if (jwk.kid !== undefined && typeof jwk.kid !== 'string') throw new KeySourceError(`keys[${i}] has a non-string "kid"`);
    let k: KeyObject;
    try {
      k = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    } catch {
      return; // a key type this runtime cannot read: not usable here
    }
    if (algorithms.some((alg) => (jwk.alg === undefined || jwk.alg === alg) && keyFits(k, alg))) usable.push(jwk as JWK);
  });
  if (usable.length === 0) {
    throw new KeySourceError(`has no signing key usable with ${algorithms.join(', ')} (RSA keys need at least ${MIN_RSA_BITS} bits)`);
  }
  return usable;
}

export function parseJwksText(text: string, algorithms: readonly string[]): JWK[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new KeySourceError(`is not valid JSON: ${(e as Error).message}`);
  }
  return checkJwks(json, algorithms);
}

function readSync(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new KeySourceError(`cannot read ${path}: ${err.code ?? err.message}`);
  }
}

async function readAsync(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new KeySourceError(`cannot read ${path}: ${err.code ?? err.message}`);
  }
}

/** Reads and checks a PEM public key file (for config load). */
export function loadPublicKeyFile(path: string, algorithms: readonly string[]): string {
  return checkPublicKeyPem(readSync(path), algorithms);
}

/** Reads and checks a JWKS file (for config load). */
export function loadJwksFile(path: string, algorithms: readonly string[]): JWK[] {
  return parseJwksText(readSync(path), algorithms);
}

/** True for hosts where plain http cannot be intercepted off the machine. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(hostname);
}

class PublicKeyFileSource implements KeySource {
  private keys: Promise<Map<string, CryptoKey>>;

  constructor(
    private readonly path: string,
    private readonly algorithms: readonly string[],
  ) {
    this.keys = this.importAll(loadPublicKeyFile(path, algorithms));
    this.keys.catch(() => {}); // surfaced on use
  }

  /** importSPKI binds a CryptoKey to one algorithm, so an RSA key listed for RS256 and PS256 is imported twice. */
  private async importAll(pem: string): Promise<Map<string, CryptoKey>> {
    const map = new Map<string, CryptoKey>();
    for (const alg of this.algorithms) map.set(alg, await importSPKI(pem, alg));
    return map;
  }

  readonly key: JWTVerifyGetKey = async (header) => {
    const k = (await this.keys).get(header.alg);
    if (k === undefined) throw new errors.JWKSNoMatchingKey();
    return k;
  };

  async reload(): Promise<void> {
    const pem = checkPublicKeyPem(await readAsync(this.path), this.algorithms);
    this.keys = Promise.resolve(await this.importAll(pem));
  }
}

class JwksFileSource implements KeySource {
  private set: JWTVerifyGetKey;

  constructor(
    private readonly path: string,
    private readonly algorithms: readonly string[],
  ) {
    this.set = createLocalJWKSet({ keys: loadJwksFile(path, algorithms) });
  }

  readonly key: JWTVerifyGetKey = (header, token) => this.set(header, token);

  async reload(): Promise<void> {
    this.set = createLocalJWKSet({ keys: parseJwksText(await readAsync(this.path), this.algorithms) });
  }
}

export interface RemoteJwksOptions {
  cooldownMs: number;
  graceMs: number;
  timeoutMs: number;
  maxAgeMs: number;
}

async function fetchJwksText(url: string, timeoutMs: number): Promise<string> {
  const res = await fetch(url, {
    signal: AbortSignal.timeout(timeoutMs),
    redirect: 'error',
    headers: { accept: 'application/jwk-set+json, application/json' },
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new KeySourceError(`answered HTTP ${res.status}, expected 200`);
  }
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_JWKS_BYTES) {
    await res.body?.cancel();
    throw new KeySourceError(`is ${declared} bytes; the limit is ${MAX_JWKS_BYTES}`);
  }
  const text = await res.text();
  if (text.length > MAX_JWKS_BYTES) throw new KeySourceError(`is over ${MAX_JWKS_BYTES} bytes`);
  return text;
}

/**
 * A remote JWKS, fetched on first use and cached. It is refetched when older than maxAgeMs, or when a
 * token names a key the set lacks — in both cases at most once per cooldownMs (counted from the last
 * fetch attempt, successful or not). A key that disappears from the set stays accepted for graceMs
 * after the last fetch that contained it. A failed refetch keeps the previous set.
 */
export class RemoteJwksSource implements KeySource {
  /** Every key seen, by identity (kid + RFC 7638 thumbprint), with the time of the last fetch that contained it. */
  private readonly seen = new Map<string, { jwk: JWK; lastSeen: number }>();
  private current = new Set<string>();
  private hasSet = false;
  private fetchedAt = -Infinity;
  private attemptedAt = -Infinity;
  private pending: Promise<void> | undefined;
  private local: JWTVerifyGetKey | undefined;
  private localIds = '';
  /** Requests made so far (for tests and metrics). */
  fetches = 0;
  /** The last fetch failure, if the last attempt failed. */
  lastError: Error | undefined;

  constructor(
    private readonly url: string,
    private readonly algorithms: readonly string[],
    private readonly opts: RemoteJwksOptions,
  ) {}

  readonly key: JWTVerifyGetKey = async (header, token) => {
    if (!this.hasSet || Date.now() - this.fetchedAt >= this.opts.maxAgeMs) await this.refresh(false);
    try {
      return await this.keySet()(header, token);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey) || !this.cooledDown()) throw e;
      await this.refresh(false);
      return this.keySet()(header, token);
    }
  };

  /** Refetches now, ignoring the cooldown; rejects (keeping the previous set) when the fetch fails. */
  async reload(): Promise<void> {
    await this.refresh(true);
  }

  private cooledDown(): boolean {
    return Date.now() - this.attemptedAt >= this.opts.cooldownMs;
  }

  private async refresh(force: boolean): Promise<void> {
    if (this.pending === undefined) {
      if (!force && !this.cooledDown()) return;
      this.attemptedAt = Date.now();
      this.fetches++;
      const p = this.fetchAndApply().finally(() => {
        if (this.pending === p) this.pending = undefined;
      });
      this.pending = p;
    }
    try {
      await this.pending;
    } catch (e) {
      if (force) throw e;
      // A stale set beats no set: keep verifying with it until a refetch succeeds.
    }
  }

  private async fetchAndApply(): Promise<void> {
    try {
      const keys = parseJwksText(await fetchJwksText(this.url, this.opts.timeoutMs), this.algorithms);
      const ids = await Promise.all(keys.map(async (jwk) => `${jwk.kid ?? ''}|${await calculateJwkThumbprint(jwk)}`));
      const now = Date.now();
      this.current = new Set(ids);
      keys.forEach((jwk, i) => this.seen.set(ids[i], { jwk, lastSeen: now }));
      this.hasSet = true;
      this.fetchedAt = now;
      this.lastError = undefined;
    } catch (e) {
      const err = e instanceof KeySourceError ? e : new KeySourceError((e as Error).name === 'TimeoutError' ? `did not answer within ${this.opts.timeoutMs} ms` : `fetch failed: ${(e as Error).message}`, { cause: e });
      this.lastError = new KeySourceError(`auth.jwt.jwks_url ${err.message}`, { cause: err.cause });
      throw this.lastError;
    }
  }

  /** The current set plus the retired keys still within their grace period, rebuilt when that list changes. */
  private keySet(): JWTVerifyGetKey {
    if (!this.hasSet) {
      throw new KeysUnavailableError('the token signing keys (auth.jwt.jwks_url) could not be fetched', { cause: this.lastError });
    }
    const now = Date.now();
    const live: [string, JWK][] = [];
    for (const [id, s] of this.seen) {
      if (this.current.has(id) || now - s.lastSeen <= this.opts.graceMs) live.push([id, s.jwk]);
      else this.seen.delete(id);
    }
    const ids = live.map(([id]) => id).join('\n');
    if (this.local === undefined || ids !== this.localIds) {
      this.local = createLocalJWKSet({ keys: live.map(([, jwk]) => jwk) });
      this.localIds = ids;
    }
    return this.local;
  }
}

/** The key source `jwt` configures (the config loader has checked there is exactly one that fits the algorithms). */
export function createKeySource(jwt: JwtConfig): KeySource {
  const algs = jwt.algorithms;
  if (algs.every(isHmacAlgorithm)) {
    if (jwt.secret === undefined) throw new KeySourceError('auth.jwt.secret is required for HS* algorithms');
    // A KeyObject, not raw bytes: jose converts a KeyObject to a CryptoKey once and caches it, where raw
    // bytes are imported again on every verification.
    return { key: createSecretKey(Buffer.from(jwt.secret, 'utf8')), reload: async () => {} };
  }
  if (algs.some(isHmacAlgorithm)) throw new KeySourceError('auth.jwt.algorithms mixes HS* and public-key algorithms');
  if (jwt.public_key_file !== undefined) return new PublicKeyFileSource(jwt.public_key_file, algs);
  if (jwt.jwks_file !== undefined) return new JwksFileSource(jwt.jwks_file, algs);
  if (jwt.jwks_url !== undefined) {
    return new RemoteJwksSource(jwt.jwks_url, algs, {
      cooldownMs: jwt.jwks_cooldown_ms ?? DEFAULT_JWKS_COOLDOWN_MS,
      graceMs: jwt.jwks_grace_ms ?? DEFAULT_JWKS_GRACE_MS,
      timeoutMs: jwt.jwks_timeout_ms ?? DEFAULT_JWKS_TIMEOUT_MS,
      maxAgeMs: jwt.jwks_max_age_ms ?? DEFAULT_JWKS_MAX_AGE_MS,
    });
  }
  throw new KeySourceError('public-key algorithms need auth.jwt.public_key_file, jwks_file or jwks_url');
}
