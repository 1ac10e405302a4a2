// The IPC messages between the primary and its workers (process.send / worker.send, JSON-serialised).
import type { AdminAction, ActionResult } from '../admin/console/actions.js';
import type { WorkerRow } from './view.js';

/** Primary → worker requests; the worker answers each with a Reply carrying the same id. */
export type Request =
  | { t: 'pgtp:metrics'; id: number }
  | { t: 'pgtp:ready'; id: number }
  | { t: 'pgtp:ping'; id: number }
  | { t: 'pgtp:live-pids'; id: number; pids: number[] }
  /** Apply a console action in this worker only; the answer is its ActionResult. */
  | { t: 'pgtp:admin-action'; id: number; action: AdminAction };

/** Primary → worker commands without an answer. */
export type Command =
  | { t: 'pgtp:cancel'; pid: number; secret: string }
  | { t: 'pgtp:reload' }
  /** The workers' states, for SHOW WORKERS (see view.ts). */
  | { t: 'pgtp:workers'; rows: WorkerRow[] }
  /** The answer to a worker's pgtp:admin-action: every running worker's result. */
  | { t: 'pgtp:admin-done'; id: number; ok: boolean; results?: ActionResult[]; error?: string }
  /** Drain (SIGTERM); `now`: a second signal, stop at once (drain with no grace). */
  | { t: 'pgtp:shutdown'; now?: boolean };

/** Worker → primary. */
export type WorkerMessage =
  | { t: 'pgtp:listening'; port: number }
  | { t: 'pgtp:backend-open'; pid: number; secret: string }
  | { t: 'pgtp:backend-close'; pid: number }
  | { t: 'pgtp:cancel'; pid: number; secret: string }
  /** A console action to apply on every worker (answered with pgtp:admin-done). */
  | { t: 'pgtp:admin-action'; id: number; action: AdminAction }
  | { t: 'pgtp:reply'; id: number; ok: boolean; value?: unknown; error?: string };

export function isPgtp(m: unknown): m is { t: string } {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string' && (m as { t: string }).t.startsWith('pgtp:');
}
