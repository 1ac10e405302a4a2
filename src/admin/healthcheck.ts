// `pg-tenant-proxy healthcheck [--config FILE]`: exits 0 when the running proxy's admin /healthz answers 200, 1
// otherwise. The admin host and port come from the proxy's own config (the container image's HEALTHCHECK runs
// this), so changing admin.port never leaves a health check probing the wrong port.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { loadConfigFile } from '../config/load.js';
import { ConfigError } from '../config/types.js';

export const HEALTHCHECK_USAGE = `usage: pg-tenant-proxy healthcheck [--config FILE] [--timeout-ms N]

Asks the running proxy's admin endpoint (admin.host, admin.port from the config) for /healthz.
Exits 0 on HTTP 200, 1 otherwise; 0 with a note when admin.port is 0 (admin endpoint disabled).

  --config FILE     the proxy's config; default: the --config of process 1 (the container's proxy),
                    else $PGTP_CONFIG, else /etc/pg-tenant-proxy/config.yaml
  --timeout-ms N    give up after N ms (default 4000)
`;

/** The --config argument of process 1, where the proxy runs in a container (exec-form ENTRYPOINT). */
function configOfPid1(): string | undefined {
  let args: string[];
  try {
    args = readFileSync('/proc/1/cmdline', 'utf8').split('\0');
  } catch {
    return undefined;
  }
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--config' || args[i] === '-c') return args[i + 1];
    if (args[i].startsWith('--config=')) return args[i].slice('--config='.length);
  }
  return undefined;
}

/** A wildcard listen address is reached over loopback. */
function probeHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

export function getHealthz(host: string, port: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: probeHost(host), port, path: '/healthz', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export async function healthcheckCommand(args: string[]): Promise<number> {
  let configPath: string | undefined;
  let timeoutMs = 4000;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--config' || a === '-c') configPath = args[++i];
    else if (a.startsWith('--config=')) configPath = a.slice('--config='.length);
    else if (a === '--timeout-ms') timeoutMs = Number(args[++i]);
    else {
      process.stderr.write(`pg-tenant-proxy healthcheck: unknown argument "${a}"\n${HEALTHCHECK_USAGE}`);
      return 2;
    }
  }
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
    process.stderr.write('pg-tenant-proxy healthcheck: --timeout-ms must be a positive integer\n');
    return 2;
  }
  configPath ??= configOfPid1() ?? process.env.PGTP_CONFIG ?? '/etc/pg-tenant-proxy/config.yaml';
  let admin;
  try {
    admin = loadConfigFile(configPath).admin;
  } catch (e) {
    process.stderr.write(`pg-tenant-proxy healthcheck: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
    return 1;
  }
  if (admin.port === 0) {
    process.stdout.write('admin endpoint disabled (admin.port: 0): nothing to check\n');
    return 0;
  }
  try {
    const status = await getHealthz(admin.host, admin.port, timeoutMs);
    if (status === 200) return 0;
    process.stderr.write(`pg-tenant-proxy healthcheck: http://${admin.host}:${admin.port}/healthz answered ${status}\n`);
  } catch (e) {
    process.stderr.write(`pg-tenant-proxy healthcheck: http://${admin.host}:${admin.port}/healthz: ${(e as Error).message}\n`);
  }
  return 1;
}
