// One admin console connection after its login: simple Query messages only, answered with real result
// sets so psql works. Extended-protocol messages get a clear error (then ReadyForQuery at their Sync).
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
import type net from 'node:net';
import { Frontend } from '../../protocol/codes.js';
import { errorResponse, readyForQuery } from '../../protocol/encode.js';
import { runCommand, type ConsoleDeps } from './commands.js';
import { CommandError, parseCommand, splitStatements } from './parse.js';
import { emptyQueryResponse } from './result-set.js';

/** The console's commands are short: a larger message is refused before it is buffered. */
const MAX_MESSAGE = 64 * 1024;

const EXTENDED = new Set<number>([Frontend.Parse, Frontend.Bind, Frontend.Describe, Frontend.Execute, Frontend.Close, Frontend.Flush]);

export function runConsole(socket: net.Socket, deps: ConsoleDeps, user: string, initial: Buffer | null): void {
  let buf: Buffer = initial ?? Buffer.alloc(0);
  let busy = false;
  let closed = false;
  /** After an extended-protocol message: drop until Sync, as the server does after an error. */
  let rejecting = false;
  const alive = (): boolean => !closed;
  const fatal = (code: string, message: string): void => {
    closed = true;
    socket.end(errorResponse({ severity: 'FATAL', code, message }));
  };

  const pump = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      while (!closed && buf.length >= 5) {
        const type = buf[0];
        const len = buf.readUInt32BE(1);
        if (len < 4 || len > MAX_MESSAGE) return fatal('08P01', `invalid console message length ${len} (most ${MAX_MESSAGE} bytes)`);
        if (buf.length < 1 + len) break;
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        await handle(type, body);
      }
    } finally {
      busy = false;
    }
  };

  const handle = async (type: number, body: Buffer): Promise<void> => {
    if (type === Frontend.Terminate) {
      closed = true;
      socket.end();
      return;
    }
    if (type === Frontend.Sync) {
      rejecting = false;
      socket.write(readyForQuery('I'));
      return;
    }
    if (rejecting) return;
    if (EXTENDED.has(type)) {
      rejecting = true;
      socket.write(
        errorResponse({
          code: '0A000',
          message: 'the admin console accepts simple queries only, not the extended query protocol',
          hint: 'use psql (without \\bind) or a driver in simple-query mode, e.g. psql -c "SHOW POOLS"',
        }),
      );
      return;
    }
    if (type !== Frontend.Query) {
      socket.write(errorResponse({ code: '0A000', message: `message type "${String.fromCharCode(type)}" is not supported by the admin console` }));
      socket.write(readyForQuery('I'));
      return;
    }
    const text = body.toString('utf8', 0, Math.max(0, body.length - 1));
    const out: Buffer[] = [];
    const statements = splitStatements(text);
    for (const stmt of statements) {
      try {
        const cmd = parseCommand(stmt);
        if (!cmd) {
          if (statements.length === 1) out.push(emptyQueryResponse());
          continue;
        }
        deps.log.info({ event: 'ADMIN_COMMAND', user, command: cmd.kind }, 'admin console command');
        out.push(await runCommand(cmd, deps, alive));
      } catch (e) {
        const ce = e instanceof CommandError ? e : new CommandError(`internal error: ${(e as Error).message}`, 'XX000', '');
        out.push(errorResponse({ code: ce.sqlstate, message: ce.message, ...(ce.hint ? { hint: ce.hint } : {}) }));
        break; // like PostgreSQL: the rest of a multi-statement query is not run after an error
      }
    }
    out.push(readyForQuery('I'));
    if (!closed) socket.write(Buffer.concat(out));
  };

  socket.on('data', (chunk: Buffer) => {
    if (closed) return;
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    // One oversized message is caught in pump; this bounds what piles up behind a command still running (PAUSE).
    if (buf.length > 4 * MAX_MESSAGE) return fatal('54000', 'too much unread input on the admin console');
    void pump();
  });
  socket.on('close', () => (closed = true));
  socket.on('error', () => {
    closed = true;
    socket.destroy();
  });
  void pump();
}
