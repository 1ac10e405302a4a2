// Admission of client connections: the max_client_conn slot, the startup timeout, the failed-login rate
// limit, the login itself, and the refusal (FATAL, then a close that always happens). A completed login is
// handed to `admit`, which builds the session.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import type { ProxyConfig } from '../config/types.js';
import { TenantContextError } from '../session/tenant-context.js';
import { ClientSlots } from './client-slots.js';
import { closeWithFatal } from './final-error.js';
import { countsTowardLimit, FailureLimiter } from './rate-limit.js';
import { login, LoginError, type LoginDeps, type LoginOk } from './startup.js';

/**
 * Connections over max_client_conn that are still told "too many clients" (after their SSLRequest is
 * answered); past this many at once, more are closed unanswered, so a flood cannot hold unbounded sockets.
 */
const MAX_REFUSING = 64;

export interface AdmissionDeps {
  config: ProxyConfig;
  log: Logger;
  metrics: Metrics;
  /** Login dependencies (token verification, server parameters, cancel routing, client TLS). */
  login: Omit<LoginDeps, 'upgraded' | 'refusal'>;
  /** Builds and starts the session for a completed login; throws LoginError to refuse it. */
  admit(ok: LoginOk, remote: string): void;
}

export class Admission {
  readonly slots: ClientSlots;
  readonly limiter: FailureLimiter;

  constructor(private readonly d: AdmissionDeps) {
    this.slots = new ClientSlots(d.config.listen.max_client_conn, MAX_REFUSING);
    this.limiter = new FailureLimiter(d.config.auth.rate_limit);
  }

  /** Runs one accepted connection until it is a session or closed; never throws. */
  async handle(socket: net.Socket): Promise<void> {
    const slot = this.slots.take(socket);
    if (slot === 'drop') {
      socket.destroy();
      return;
    }
    socket.on('error', () => socket.destroy());
    const { config, log, metrics } = this.d;
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const address = socket.remoteAddress ?? 'unknown';
    let client: net.Socket = socket; // the TLS socket once the client negotiated TLS
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      closeWithFatal(client, { code: '08P01', message: `startup did not complete within ${config.listen.startup_timeout_ms} ms` });
    }, config.listen.startup_timeout_ms);
    try {
      const ok = await login(socket, {
        ...this.d.login,
        upgraded: (s) => (client = s),
        refusal: () => this.refusal(slot, address),
      });
      clearTimeout(timer);
      if (!ok || timedOut || ok.socket.destroyed || ok.socket.writableEnded) return;
      this.d.admit(ok, remote);
    } catch (e) {
      clearTimeout(timer);
      const le =
        e instanceof LoginError
          ? e
          : e instanceof TenantContextError
            ? new LoginError('28000', e.message, 'bad_tenant')
            : new LoginError('08006', `internal error during login: ${(e as Error).message}`, 'internal');
      if (le.reason === 'too_many_clients') {
        log.debug({ event: 'CLIENT_REFUSED', reason: le.reason, client: remote }, 'connection refused: max_client_conn reached');
      } else {
        metrics.authFailures.inc({ reason: le.reason });
        metrics.errors.inc({ class: le.sqlstate.slice(0, 2), source: 'proxy' });
        metrics.securityEvents.inc({ event: 'AUTH_FAILED' });
        if (countsTowardLimit(le.reason)) this.limiter.fail(address);
        log.warn({ event: 'AUTH_FAILED', reason: le.reason, sqlstate: le.sqlstate, client: remote, detail: le.message }, 'login refused');
      }
      if (!timedOut) closeWithFatal(client, { code: le.sqlstate, message: le.message, hint: le.hint });
    }
  }

  /** Destroys every client socket (shutdown; sessions were told first). */
  destroyAll(): void {
    for (const s of this.slots.all()) s.destroy();
  }

  private refusal(slot: 'admitted' | 'refuse', address: string): LoginError | null {
    if (slot === 'refuse') {
      return new LoginError('53300', 'sorry, too many clients already', 'too_many_clients', 'raise listen.max_client_conn, or lower the number of client connections');
    }
    const wait = this.limiter.retryAfter(address);
    if (wait > 0) {
      return new LoginError('28000', `too many failed logins from this address; retry in ${Math.ceil(wait / 1000)} s`, 'rate_limited');
    }
    return null;
  }
}
