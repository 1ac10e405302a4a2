// Which worker owns a cancel key. The CancelRegistry of worker i only issues process ids with pid % count === i
// (the rest of the pid random, the 32-bit secret fully random), so any worker can route a CancelRequest to the
// owner without a shared table; guessing a key is exactly as hard as with one process (the secret decides).
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS

export function ownerOf(pid: number, count: number): number {
  return ((pid % count) + count) % count;
}
