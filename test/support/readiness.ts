// Helpers for tests that watch the proxy's readiness: GET /readyz, and polling until something holds.

/** The HTTP status of /readyz on the admin port. */
export async function readyz(port: number): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
}

/** Polls `what` every 200 ms until it is true or `timeoutMs` passes; resolves with its last answer. */
export async function waitFor(what: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await what()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return what();
}
