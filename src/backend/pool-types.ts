// The pool's contract with its users: waiters, release modes, events, stats, snapshot and PoolError.
import type { PoolConfig } from '../config/types.js';
import type { Handover, ReadbackOutcome } from './handover.js';
import type { SaturationKind } from './pool-policy.js';
import type { ServerConn } from './server.js';

export class PoolError extends Error {
  constructor(
    message: string,
    public readonly sqlstate: string,
    /** The underlying cause without this error's own wording (e.g. the connect error), for callers that add theirs. */
    public readonly detail: string = message,
  ) {
    super(message);
    this.name = 'PoolError';
  }
}

/** How a client hands a backend back. */
export type ReleaseMode = 'idle' | 'in-transaction' | 'broken';

/**
 * A client asking for a backend. Exactly one of the two is called, synchronously from the pool (never from
 * a microtask): a backend handed over from another client's ReadyForQuery is owned by the waiter before the
 * rest of that network read is dispatched, so a FATAL in the same read reaches the waiter.
 */
export interface PoolWaiter {
  /** The client's tenant, for fairness and pool.tenant_max_backends (null or absent: trusted, uncapped). */
  readonly tenant?: string | null;
  /** A live backend; `handover` (if not null) must be written in front of the client's first message. */
  granted(conn: ServerConn, handover: Handover | null): void;
  failed(err: PoolError): void;
}

export interface PoolEvents {
  opened(conn: ServerConn): void;
  closed(conn: ServerConn, reason: string): void;
  acquired(waitSeconds: number): void;
  resetFailed(conn: ServerConn, reason: string): void;
  reset(mode: 'eager' | 'pipelined'): void;
  connectFailed(err: Error): void;
  /** A client's read-back check ran, failed, or could not run (backend closed): counted, never silent. */
  readback?(outcome: ReadbackOutcome, reason: string | null): void;
  /** Utilisation crossed pool.alert_threshold (saturated) or fell back below it with hysteresis. */
  saturation?(kind: SaturationKind, saturated: boolean, utilisation: number): void;
  /** The server became unreachable or reachable again: told once per change, not per attempt. */
  reachability?(reachable: boolean, err: string | null, retryInMs: number): void;
}

export interface PoolStats {
  size: number;
  /** size + overflow: backends never exceed it. */
  cap: number;
  /** Backends open beyond size. */
  overflowOpen: number;
  /** Backends held by a client now (checked out): the cap utilisation is held / cap. */
  held: number;
  open: number;
  busy: number;
  idle: number;
  connecting: number;
  waiting: number;
}

export interface PoolSnapshot {
  stats: PoolStats;
  conns: Array<{ conn: ServerConn; idle: boolean }>;
  /** From the newest handshake; null before the first backend was opened. */
  params: Map<string, string> | null;
}

/** The pool's keys as now configured (reloadable), read by the parts the pool owns. */
export interface PoolSettings {
  readonly cfg: PoolConfig;
  /** size + overflow: backends never exceed it. */
  readonly cap: number;
}
