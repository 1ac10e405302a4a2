// Ends a client connection with a last message (a FATAL ErrorResponse) so that the client can read it, and
// makes sure the socket is gone within a bound whatever the client does.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-TERMINATION
import type net from 'node:net';
import { errorResponse, type ErrorFields } from '../protocol/encode.js';

/** After the FATAL is flushed, how long the client may take to read it and hang up before we cut it off. */
const LINGER_MS = 1000;
/** A client that does not read (its socket backpressured) is cut off after this, FATAL delivered or not. */
const FLUSH_LIMIT_MS = 5000;

/** Writes `fields` as a FATAL and closes the connection; see `closeAfter`. */
export function closeWithFatal(socket: net.Socket, fields: ErrorFields): void {
  closeAfter(socket, errorResponse({ ...fields, severity: 'FATAL' }));
}

/**
 * Writes `last` (if any), half-closes, and destroys the socket once the client hung up, or LINGER_MS after
 * the write was flushed, or FLUSH_LIMIT_MS at the latest.
 *
 * Why not `end()` alone: `end()` only sends FIN; the socket closes when the client's FIN is read, and a
 * socket nobody reads (paused, with the client's unread startup bytes in it) never sees that FIN, so it
 * stays open for good, holding a file descriptor and a max_client_conn slot.
 * Why not `end()` then `destroy()` at once: on a backpressured or TLS socket the FATAL is still in Node's
 * buffers then and is thrown away; and closing a socket with unread input makes the kernel send RST, which
 * can make the client drop the FATAL it already received. So unread input is drained (`resume()`) first.
 */
export function closeAfter(socket: net.Socket, last?: Buffer): void {
  if (socket.destroyed) return;
  if (socket.writableEnded) return; // someone already closes it this way; its timers run
  let timer = setTimeout(() => socket.destroy(), FLUSH_LIMIT_MS);
  socket.once('close', () => clearTimeout(timer));
  socket.on('error', () => socket.destroy());
  socket.resume();
  const flushed = (): void => {
    clearTimeout(timer);
    if (!socket.destroyed) timer = setTimeout(() => socket.destroy(), LINGER_MS);
  };
  if (last) socket.end(last, flushed);
  else socket.end(flushed);
}
