// The primary's admin HTTP endpoint in cluster mode: /metrics summed over workers, /healthz and /readyz over
// every worker. (Workers run no admin endpoint of their own.)
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ClusterAdminSources {
  metrics(): Promise<{ body: string; contentType: string }>;
  /** ok: every running worker answers; detail: one line per worker. */
  health(): Promise<{ ok: boolean; detail: string }>;
  /** ok: every configured worker runs and can reach the database. */
  ready(): Promise<{ ok: boolean; detail: string }>;
}

export function startClusterAdmin(host: string, port: number, src: ClusterAdminSources): Promise<{ port: number; close(): Promise<void> }> {
  const text = { 'content-type': 'text/plain' };
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const fail = (e: Error): void => void res.writeHead(500, text).end(`${path} failed: ${e.message}\n`);
    if (path === '/metrics') {
      src.metrics().then((m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.body), fail);
    } else if (path === '/healthz' || path === '/readyz') {
      (path === '/healthz' ? src.health() : src.ready()).then((r) => res.writeHead(r.ok ? 200 : 503, text).end(r.detail), fail);
    } else {
      res.writeHead(404, text).end('not found: try /metrics, /healthz or /readyz\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve({ port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}
