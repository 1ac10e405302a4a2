// What a session reports about itself to whoever watches it (the admin registry): state changes at
// transaction boundaries only, so the hot path pays one call per chunk or per ReadyForQuery, never per message.
import type { ServerConn } from '../backend/server.js';

export interface SessionObserver {
  /** The client started a transaction and waits for a backend (including while the proxy is paused). */
  waiting(): void;
  /** A backend was assigned. */
  acquired(server: ServerConn): void;
  /** No backend could be had; `sqlstate` is what the client was told. */
  acquireFailed(sqlstate: string): void;
  /** A chunk of client bytes was forwarded to the backend (marks the start of a query). */
  clientData(): void;
  /** The server sent ReadyForQuery; `idle`: the transaction is over. */
  readyForQuery(idle: boolean): void;
  /** The server sent an ErrorResponse (body without the header). */
  serverError(body: Buffer): void;
  /** The backend is no longer this client's (given back, or lost). */
  released(): void;
}

/** Holds new transactions while the proxy is paused; null when they may go on at once. */
export type TransactionGate = () => Promise<void> | null;
