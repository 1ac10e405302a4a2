// A fresh random() seed for every hand-over. DISCARD ALL does not reset the seed set by setseed(), so a
// tenant could make the next tenant's random() predictable; every transaction's context prefix (or, for a
// login without one, the hand-over itself) reseeds from a cryptographic source first.
// Reference: https://www.postgresql.org/docs/current/functions-math.html#FUNCTIONS-MATH-RANDOM-TABLE
import { randomUint32 } from '../util/random-block.js';

/** Every seed is this many characters: a sign, "0." and 16 digits, so it can be written in place. */
export const SEED_WIDTH = 19;
/** A seed of the right width that holds a place until the real one is written over it. */
export const SEED_PLACEHOLDER = '+0.0000000000000000';

/**
 * A seed in setseed's domain, (-1, 1), from 53 random bits (a sign and 52 bits of magnitude), as text of
 * exactly SEED_WIDTH characters. Built from random bytes only, never from client data.
 */
export function cryptoSeed(): string {
  const hi = randomUint32();
  const lo = randomUint32();
  const magnitude = ((hi & 0xfffff) * 0x1_0000_0000 + lo) / 2 ** 52; // [0, 1)
  return (hi & 0x100000 ? '-' : '+') + magnitude.toFixed(16);
}

/** Writes a fresh seed over the SEED_WIDTH characters at `offset` of `buf`. */
export function writeSeed(buf: Buffer, offset: number): void {
  buf.write(cryptoSeed(), offset, SEED_WIDTH, 'latin1');
}
