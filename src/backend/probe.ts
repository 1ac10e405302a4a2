// Readiness: is the backend usable now? Up: a bare TCP connect that sends nothing (PostgreSQL does not log
// such connections), cached briefly so a busy /readyz cannot hammer the server. Down (a real backend login
// failed, or the TCP probe did): a real login is retried in the background at a bounded rate until one
// succeeds, so readiness comes back by itself after an outage, with no client traffic.
import net from 'node:net';
import type { Logger } from 'pino';
import type { BackendConfig } from '../config/types.js';
import { connectBackend, type Handshake } from './connect.js';

/** How long a TCP probe result is reused. */
const CACHE_MS = 2000;
/** Pause between background logins while down: at most one login per this interval (plus its own duration). */
export const RECOVERY_PROBE_INTERVAL_MS = 1000;
/** Terminate ('X'): ends a probe login politely, so the server logs no "unexpected EOF". */
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

export class Readiness {
  /** Why the backend is considered down, or null while up. */
  private down: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private probing = false;
  private closed = false;
  private lastTcp: { at: number; ok: boolean } | null = null;
  /** True while the pool holds open backends; set by the server once the pool exists. */
  serving: () => boolean = () => false;

  constructor(
    private readonly cfg: BackendConfig,
    private readonly log?: Logger,
    private readonly connect: (cfg: BackendConfig) => Promise<Handshake> = connectBackend,
  ) {}

  /**
   * A real backend login failed (the pool's, or ours): down until a later login succeeds. Except a login the
   * server refused for a resource limit (class 53: max_connections, a role's CONNECTION LIMIT) while the pool
   * still holds open backends: the server answers and the proxy serves its clients, so /readyz stays 200;
   * otherwise every replica would leave the load balancer at once over a limit that only stops the pool
   * from growing (an overflow login refused).
   */
  failed(reason: string, sqlstate?: string): void {
    if (this.closed) return;
    if (sqlstate?.startsWith('53') && this.down === null && this.serving()) return;
    if (this.down === null) this.log?.warn({ event: 'NOT_READY', reason }, 'backend unusable: /readyz answers 503 until a backend login succeeds again');
    this.down = reason;
    this.lastTcp = null;
    this.schedule();
  }

  /** A real backend login succeeded (the pool's, or ours). */
  succeeded(): void {
    if (this.down !== null) this.log?.info({ event: 'READY' }, 'backend usable again: /readyz answers 200');
    this.down = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** For /readyz: false while down; else the (cached) TCP probe, whose failure turns it down. */
  async check(): Promise<boolean> {
    if (this.down !== null) return false;
    const last = this.lastTcp;
    if (last && Date.now() - last.at < CACHE_MS) return last.ok;
    const ok = await tcpProbe(this.cfg);
    this.lastTcp = { at: Date.now(), ok };
    if (!ok) this.failed(`TCP connect to ${this.cfg.host}:${this.cfg.port} failed`);
    return ok && this.down === null;
  }

  get isDown(): boolean {
    return this.down !== null;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer || this.probing || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.probe();
    }, RECOVERY_PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    if (this.closed || this.down === null) return;
    this.probing = true;
    try {
      const hs = await this.connect(this.cfg);
      hs.socket.end(TERMINATE);
      hs.socket.destroySoon?.();
      this.probing = false;
      this.succeeded();
    } catch (e) {
      this.probing = false;
      if (this.down !== null) this.down = (e as Error).message;
      this.schedule();
    }
  }
}

function tcpProbe(cfg: BackendConfig): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: cfg.host, port: cfg.port });
    const done = (result: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(false), Math.min(cfg.connect_timeout_ms, 2000));
    socket.on('connect', () => done(true));
    socket.on('error', () => done(false));
  });
}
