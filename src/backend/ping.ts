// pool.pre_ping: checks an idle backend with an empty simple Query before a client gets it. An empty query
// string is the cheapest round trip the server answers (EmptyQueryResponse, ReadyForQuery): nothing is parsed,
// planned or logged as a statement.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
import { Backend, TxStatus } from '../protocol/codes.js';
import { Action } from '../protocol/frames.js';
import type { ServerConn } from './server.js';

/** Query message with an empty string: 'Q', int32 length 5, "\0". */
const EMPTY_QUERY = Buffer.from([0x51, 0, 0, 0, 5, 0]);

/** Calls `done(null)` if the backend answered idle within `timeoutMs`, else `done(reason)`; exactly once. */
export function pingBackend(conn: ServerConn, timeoutMs: number, done: (err: string | null) => void): void {
  let finished = false;
  const finish = (err: string | null): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    offClose();
    conn.detach();
    done(err);
  };
  const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
  const offClose = conn.onClose((reason) => finish(reason));
  conn.attach({
    classify: (type) => (type === Backend.ErrorResponse || type === Backend.ReadyForQuery ? Action.Inspect : Action.Drop),
    inspect: (type, body) => {
      if (type === Backend.ErrorResponse) finish('the server answered the ping with an error');
      else finish(body[0] === TxStatus.Idle ? null : `backend not idle after the ping (status ${String.fromCharCode(body[0])})`);
      return false;
    },
    write: () => {},
  });
  if (!conn.closed) conn.write(EMPTY_QUERY);
}
