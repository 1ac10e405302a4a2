// PAUSE / RESUME from the admin console: while paused, transactions already running finish and new ones
// wait at their start (before taking a backend) until RESUME. For a database failover or restart.
export class PauseGate {
  private paused = false;
  /** One entry per session held here: bounded by listen.max_client_conn. */
  private held: Array<() => void> = [];

  get isPaused(): boolean {
    return this.paused;
  }

  /** Sessions waiting at the gate now. */
  get waiting(): number {
    return this.held.length;
  }

  /** Null when a transaction may start now; else resolves on RESUME. */
  pass = (): Promise<void> | null => {
    if (!this.paused) return null;
    return new Promise((resolve) => this.held.push(resolve));
  };

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const release of held) release();
  }
}
