// One timer for a queue of waiters with deadlines (the pool's and a static user's): armed for the earliest
// deadline only, so a thousand waiters cost one timer, not a thousand.

export class DeadlineTimer {
  private timer: NodeJS.Timeout | null = null;

  /** @param fire called when the armed deadline passes (the timer is already disarmed then) */
  constructor(private readonly fire: () => void) {}

  /** Arms for `at` (epoch ms), unless already armed or there is no deadline. */
  arm(at: number | null): void {
    if (this.timer || at === null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.fire();
    }, Math.max(0, at - Date.now()));
  }

  disarm(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
  }
}
