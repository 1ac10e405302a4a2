// What a session is given: its client socket, pool, tenant context, limits, hooks and observers.
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Pool } from '../backend/pool.js';
import type { Readback } from '../backend/readback.js';
import type { UserSlots } from '../backend/user-slots.js';
import type { GuardHook } from './guard-hook.js';
import type { SessionObserver, TransactionGate } from './observer.js';
import type { StatementLimits } from './statements.js';
import type { TenantContext } from './tenant-context.js';

export interface SessionHooks {
  /** A transaction ended on the server (ReadyForQuery 'I'). */
  transactionDone(): void;
  /** The tenant context could not be set; the client's statement did not run. */
  contextFailed(reason: string): void;
  /** The DISCARD ALL pipelined in front of this client failed; the backend was closed. */
  resetFailed(reason: string): void;
  /** No backend could be had (timeout, queue full, database unreachable). */
  acquireFailed(sqlstate: string): void;
  /** The token expired on an open connection; the client is being disconnected. */
  tokenExpired(): void;
  /** The client's tenant was suspended (tenant.deny); the client is being disconnected. */
  tenantSuspended(): void;
  /** The session ended; unregister it. */
  closed(): void;
}

export interface SessionOptions {
  client: net.Socket;
  pool: Pool;
  log: Logger;
  /** The client's tenant context; its prefix is written in front of each transaction. */
  context: TenantContext;
  /** The client's tenant (null: a trusted login), for the pool's fairness and pool.tenant_max_backends. */
  tenant?: string | null;
  /** listen.client_idle_timeout_ms as now configured (reloadable); 0 or absent: off. */
  clientIdleMs?: () => number;
  /** transaction: the backend is released at the end of each transaction; session: when the client leaves. */
  mode: 'transaction' | 'session';
  statementLimits: StatementLimits;
  /** When the client's token expires (epoch ms, clock tolerance included): no transaction starts after it. */
  expiresAtMs: number;
  /** The statement guard for this client's Query and Parse messages (tenant logins; not tenant: none). */
  guard?: GuardHook;
  /** The read-back check for this client's context (tenant.readback_check), if it has one. */
  readback?: Readback;
  /** True while the client's tenant is suspended (tenant.deny): no transaction may start. */
  suspended: () => boolean;
  /** The static user's own cap, taken before the shared pool. */
  userSlots?: UserSlots;
  /** ParameterStatus values the client has been shown, to drop repeats caused by the per-transaction context. */
  shownParams: Map<string, string>;
  hooks: SessionHooks;
  /** Admin view of this client (SHOW CLIENTS, per-tenant stats, duration histograms). */
  observer?: SessionObserver;
  /** Consulted at each transaction start: while the proxy is paused (console PAUSE), new transactions wait. */
  gate?: TransactionGate;
}
