// Decisions the pool takes by its limits (issue 12), kept apart from the pool's mechanics: a backend's
// recycling age with jitter, which idle backends to close, saturation with hysteresis, and the reconnect
// back-off. Pure functions and small state machines: unit-testable without a server.
import type { PoolLimits } from '../config/types.js';

/** Up to this fraction of max_lifetime_ms is taken off each backend's age limit, so they don't all go at once. */
export const LIFETIME_JITTER = 0.1;
/** Saturation clears only once utilisation falls this far below the threshold (hysteresis: no flapping logs). */
export const SATURATION_HYSTERESIS = 0.1;

/** When a backend opened at `openedAt` must be recycled (Infinity: never). Never later than max_lifetime_ms. */
export function recycleAt(openedAt: number, maxLifetimeMs: number, random: () => number = Math.random): number {
  if (maxLifetimeMs <= 0) return Infinity;
  return openedAt + maxLifetimeMs * (1 - LIFETIME_JITTER * random());
}

export interface IdleBackend {
  lastUsedAt: number;
}

/**
 * Which idle backends to close now. Idle backends are considered oldest-idle first; closing stops at the
 * floor each rule allows: overflow backends (above `size`) go after overflow_idle_ms; steady ones after
 * idle_timeout_ms, but never below min_idle idle ones.
 */
export function idleToClose<T extends IdleBackend>(
  idle: readonly T[],
  open: number,
  lim: Pick<PoolLimits, 'overflow_idle_ms' | 'min_idle'> & { size: number; idle_timeout_ms: number },
  now: number,
): T[] {
  const byAge = [...idle].sort((a, b) => a.lastUsedAt - b.lastUsedAt);
  const out: T[] = [];
  let remainingOpen = open;
  let remainingIdle = idle.length;
  for (const c of byAge) {
    const idleFor = now - c.lastUsedAt;
    const overflowGoes = remainingOpen > lim.size && idleFor >= lim.overflow_idle_ms;
    const steadyGoes = lim.idle_timeout_ms > 0 && idleFor >= lim.idle_timeout_ms && remainingIdle > lim.min_idle;
    if (!overflowGoes && !steadyGoes) continue;
    out.push(c);
    remainingOpen--;
    remainingIdle--;
  }
  return out;
}

export type SaturationKind = 'cap' | 'overflow';

/**
 * Flags utilisation crossing the threshold once, and recovery once it has stayed SATURATION_HYSTERESIS below
 * for `recoveryMs` (pool.alert_recovery_ms). Under a steady overload, backends are released and re-granted
 * many times a second and the held count dips for an instant at each release: without the hold, a saturated
 * pool logged POOL_SATURATED every few milliseconds. One unref'd timer per kind notices a recovery even when
 * nothing happens any more (the pool went quiet).
 */
export class Saturation {
  private readonly saturated: Record<SaturationKind, boolean> = { cap: false, overflow: false };
  /** Since when a saturated kind has been below the band (0: it is not), and its last utilisation. */
  private readonly belowSince: Record<SaturationKind, number> = { cap: 0, overflow: 0 };
  private readonly last: Record<SaturationKind, number> = { cap: 0, overflow: 0 };
  private readonly timers: Record<SaturationKind, NodeJS.Timeout | null> = { cap: null, overflow: null };

  constructor(
    private readonly changed: (kind: SaturationKind, saturated: boolean, utilisation: number) => void,
    private readonly recoveryMs: () => number,
    private readonly now: () => number = Date.now,
  ) {}

  isSaturated(kind: SaturationKind): boolean {
    return this.saturated[kind];
  }

  /** `utilisation` is busy / cap, or overflow in use / overflow (NaN when there is no overflow: ignored). */
  observe(kind: SaturationKind, utilisation: number, threshold: number): void {
    if (Number.isNaN(utilisation)) return;
    if (!this.saturated[kind]) {
      if (utilisation < threshold) return;
      this.saturated[kind] = true;
      this.belowSince[kind] = 0;
      this.changed(kind, true, utilisation);
      return;
    }
    if (utilisation >= threshold - SATURATION_HYSTERESIS) {
      this.belowSince[kind] = 0;
      return;
    }
    this.last[kind] = utilisation;
    if (this.belowSince[kind] === 0) this.belowSince[kind] = this.now();
    this.check(kind);
  }

  /** Stops the recovery timers (pool closed). */
  stop(): void {
    for (const kind of ['cap', 'overflow'] as const) this.disarm(kind);
  }

  private check(kind: SaturationKind): void {
    const since = this.belowSince[kind];
    if (!this.saturated[kind] || since === 0) return this.disarm(kind);
    const left = since + this.recoveryMs() - this.now();
    if (left <= 0) {
      this.disarm(kind);
      this.saturated[kind] = false;
      this.belowSince[kind] = 0;
      this.changed(kind, false, this.last[kind]);
      return;
    }
    if (this.timers[kind]) return; // armed: it checks again when it fires
    const t = setTimeout(() => {
      this.timers[kind] = null;
      this.check(kind);
    }, left);
    t.unref();
    this.timers[kind] = t;
  }

  private disarm(kind: SaturationKind): void {
    const t = this.timers[kind];
    if (t) clearTimeout(t);
    this.timers[kind] = null;
  }
}

/** Reconnect delays: exponential with "equal" jitter (half fixed, half random), so many proxies don't hammer a recovering server together. */
export class Backoff {
  private failures = 0;
  private notBefore = 0;

  constructor(
    private readonly baseMs = 100,
    private readonly maxMs = 5000,
    private readonly random: () => number = Math.random,
  ) {}

  /** A connect failed: returns the delay before the next attempt. */
  failed(now: number): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    const delay = Math.round(ceiling / 2 + (ceiling / 2) * this.random());
    this.notBefore = now + delay;
    return delay;
  }

  succeeded(): void {
    this.failures = 0;
    this.notBefore = 0;
  }

  /** Milliseconds until another attempt is allowed (0: now). */
  waitMs(now: number): number {
    return Math.max(0, this.notBefore - now);
  }

  get down(): boolean {
    return this.failures > 0;
  }
}
