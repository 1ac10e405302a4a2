// Authentication failures per client address in a fixed window; past the limit, logins from that address
// are refused at once, without touching the token or the password. Memory is bounded: the oldest addresses
// are forgotten first.
import type { RateLimitConfig } from '../config/types.js';

/**
 * The refusal reasons that count toward the limit: credentials that could be a guess (a password that
 * failed SCRAM, a token whose signature or format does not verify). Not counted, because no secret was
 * guessed: a connection that closed before sending a password (TCP health probes; psql, which hangs up
 * to prompt for the password), protocol errors, a suspended tenant or a tenant/role refused on a token
 * that verified, an expired token, an unknown database, TLS required, the backend being down.
 */
const GUESS_REASONS: ReadonlySet<string> = new Set(['bad_password', 'bad_signature', 'bad_token', 'token_too_large']);

/** True if a login refused for `reason` counts as a failed authentication for the rate limit. */
export function countsTowardLimit(reason: string): boolean {
  return GUESS_REASONS.has(reason);
}

export class FailureLimiter {
  /** address → failures in the current window and when it ends; Map order is age (oldest first). */
  private readonly seen = new Map<string, { failures: number; resetAt: number }>();

  constructor(private readonly cfg: RateLimitConfig) {}

  /** Milliseconds until `address` may try again, or 0 if it may now. */
  retryAfter(address: string, now = Date.now()): number {
    if (this.cfg.max_failures === 0) return 0;
    const e = this.seen.get(address);
    if (!e) return 0;
    if (now >= e.resetAt) {
      this.seen.delete(address);
      return 0;
    }
    return e.failures >= this.cfg.max_failures ? e.resetAt - now : 0;
  }

  fail(address: string, now = Date.now()): void {
    if (this.cfg.max_failures === 0) return;
    const e = this.seen.get(address);
    if (e && now < e.resetAt) {
      e.failures++;
      return;
    }
    this.seen.delete(address);
    this.seen.set(address, { failures: 1, resetAt: now + this.cfg.window_ms });
    while (this.seen.size > this.cfg.max_tracked_addresses) {
      const oldest = this.seen.keys().next().value as string;
      this.seen.delete(oldest);
    }
  }

  get tracked(): number {
    return this.seen.size;
  }
}
