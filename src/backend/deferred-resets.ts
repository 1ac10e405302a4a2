// Idle backends whose hand-over waits for the next client (pool.reset_delay_ms), and the one timer that runs it when none comes.
import type { Handover } from './handover.js';
import type { ServerConn } from './server.js';

/**
 * Idle backends whose hand-over is deferred (pool.reset_delay_ms): pipelined in front of the next client
 * that takes them, or run eagerly once their deadline passes, so session-level locks, LISTEN and temp
 * tables a client left are released within that bound even if nobody comes. Insertion order is deadline
 * order (one delay for all), so one timer serves them.
 */
export class DeferredResets {
  private readonly deferred = new Map<ServerConn, { handover: Handover; deadline: number }>();
  private timer: NodeJS.Timeout | null = null;

  /** @param due told of each backend whose deadline passed, already taken out: its hand-over is to run on its own now */
  constructor(private readonly due: (conn: ServerConn, handover: Handover) => void) {}

  /** `conn` idles with `handover` still owed until `deadline` (epoch ms). */
  add(conn: ServerConn, handover: Handover, deadline: number): void {
    this.deferred.set(conn, { handover, deadline });
    this.arm();
  }

  /** Takes out the hand-over `conn` still owes, or returns null if it owes none. */
  take(conn: ServerConn): Handover | null {
    const d = this.deferred.get(conn);
    if (!d) return null;
    this.deferred.delete(conn);
    return d.handover;
  }

  /** `conn` closed: the hand-over it still owed (if any) is abandoned. */
  abandon(conn: ServerConn, reason: string): void {
    this.take(conn)?.abandon(reason);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  private arm(): void {
    if (this.timer) return;
    const first = this.deferred.values().next();
    if (first.done) return;
    this.timer = setTimeout(() => this.run(), Math.max(0, first.value.deadline - Date.now()));
  }

  /** Deferred hand-overs past their deadline run now, in their own round trip. */
  private run(): void {
    this.timer = null;
    const now = Date.now();
    for (const [conn, d] of this.deferred) {
      if (d.deadline > now) break;
      this.deferred.delete(conn);
      this.due(conn, d.handover);
    }
    this.arm();
  }
}
