// A bounded least-recently-used map: what the connect path reuses across logins (context prefixes, login
// replies, proofs) stays within a fixed number of entries, whatever clients send.

export class Lru<K, V> {
  /** Insertion-ordered: the first entry is the least recently used (a hit moves it to the end). */
  private readonly entries = new Map<K, V>();

  constructor(private readonly max: number) {}

  get(key: K): V | undefined {
    const v = this.entries.get(key);
    if (v === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, v);
    return v;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as K);
  }

  /** The cached value for `key`, made by `make` (and kept) on a miss. */
  getOrSet(key: K, make: () => V): V {
    let v = this.get(key);
    if (v === undefined) {
      v = make();
      this.set(key, v);
    }
    return v;
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
