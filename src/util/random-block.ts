// Cryptographically random numbers drawn from a block filled in one call: the per-login cancel key and the
// per-transaction random() seed need a few bytes each, and a syscall per draw showed on the hot paths.
import { randomFillSync } from 'node:crypto';

const block = Buffer.allocUnsafe(4096);
let pos = block.length;

/** A uniformly random unsigned 32-bit integer. */
export function randomUint32(): number {
  if (pos + 4 > block.length) {
    randomFillSync(block);
    pos = 0;
  }
  const v = block.readUInt32BE(pos);
  // Used bytes are overwritten, so nothing drawn stays in memory longer than needed.
  block.writeUInt32BE(0, pos);
  pos += 4;
  return v;
}

/** A uniformly random integer in [min, max) (max - min ≤ 2^32), by rejection sampling: no modulo bias. */
export function randomIntBelow(min: number, max: number): number {
  const range = max - min;
  if (!(range > 0 && range <= 0x1_0000_0000)) throw new RangeError(`bad range [${min}, ${max})`);
  const limit = 0x1_0000_0000 - (0x1_0000_0000 % range);
  for (;;) {
    const v = randomUint32();
    if (v < limit) return min + (v % range);
  }
}
