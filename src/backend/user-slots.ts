// A per-user cap on backend connections (users[].pool_size): a FIFO counting semaphore taken before the
// shared pool, so one migration job or SRE session cannot take every backend.
import { PoolError } from './pool.js';

interface SlotWaiter {
  resolve(): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  done: boolean;
}

export class UserSlots {
  private used = 0;
  private readonly queue: SlotWaiter[] = [];

  constructor(
    private readonly user: string,
    private readonly limit: number,
    private readonly timeoutMs: number,
  ) {}

  acquire(): Promise<void> {
    if (this.used < this.limit) {
      this.used++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const w: SlotWaiter = {
        resolve,
        reject,
        done: false,
        timer: setTimeout(() => {
          w.done = true;
          reject(
            new PoolError(
              `user "${this.user}" already holds its ${this.limit} backend connections (users[].pool_size); waited ${this.timeoutMs} ms`,
              '53300',
            ),
          );
        }, this.timeoutMs),
      };
      this.queue.push(w);
    });
  }

  release(): void {
    for (;;) {
      const w = this.queue.shift();
      if (!w) break;
      if (w.done) continue;
      w.done = true;
      clearTimeout(w.timer);
      w.resolve(); // the slot passes straight to the waiter
      return;
    }
    this.used--;
  }
}
