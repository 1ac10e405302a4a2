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
  deadline: number;
}

export class UserSlots {
  private used = 0;
  /** FIFO with one timeout for all, so deadlines are in order and one timer serves the queue. */
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
    this.queue.push({ waiter, deadline: Date.now() + this.timeoutMs });
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

  private arm(): void {
    this.timer.arm(this.queue.length === 0 ? null : this.queue[0].deadline);
  }

  private disarm(): void {
    this.timer.disarm();
  }

  private expire(): void {
    const now = Date.now();
    const expired: Queued[] = [];
    while (this.queue.length > 0 && this.queue[0].deadline <= now) expired.push(this.queue.shift()!);
    this.arm();
    const waited = this.timeoutMs;
    for (const q of expired) {
      q.waiter.failed(
        new PoolError(`user "${this.user}" already holds its ${this.limit} backend connections (users[].pool_size); waited ${waited} ms`, '53300'),
      );
    }
  }
}
