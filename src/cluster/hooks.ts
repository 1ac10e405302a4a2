// What a worker process plugs into startProxy (src/server.ts): its shard of cancel keys, cancel routing to
// other workers, and reports of the backends it opens and closes (the primary's budget fence needs them).
import type { ApplyAction } from '../admin/console/actions.js';
import type { CancelRegistry } from '../session/cancel-registry.js';

export interface ProxyHooks {
  /** The registry issuing this worker's keys (pid % workers === worker index). */
  cancels?: CancelRegistry;
  /** Passes a CancelRequest on when another worker owns the key; returns false when the key is this worker's. */
  routeCancel?(pid: number, secret: Buffer): boolean;
  /** A backend connection completed its handshake (its server pid and cancel secret). */
  backendOpened?(pid: number, secret: Buffer): void;
  /** A backend connection was closed by the proxy or the server. */
  backendClosed?(pid: number): void;
  /** The console's state-changing commands (PAUSE, KILL, SUSPEND…), applied on every worker through the primary. */
  adminAction?: ApplyAction;
}
