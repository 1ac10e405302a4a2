// A timer whose deadline moves at every transaction but rarely fires (the query, idle-in-transaction and
// client-idle clocks). Setting or clearing it is a number assignment; the setTimeout underneath is armed
// once and, when it fires early because the deadline moved on, re-armed for what is left. A setTimeout and
// clearTimeout per transaction showed in the proxy's profile.
import { performance } from 'node:perf_hooks';

export class LazyTimer {
  /** performance.now() value at which `fire` is due; 0: not set. */
  private deadline = 0;
  private timer: NodeJS.Timeout | null = null;
  /** When the armed setTimeout fires. */
  private armedFor = 0;

  /**
   * @param fire called once the deadline passes while set
   * @param unref the timer alone does not keep the process alive
   */
  constructor(
    private readonly fire: () => void,
    private readonly unref: boolean,
  ) {}

  /** Due `ms` from now (ms ≤ 0: cleared). */
  set(ms: number): void {
    if (ms <= 0) {
      this.deadline = 0;
      return;
    }
    const now = performance.now();
    this.deadline = now + ms;
    // Armed for later than the new deadline (a limit lowered by reload): re-arm sooner.
    if (this.timer && this.armedFor > this.deadline) this.disarm();
    if (!this.timer) this.arm(ms, now);
  }

  get isSet(): boolean {
    return this.deadline !== 0;
  }

  /** Not due any more; the setTimeout stays armed and finds nothing to do. */
  clear(): void {
    this.deadline = 0;
  }

  /** Cleared, and the setTimeout cancelled (the session ended). */
  stop(): void {
    this.deadline = 0;
    this.disarm();
  }

  private arm(ms: number, now: number): void {
    this.armedFor = now + ms;
    this.timer = setTimeout(this.onFire, Math.ceil(ms));
    if (this.unref) this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private readonly onFire = (): void => {
    this.timer = null;
    if (this.deadline === 0) return;
    const now = performance.now();
    const left = this.deadline - now;
    if (left > 0) return this.arm(left, now);
    this.deadline = 0;
    this.fire();
  };
}
