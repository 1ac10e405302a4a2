// pool.partial_message_timeout_ms: a client that sends part of a message and goes quiet while holding a backend is disconnected.
import type { Logger } from 'pino';
import type { ErrorFields } from '../protocol/encode.js';

/** What the watch needs from its session. */
export interface PartialMessageOwner {
  /** True while the client holds a backend with a message half sent. */
  midMessage(): boolean;
  /** True while the proxy itself does not read the client (backpressure from the server). */
  readPaused(): boolean;
  /** FATAL to the client; the session ends (the backend is closed: a half-received message cannot be reset). */
  fatal(fields: ErrorFields): void;
}

/**
 * A client holding a backend with half a message sent keeps that backend (and whatever it subscribed to)
 * for as long as it stays quiet. Bounded: after pool.partial_message_timeout_ms without a byte, the
 * client gets FATAL 08P01 (the server's own code for an incomplete message) and the backend is closed,
 * since a half-received message cannot be reset. Any byte from the client restarts the wait.
 */
export class PartialMessageWatch {
  /** Armed while the client holds a backend with a message half sent. */
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly limitMs: () => number,
    private readonly log: Logger,
    private readonly owner: PartialMessageOwner,
  ) {}

  /** After each client read and at each hold's start: waits (again) while a message is half sent, else stops. */
  check(): void {
    if (!this.owner.midMessage()) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      return;
    }
    if (this.timer) {
      this.timer.refresh();
      return;
    }
    const ms = this.limitMs();
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.owner.midMessage()) return;
      // Not reading it was the proxy's choice (backpressure from the server): that is no quiet client.
      if (this.owner.readPaused()) return this.check();
      this.log.warn({ event: 'PARTIAL_MESSAGE_TIMEOUT', ms }, 'client sent part of a message and went quiet while holding a backend; disconnected');
      this.owner.fatal({
        code: '08P01',
        message: `incomplete message from client: part of a message was sent, then nothing for ${ms} ms while a database connection was held; the connection is closed`,
        hint: 'Check the client for a stalled write or a broken network path (pool.partial_message_timeout_ms).',
      });
    }, ms);
  }

  /** The session ended. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
