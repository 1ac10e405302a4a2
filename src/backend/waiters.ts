// The pool's waiting clients: FIFO within a tenant, and with fairness `tenant` served round-robin across
// tenants, so one tenant flooding the pool delays another by at most one turn per waiting tenant.
// Bounded by pool.max_waiting (checked by the pool before push).

export interface Waiting {
  /** The waiter's tenant (null: trusted logins, which queue together as one "tenant"). */
  readonly tenant: string | null;
  readonly enqueuedAt: number;
  readonly deadline: number;
}

const NO_TENANT = '\u0000none';

export class Waiters<T extends Waiting> {
  /** Tenant → its FIFO; Map order is the round-robin ring (a served tenant moves to the back). */
  private readonly byTenant = new Map<string, T[]>();
  private count = 0;

  constructor(private fairness: 'fifo' | 'tenant') {}

  get length(): number {
    return this.count;
  }

  /** Applies a reloaded pool.fairness; waiters keep their order within a tenant. */
  setFairness(f: 'fifo' | 'tenant'): void {
    if (f === this.fairness) return;
    const all = this.drain().sort((a, b) => a.enqueuedAt - b.enqueuedAt);
    this.fairness = f;
    for (const w of all) this.push(w);
  }

  push(w: T): void {
    const k = this.key(w);
    let q = this.byTenant.get(k);
    if (!q) this.byTenant.set(k, (q = []));
    q.push(w);
    this.count++;
  }

  /**
   * The next waiter to serve: the head of the first tenant in the ring that `eligible` allows (a tenant at
   * pool.tenant_max_backends is skipped, keeping its place). Null if none may be served now.
   */
  next(eligible: (tenant: string | null) => boolean = () => true): T | null {
    for (const [k, q] of this.byTenant) {
      // In fifo mode every waiter shares one queue, so the cap is checked on the head only: FIFO is strict.
      const w = q[0];
      if (!eligible(w.tenant)) continue;
      q.shift();
      this.count--;
      this.byTenant.delete(k);
      if (q.length > 0) this.byTenant.set(k, q); // to the back of the ring
      return w;
    }
    return null;
  }

  /** Whether some waiter could be served now (the pool opens backends only for those). */
  eligibleCount(eligible: (tenant: string | null) => boolean): number {
    let n = 0;
    for (const q of this.byTenant.values()) if (eligible(q[0].tenant)) n += q.length;
    return n;
  }

  /** Every waiter, in no particular order. */
  *all(): IterableIterator<T> {
    for (const q of this.byTenant.values()) yield* q;
  }

  find(pred: (w: T) => boolean): T | null {
    for (const q of this.byTenant.values()) for (const w of q) if (pred(w)) return w;
    return null;
  }

  remove(w: T): boolean {
    const k = this.key(w);
    const q = this.byTenant.get(k);
    const i = q ? q.indexOf(w) : -1;
    if (!q || i < 0) return false;
    q.splice(i, 1);
    this.count--;
    if (q.length === 0) this.byTenant.delete(k);
    return true;
  }

  /** Earliest deadline of anyone waiting (heads only: within a queue deadlines are in order). */
  earliestDeadline(): number | null {
    let min: number | null = null;
    for (const q of this.byTenant.values()) if (min === null || q[0].deadline < min) min = q[0].deadline;
    return min;
  }

  /** Removes and returns every waiter whose deadline has passed. */
  expire(now: number): T[] {
    const out: T[] = [];
    for (const [k, q] of this.byTenant) {
      while (q.length > 0 && q[0].deadline <= now) out.push(q.shift()!);
      if (q.length === 0) this.byTenant.delete(k);
    }
    this.count -= out.length;
    return out;
  }

  drain(): T[] {
    const all = [...this.byTenant.values()].flat();
    this.byTenant.clear();
    this.count = 0;
    return all;
  }

  private key(w: T): string {
    return this.fairness === 'fifo' ? '' : (w.tenant ?? NO_TENANT);
  }
}
