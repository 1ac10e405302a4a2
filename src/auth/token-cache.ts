// Verified tokens, remembered so that a client reconnecting with the same token (a pool that opens a
// connection per request, `pgbench -C`) skips the signature check: on the connect path that check is most of
// the proxy's CPU (jose's HMAC runs on the libuv thread pool, a cross-thread round trip per login).
// What a hit still honours:
//  - expiry: checked on every hit with the same clock tolerance jose applies;
//  - the deny-list and the tenant pattern: checked after verification by the caller, on every login;
//  - key rotation: the cache is emptied whenever the keys are reloaded (SIGHUP, RELOAD), and an entry lives
//    at most `maxAgeMs`, never longer than a removed remote key's grace period (see createTokenVerifier).
// Keys are SHA-256 digests of the token, so the cache holds no bearer tokens; a hit needs the exact token.
import { createHash } from 'node:crypto';

export interface CachedIdentity<T> {
  identity: T;
  /** Token exp, epoch seconds. */
  expiresAt: number;
}

export class VerifiedTokenCache<T> {
  /** Insertion-ordered: the first entry is the least recently used (entries move to the end on a hit). */
  private readonly entries = new Map<string, { value: CachedIdentity<T>; storedAt: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly maxAgeMs: number,
    private readonly clockToleranceS: number,
  ) {}

  static digest(token: string): string {
    return createHash('sha256').update(token).digest('base64');
  }

  /** The identity for this token digest if it is cached, not too old, and its token has not expired. */
  get(digest: string, nowMs: number = Date.now()): T | null {
    const e = this.entries.get(digest);
    if (!e) return null;
    // jose refuses a token when exp <= now - clockTolerance; the same rule here, so a hit never outlives it.
    if (nowMs - e.storedAt > this.maxAgeMs || e.value.expiresAt <= nowMs / 1000 - this.clockToleranceS) {
      this.entries.delete(digest);
      return null;
    }
    this.entries.delete(digest);
    this.entries.set(digest, e);
    return e.value.identity;
  }

  set(digest: string, value: CachedIdentity<T>, nowMs: number = Date.now()): void {
    if (this.maxEntries <= 0) return;
    this.entries.delete(digest);
    this.entries.set(digest, { value, storedAt: nowMs });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
