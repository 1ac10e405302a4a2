// The admin HTTP endpoint: GET /metrics (Prometheus), /healthz (process alive), /readyz (backend reachable),
// and the console's tables as JSON (/pools, /clients, /servers, /tenants, /stats). Read-only by design: this
// port is unauthenticated, so PAUSE, KILL and SUSPEND exist only in the console (database pgtenantproxy).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.js';
import { type Table, tableJson } from './views.js';

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

export function startAdmin(
  host: string,
  port: number,
  metrics: Metrics,
  ready: () => Promise<boolean>,
  /** JSON endpoints by path, e.g. "/pools"; the same tables as the console's SHOW commands. */
  tables: Record<string, () => Table> = {},
): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        (e: Error) => res.writeHead(500).end(`metrics failed: ${e.message}\n`),
      );
    } else if (Object.hasOwn(tables, path)) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(tableJson(tables[path]())) + '\n');
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      ready().then(
        (ok) => res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'backend unreachable\n'),
        () => res.writeHead(503, { 'content-type': 'text/plain' }).end('backend unreachable\n'),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: try /metrics, /healthz, /readyz${Object.keys(tables).map((t) => ', ' + t).join('')}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}
