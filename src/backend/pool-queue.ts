// The clients waiting for a backend, served fairly (waiters.ts), with their acquire_timeout_ms deadlines on one timer.
import type { PoolConfig } from '../config/types.js';
import { DeadlineTimer } from './deadline-timer.js';
import type { PoolSettings, PoolWaiter } from './pool-types.js';
import { Waiters } from './waiters.js';

export interface Queued {
  waiter: PoolWaiter;
  tenant: string | null;
  enqueuedAt: number;
  deadline: number;
}

export class WaitQueue {
  /** Per tenant FIFO, served round-robin (pool.fairness). */
  private readonly waiters: Waiters<Queued>;
  /** One timer serves the earliest deadline; armed while anyone waits. */
  private readonly deadline = new DeadlineTimer(() => this.expire());

  /** @param timedOut told of each waiter whose acquire_timeout_ms passed, already out of the queue */
  constructor(
    private readonly pool: PoolSettings,
    private readonly timedOut: (q: Queued) => void,
  ) {
    this.waiters = new Waiters<Queued>(pool.cfg.fairness);
  }

  get length(): number {
    return this.waiters.length;
  }

  setFairness(f: PoolConfig['fairness']): void {
    this.waiters.setFairness(f);
  }

  /**
   * A reloaded acquire_timeout_ms: a lowered one applies to the clients already waiting too (never later
   * than before). Deadlines stay in arrival order within each tenant's queue, which expire() relies on.
   */
  setAcquireTimeout(ms: number): void {
    for (const q of this.waiters.all()) q.deadline = Math.min(q.deadline, q.enqueuedAt + ms);
    this.deadline.arm(this.waiters.earliestDeadline());
  }

  /** Queues `waiter` until acquire_timeout_ms from now. */
  push(waiter: PoolWaiter, tenant: string | null): void {
    const now = Date.now();
    this.waiters.push({ waiter, tenant, enqueuedAt: now, deadline: now + this.pool.cfg.acquire_timeout_ms });
    this.deadline.arm(this.waiters.earliestDeadline());
  }

  /** Takes out the next waiter `eligible` allows (see Waiters.next), or returns null. */
  next(eligible: (tenant: string | null) => boolean): Queued | null {
    const q = this.waiters.next(eligible);
    if (q && this.waiters.length === 0) this.deadline.disarm();
    return q;
  }

  eligibleCount(eligible: (tenant: string | null) => boolean): number {
    return this.waiters.eligibleCount(eligible);
  }

  /** `waiter` leaves the queue (its client went away); false if it was not in it. */
  withdraw(waiter: PoolWaiter): boolean {
    const q = this.waiters.find((x) => x.waiter === waiter);
    if (!q || !this.waiters.remove(q)) return false;
    if (this.waiters.length === 0) this.deadline.disarm();
    return true;
  }

  /** Takes out every waiter (shutdown, or the server unreachable), to be failed. */
  drain(): Queued[] {
    this.deadline.disarm();
    return this.waiters.drain();
  }

  private expire(): void {
    const expired = this.waiters.expire(Date.now());
    this.deadline.arm(this.waiters.earliestDeadline());
    for (const q of expired) this.timedOut(q);
  }
}
