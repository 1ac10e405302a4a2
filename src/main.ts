// The CLI: `pg-tenant-proxy --config FILE` runs the proxy until SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { createLogger } from './admin/log.js';
import { loadConfigFile } from './config/load.js';
import { ConfigError } from './config/types.js';
import { doctorCommand } from './admin/doctor.js';
import { hashPasswordCommand } from './admin/hash-password.js';
import { readForReload } from './reload.js';
import { startProxy } from './server.js';

const USAGE = `usage: pg-tenant-proxy --config FILE
       pg-tenant-proxy hash-password [--iterations N]   (reads the password; prints a users[].scram verifier)
       pg-tenant-proxy doctor --config FILE [--json]     (what in the database would let a tenant escape)

  --config FILE   YAML configuration (see config/example.yaml)
  --version       print the version
  --help          this text
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'hash-password') return hashPasswordCommand(argv.slice(1));
  if (argv[0] === 'doctor') return doctorCommand(argv.slice(1));
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      return 0;
    }
    if (a === '--version') {
      process.stdout.write(version() + '\n');
      return 0;
    }
    if (a === '--config' || a === '-c') configPath = argv[++i];
    else if (a.startsWith('--config=')) configPath = a.slice('--config='.length);
    else {
      process.stderr.write(`pg-tenant-proxy: unknown argument "${a}"\n${USAGE}`);
      return 2;
    }
  }
  if (!configPath) {
    process.stderr.write(`pg-tenant-proxy: --config FILE is required\n${USAGE}`);
    return 2;
  }
  let config;
  try {
    config = loadConfigFile(configPath);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`pg-tenant-proxy: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const log = createLogger(config.log.level);
  let proxy;
  try {
    proxy = await startProxy(config, log);
  } catch (e) {
    process.stderr.write(`pg-tenant-proxy: cannot start: ${(e as Error).message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    // SIGTERM (Kubernetes, systemd) drains: in-flight transactions may finish within shutdown.drain_timeout_ms.
    // A second signal stops at once.
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ event: 'SHUTDOWN', signal }, 'second signal: stopping now');
        void proxy.close().then(resolve);
        return;
      }
      stopping = true;
      log.info({ event: 'SHUTDOWN', signal }, 'shutting down: draining');
      void proxy.drain().then(resolve);
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    // SIGHUP re-reads the config file (tenant.deny takes effect at once), the listen.tls certificate and key,
    // and the JWT keys, without dropping connections. A config file that no longer validates changes nothing.
    process.on('SIGHUP', () => {
      log.info({ event: 'RELOAD', signal: 'SIGHUP' }, 'reloading');
      const next = readForReload(configPath, log) ?? undefined;
      void proxy.reload?.(next).catch((e: Error) => log.error({ event: 'RELOAD_FAILED', err: e.message }, 'reload failed'));
    });
  });
  return 0;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop()!);
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`pg-tenant-proxy: ${e.message}\n`);
      process.exit(1);
    },
  );
}
