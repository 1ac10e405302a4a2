// One timer for a queue of waiters with deadlines (the pool's and a static user's): armed for the earliest
// deadline only, so a thousand waiters cost one timer, not a thousand.

export class DeadlineTimer {
  private timer: NodeJS.Timeout | null = null;
  private armedAt = Infinity;

  /** @param fire called when the armed deadline passes (the timer is already disarmed then) */
  constructor(private readonly fire: () => void) {}

  /**
   * Arms for `at` (epoch ms), unless already armed for that time or sooner, or there is no deadline. An
   * earlier deadline re-arms: deadlines are not always in arrival order (a reload lowering
   * acquire_timeout_ms while clients wait), and a new waiter must not wait for an older one's deadline.
   */
  arm(at: number | null): void {
    if (at === null || (this.timer && this.armedAt <= at)) return;
    this.disarm();
    this.armedAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.armedAt = Infinity;
      this.fire();
    }, Math.max(0, at - Date.now()));
  }

  disarm(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.armedAt = Infinity;
  }
}
