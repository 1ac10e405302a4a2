// Readiness probe: is the backend reachable now? A bare TCP connect that sends nothing (PostgreSQL does
// not log such connections), cached briefly so a busy /readyz cannot hammer the server.
import net from 'node:net';
import type { BackendConfig } from '../config/types.js';
import type { Pool } from './pool.js';

const CACHE_MS = 2000;
const lastByPool = new WeakMap<Pool, { at: number; ok: boolean }>();

export async function probeBackend(cfg: BackendConfig, pool: Pool): Promise<boolean> {
  const last = lastByPool.get(pool);
  if (last && Date.now() - last.at < CACHE_MS) return last.ok;
  const ok = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: cfg.host, port: cfg.port });
    const done = (result: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(false), Math.min(cfg.connect_timeout_ms, 2000));
    socket.on('connect', () => done(true));
    socket.on('error', () => done(false));
  });
  // Reachable only if TCP answers and the last real login did not fail (e.g. bad credentials).
  const result = ok && pool.lastConnectError === null;
  lastByPool.set(pool, { at: Date.now(), ok: result });
  return result;
}
