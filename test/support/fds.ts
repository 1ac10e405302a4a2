// Counts this process's open file descriptors (Linux /proc), for tests that check sockets are really closed.
import { existsSync, readdirSync } from 'node:fs';

export const haveProcFds = existsSync('/proc/self/fd');

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Polls until the fd count is at most `limit` (or `timeoutMs` passes); returns the last count. */
export async function fdsSettle(limit: number, timeoutMs = 10_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let n = openFds();
  while (n > limit && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    n = openFds();
  }
  return n;
}
