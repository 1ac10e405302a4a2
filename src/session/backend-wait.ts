// A session's wait for a backend at a transaction start: the gate while the proxy is paused, its user's slot, then the pool.
import type { Handover } from '../backend/handover.js';
import type { Pool } from '../backend/pool.js';
import type { PoolWaiter } from '../backend/pool-types.js';
import type { ServerConn } from '../backend/server.js';
import type { SlotWaiter, UserSlots } from '../backend/user-slots.js';
import type { TransactionGate } from './observer.js';

/** What the wait tells its session; exactly one of the two per wait that is not withdrawn. */
export interface WaitOwner {
  /** A backend; `handover` (if not null) must be written in front of the client's first message. */
  granted(server: ServerConn, handover: Handover | null): void;
  /** No slot or backend could be had. */
  failed(err: Error): void;
}

export class BackendWait {
  /** What the session waits on now: the gate, its user's slot first (if capped), then the pool. */
  private on: 'gate' | 'slot' | 'pool' | null = null;
  /** The session as a waiter, made once (no allocation per transaction); its tenant decides fairness. */
  private readonly poolWaiter: PoolWaiter;
  private readonly slotWaiter: SlotWaiter;

  constructor(
    private readonly pool: Pool,
    /** The static user's own cap, taken before the shared pool. */
    private readonly slots: UserSlots | undefined,
    /** While the proxy is paused (console PAUSE), new transactions wait here. */
    private readonly gate: TransactionGate | undefined,
    tenant: string | null,
    owner: WaitOwner,
  ) {
    this.poolWaiter = {
      tenant,
      granted: (server, handover) => {
        this.on = null;
        owner.granted(server, handover);
      },
      failed: (err) => owner.failed(err),
    };
    this.slotWaiter = {
      granted: () => this.requestPool(),
      failed: (err) => owner.failed(err),
    };
  }

  /**
   * Starts waiting; an idle backend and a free slot are granted synchronously, before this returns. True if
   * held at the gate while the proxy is paused: a client that leaves meanwhile takes nothing.
   */
  begin(): boolean {
    const gate = this.gate?.() ?? null;
    if (!gate) {
      this.request();
      return false;
    }
    this.on = 'gate';
    void gate.then(() => {
      if (this.on === 'gate') this.request();
    });
    return true;
  }

  /** Asks the pool: after the user's slot, or again when the backend granted had closed meanwhile. */
  requestPool(): void {
    this.on = 'pool';
    this.pool.request(this.poolWaiter);
  }

  /** The wait failed: a slot already taken goes back when the pool cannot serve. */
  giveUp(): void {
    if (this.on === 'pool') this.slots?.release();
    this.on = null;
  }

  /** A client that goes while waiting leaves the queues at once: no slot or backend is ever granted to it. */
  withdraw(): void {
    if (this.on === 'slot') this.slots?.cancelRequest(this.slotWaiter);
    else if (this.on === 'pool' && this.pool.cancelRequest(this.poolWaiter)) this.slots?.release();
    this.on = null;
  }

  /** Asks for a slot (static users) then a backend. */
  private request(): void {
    if (this.slots) {
      this.on = 'slot';
      this.slots.request(this.slotWaiter);
    } else this.requestPool();
  }
}
