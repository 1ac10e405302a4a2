// Issues the BackendKeyData the proxy shows each client, and maps a CancelRequest back to its session.
// The key is the proxy's own, never a server's, so a client can only ever cancel its own query.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
import { timingSafeEqual } from 'node:crypto';
import { randomIntBelow, randomUint32 } from '../util/random-block.js';

export interface Cancellable {
  cancel(): void;
}

export interface CancelKey {
  pid: number;
  secret: Buffer;
}

export class CancelRegistry {
  private readonly byPid = new Map<number, { secret: Buffer; target: Cancellable }>();

  /** With worker processes, worker `index` of `count` issues only pids with pid % count === index (src/cluster/cancel-router.ts). */
  constructor(private readonly shard: { index: number; count: number } = { index: 0, count: 1 }) {}

  /** Allocates a unique key for a new client. */
  register(target: Cancellable): CancelKey {
    let pid: number;
    const { index, count } = this.shard;
    do pid = randomIntBelow(1, Math.floor(0x7fffffff / count)) * count + index;
    while (this.byPid.has(pid));
    const secret = Buffer.allocUnsafe(4);
    secret.writeUInt32BE(randomUint32(), 0);
    this.byPid.set(pid, { secret, target });
    return { pid, secret };
  }

  unregister(pid: number): void {
    this.byPid.delete(pid);
  }

  /** Returns true if the key matched a client (compared in constant time) and its cancel was triggered. */
  cancel(pid: number, secret: Buffer): boolean {
    const entry = this.byPid.get(pid);
    if (!entry || secret.length !== entry.secret.length || !timingSafeEqual(secret, entry.secret)) return false;
    entry.target.cancel();
    return true;
  }

  get size(): number {
    return this.byPid.size;
  }
}
