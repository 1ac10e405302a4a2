// Shutdown with a drain (SIGTERM; issue 12 item 6): /readyz turns 503 at once so the load balancer stops
// sending; the listener closes; clients outside a transaction get FATAL 57P01 now; clients inside one may
// finish it within shutdown.drain_timeout_ms and then get 57P01; at the deadline whoever is left is
// terminated, and a query still running is cancelled on the server (the pool waits for the cancels), so no
// query or lock outlives the proxy. Then backends are closed.
import type net from 'node:net';
import type { Logger } from 'pino';
import type { AdminServer } from './admin/http.js';
import type { PauseGate } from './admin/pause-gate.js';
import type { Pool } from './backend/pool.js';
import type { Readiness } from './backend/probe.js';
import type { Admission } from './frontend/admission.js';
import type { Session } from './session/bridge.js';

export interface Drainable {
  listener: net.Server;
  sessions: Set<Session>;
  admission: Admission;
  readiness: Readiness;
  pool: Pool;
  /** The console's PAUSE gate: opened at the end so nothing waits on it after the proxy is gone. */
  gate: PauseGate;
  admin: AdminServer | null;
  log: Logger;
  /** Turns /readyz to 503. */
  stopReady(): void;
}

export async function drain(d: Drainable, timeoutMs: number): Promise<void> {
  d.stopReady();
  d.listener.close(); // logins already under way are refused by the session assembly while draining
  for (const s of [...d.sessions]) s.drain();
  const inTransaction = d.sessions.size; // the others were outside a transaction and are gone
  if (timeoutMs > 0 && d.sessions.size > 0) {
    d.log.info({ event: 'DRAIN', clients_in_transaction: d.sessions.size, timeout_ms: timeoutMs }, 'draining: clients inside a transaction may finish it');
    const deadline = Date.now() + timeoutMs;
    while (d.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
  }
  const left = d.sessions.size;
  // Terminating an active session cancels its running query on the server before closing the backend.
  for (const s of [...d.sessions]) s.terminate({ code: '57P01', message: 'terminating connection: pg-tenant-proxy is shutting down (shutdown.drain_timeout_ms reached)' });
  if (inTransaction > 0) d.log.info({ event: 'DRAIN_DONE', terminated_at_deadline: left }, 'drain finished');
  d.admission.destroyAll(); // whatever socket is left (logins under way, FATALs still flushing)
  d.readiness.close();
  await d.pool.close();
  d.gate.resume();
  await d.admin?.close();
}
