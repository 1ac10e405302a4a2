// Asks PostgreSQL which of some server process ids still exist, on a backend this worker already holds
// (taken from its own pool share, so the check itself never adds a connection beyond the budget).
// Used by the primary's budget fence: a dead worker's share is reused only once its backends are gone.
import { serialize } from 'pg-protocol';
import type { Pool } from '../backend/pool.js';
import { dataRowFields } from '../backend/readback.js';
import { Backend } from '../protocol/codes.js';
import { decodeErrorFields } from '../protocol/decode.js';
import { Action } from '../protocol/frames.js';

/** The subset of `pids` (integers) that pg_stat_activity still lists. Rejects if the query fails or times out. */
export async function livePids(pool: Pool, pids: number[], timeoutMs = 5000): Promise<number[]> {
  if (!pids.every((p) => Number.isInteger(p) && p > 0)) throw new Error('pids must be positive integers');
  if (pids.length === 0) return [];
  const conn = await pool.acquire();
  let broken = false;
  try {
    return await new Promise<number[]>((resolve, reject) => {
      const live: number[] = [];
      // The backend may be handed over with its reset (and the last client's read-back check) still due.
      // They are left for the pool to run at release: this read-only query of a system view changes no
      // session state, and a DISCARD ALL here would make the pending read-back see a wiped context.
      // Simple Query: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
      let expectedRfq = 1;
      let error: string | null = null;
      const finish = (e: Error | null): void => {
        clearTimeout(timer);
        offClose();
        conn.detach();
        if (e) {
          broken = true;
          reject(e);
        } else resolve(live);
      };
      const timer = setTimeout(() => finish(new Error(`pg_stat_activity check did not answer within ${timeoutMs} ms`)), timeoutMs);
      const offClose = conn.onClose((reason) => finish(new Error(reason)));
      conn.attach({
        classify: (type) => (type === Backend.DataRow || type === Backend.ErrorResponse || type === Backend.ReadyForQuery ? Action.Inspect : Action.Drop),
        inspect: (type, body) => {
          if (type === Backend.DataRow) live.push(Number(dataRowFields(body)[0]));
          else if (type === Backend.ErrorResponse) {
            const f = decodeErrorFields(body);
            error = `${f.C ?? ''} ${f.M ?? ''}`.trim();
          } else if (--expectedRfq === 0) finish(error ? new Error(error) : null);
          return false;
        },
        write: () => {},
      });
      // Not pg_stat_activity: the tenancy kit revokes it from PUBLIC (it shows other sessions' query text).
      // The backend-id functions show only process ids, which is all the fence needs.
      const query = serialize.query(
        `SELECT p FROM (SELECT pg_catalog.pg_stat_get_backend_pid(b) AS p FROM pg_catalog.pg_stat_get_backend_idset() AS b) s WHERE p IN (${pids.join(',')})`,
      );
      conn.write(query);
    });
  } finally {
    pool.release(conn, broken ? 'broken' : 'idle', null);
  }
}
