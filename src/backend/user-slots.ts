// A per-user cap on backend connections (users[].pool_size): a FIFO counting semaphore taken before the
// shared pool, so one migration job or SRE session cannot take every backend.
import { DeadlineTimer } from './deadline-timer.js';
import { PoolError } from './pool-types.js';

/** One waiter; exactly one of the two is called, synchronously from request() or release(). */
export interface SlotWaiter {
  granted(): void;
  failed(err: PoolError): void;
}

interface Queued {
  waiter: SlotWaiter;
  enqueuedAt: number;
  deadline: number;
}

export class UserSlots {
  private used = 0;
  /**
   * FIFO. The timeout is read live (a reload may lower it), so deadlines are not always in arrival order:
   * one timer is armed for the earliest, and every waiter past its deadline is refused.
   */
  private readonly queue: Queued[] = [];
  private readonly timer = new DeadlineTimer(() => this.expire());

  constructor(
    private readonly user: string,
    private readonly limit: number,
    /** pool.acquire_timeout_ms, or a function reading it from the live (reloaded) config. */
    private readonly timeout: number | (() => number),
  ) {}

  private get timeoutMs(): number {
    return typeof this.timeout === 'function' ? this.timeout() : this.timeout;
  }

  request(waiter: SlotWaiter): void {
    if (this.used < this.limit) {
      this.used++;
      return waiter.granted();
    }
    const now = Date.now();
    this.queue.push({ waiter, enqueuedAt: now, deadline: now + this.timeoutMs });
    this.arm();
  }

  /** The waiter's client went away: it leaves the queue and is never granted a slot. */
  cancelRequest(waiter: SlotWaiter): boolean {
    const i = this.queue.findIndex((q) => q.waiter === waiter);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    if (this.queue.length === 0) this.disarm();
    return true;
  }

  /** Promise form, for callers off the hot path. */
  acquire(): Promise<void> {
    return new Promise((resolve, reject) => this.request({ granted: resolve, failed: reject }));
  }

  release(): void {
    const q = this.queue.shift();
    if (!q) {
      this.used--;
      return;
    }
    if (this.queue.length === 0) this.disarm();
    q.waiter.granted(); // the slot passes straight to the waiter
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** The earliest deadline; a lowered acquire_timeout_ms applies to the waiters already queued too (as in the pool). */
  private arm(): void {
    if (this.queue.length === 0) return this.timer.arm(null);
    const ms = this.timeoutMs;
    let earliest = Infinity;
    for (const q of this.queue) {
      q.deadline = Math.min(q.deadline, q.enqueuedAt + ms);
      earliest = Math.min(earliest, q.deadline);
    }
    this.timer.arm(earliest);
  }

  private disarm(): void {
    this.timer.disarm();
  }

  private expire(): void {
    const now = Date.now();
    const ms = this.timeoutMs;
    const expired: Queued[] = [];
    for (let i = 0; i < this.queue.length; ) {
      const q = this.queue[i];
      if (Math.min(q.deadline, q.enqueuedAt + ms) <= now) {
        expired.push(q);
        this.queue.splice(i, 1);
      } else i++;
    }
    this.arm();
    for (const q of expired) {
      q.waiter.failed(
        new PoolError(`user "${this.user}" already holds its ${this.limit} backend connections (users[].pool_size); waited ${now - q.enqueuedAt} ms`, '53300'),
      );
    }
  }
}
