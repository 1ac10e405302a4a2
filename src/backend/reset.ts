// The janitor: makes a used backend safe for the next client. DISCARD ALL must complete, with the
// server idle afterwards, or the connection is closed. An open transaction is rolled back first
// (DISCARD ALL cannot run inside a transaction block).
// Reference: https://www.postgresql.org/docs/current/sql-discard.html
import { serialize } from 'pg-protocol';
import { Backend, TxStatus } from '../protocol/codes.js';
import { decodeErrorFields } from '../protocol/decode.js';
import { Action } from '../protocol/frames.js';
import { checkReadback, dataRowFields, readbackQuery } from './readback.js';
import type { ServerConn } from './server.js';

const DISCARD_ALL = serialize.query('DISCARD ALL');

/**
 * DISCARD ALL as extended-protocol messages without a Sync, for a backend handed straight to a waiting
 * client: written at the head of that client's context prefix. As the first statement of the pipeline it
 * is allowed (it refuses only transaction blocks and later pipeline positions), it completes before any
 * later message runs, and if it fails the server skips everything up to the client's Sync: nothing of the
 * next client runs on a connection that was not reset.
 */
export const PIPELINED_DISCARD_ALL = Buffer.concat([serialize.parse({ text: 'DISCARD ALL' }), serialize.bind({}), serialize.execute({})]);
const ROLLBACK = serialize.query('ROLLBACK');
const EMPTY = Buffer.alloc(0);

export type ResetResult = { ok: true } | { ok: false; reason: string };

/**
 * Runs the reset and resolves with the outcome. The caller closes the connection on failure.
 * @param rollbackFirst the server was left inside a transaction block (client went away mid-transaction)
 */
export function resetServer(conn: ServerConn, rollbackFirst: boolean, timeoutMs: number): Promise<ResetResult> {
  return new Promise((resolve) => {
    const readback = conn.readback;
    conn.readback = null;
    let expectedRfq = (rollbackFirst ? 2 : 1) + (readback ? 1 : 0);
    let error: string | null = null;
    let discardCompleted = false;
    let done = false;
    const finish = (r: ResetResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      offClose();
      conn.detach();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: `reset did not finish within ${timeoutMs} ms` }), timeoutMs);
    const offClose = conn.onClose((reason) => finish({ ok: false, reason }));
    conn.attach({
      classify: (type) =>
        type === Backend.ErrorResponse || type === Backend.CommandComplete || type === Backend.ReadyForQuery || (readback && type === Backend.DataRow)
          ? Action.Inspect
          : Action.Drop,
      inspect: (type, body) => {
        if (type === Backend.DataRow) {
          if (readback) checkReadback(readback, dataRowFields(body));
        } else if (type === Backend.ErrorResponse) {
          const f = decodeErrorFields(body);
          error = `${f.C ?? ''} ${f.M ?? ''}`.trim();
        } else if (type === Backend.CommandComplete) {
          if (body.toString('latin1', 0, 11) === 'DISCARD ALL') discardCompleted = true;
        } else {
          expectedRfq--;
          if (expectedRfq === 0) {
            if (error) finish({ ok: false, reason: `DISCARD ALL failed: ${error}` });
            else if (!discardCompleted) finish({ ok: false, reason: 'DISCARD ALL did not complete' });
            else if (body[0] !== TxStatus.Idle) finish({ ok: false, reason: `server not idle after reset (status ${String.fromCharCode(body[0])})` });
            else finish({ ok: true });
          }
        }
        return false;
      },
      write: () => {},
    });
    conn.write(
      Buffer.concat([rollbackFirst ? ROLLBACK : EMPTY, readback ? readbackQuery(readback.setting) : EMPTY, DISCARD_ALL]),
    );
  });
}
