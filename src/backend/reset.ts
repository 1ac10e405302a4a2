// The eager path of a hand-over: nobody waits for the backend, so what it owes (rollback, read-back,
// DISCARD ALL, reseed) runs at once in its own round trip, judged by the Handover. The server must end
// idle, or the connection is closed.
// Reference: https://www.postgresql.org/docs/current/sql-discard.html
import { Backend } from '../protocol/codes.js';
import { Action } from '../protocol/frames.js';
import type { Handover } from './handover.js';
import type { ServerConn } from './server.js';

export type ResetResult = { ok: true } | { ok: false; reason: string };

/** Messages whose body the hand-over reads; the rest of the reset's answers are dropped by type alone. */
export function handoverReads(type: number): boolean {
  return type === Backend.ErrorResponse || type === Backend.CommandComplete || type === Backend.ReadyForQuery || type === Backend.DataRow;
}

/** Runs `handover` on `conn` now; calls `done` exactly once with the outcome. The caller closes the connection on failure. */
export function runEagerHandover(conn: ServerConn, handover: Handover, timeoutMs: number, done: (r: ResetResult) => void): void {
  let finished = false;
  const finish = (r: ResetResult): void => {
      finished = true;
    clearTimeout(timer);
    offClose();
    conn.detach();
    if (!r.ok) handover.abandon(r.reason);
    done(r);
  };
  const timer = setTimeout(() => finish({ ok: false, reason: `reset did not finish within ${timeoutMs} ms` }), timeoutMs);
  // Told at once if the connection is already closed (see ServerConn.onClose).
  const offClose = conn.onClose((reason) => finish({ ok: false, reason }));
  conn.attach({
    classify: (type) => (handoverReads(type) ? Action.Inspect : Action.Drop),
    inspect: (type, body) => {
      const v = handover.answer(type, body);
      if (v.state === 'done') finish({ ok: true });
      else if (v.state === 'failed') finish({ ok: false, reason: v.reason });
      return false;
    },
    write: () => {},
  });
  conn.write(handover.bytes('eager'));
}
