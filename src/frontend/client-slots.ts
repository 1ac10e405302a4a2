// The max_client_conn budget: one slot per admitted client socket, held from accept until that socket
// closes, whatever path closes it (login refused, timed out, session ended, shutdown). The socket's own
// 'close' event is the single owner of the release, so no code path can forget it.
import type net from 'node:net';

export class ClientSlots {
  private readonly held = new Set<net.Socket>();
  /** Sockets being refused for lack of a slot (they are answered, then closed); bounded by `maxRefusing`. */
  private readonly refusing = new Set<net.Socket>();

  constructor(
    private readonly max: number,
    private readonly maxRefusing: number,
  ) {}

  /**
   * 'admitted' takes a slot; 'refuse' means no slot is free but the socket may be told so (it is tracked
   * until it closes, without a slot); 'drop' means even the refusal budget is spent: destroy it unanswered.
   */
  take(socket: net.Socket): 'admitted' | 'refuse' | 'drop' {
    const into = this.held.size < this.max ? this.held : this.refusing.size < this.maxRefusing ? this.refusing : null;
    if (!into) return 'drop';
    into.add(socket);
    socket.once('close', () => into.delete(socket));
    return into === this.held ? 'admitted' : 'refuse';
  }

  /** Client sockets holding a slot now. */
  get size(): number {
    return this.held.size;
  }

  /** Every socket tracked (admitted or being refused), for shutdown. */
  all(): net.Socket[] {
    return [...this.held, ...this.refusing];
  }
}
