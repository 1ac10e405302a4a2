// The CLI: `pg-tenant-proxy --config FILE` runs the proxy until SIGINT/SIGTERM; subcommands (doctor, token, …) dispatch from here.
import { readFileSync } from 'node:fs';
import { createLogger } from './admin/log.js';
import { loadConfigFile } from './config/load.js';
import { ConfigError } from './config/types.js';
import { doctorCommand } from './admin/doctor.js';
import { hashPasswordCommand } from './admin/hash-password.js';
import { healthcheckCommand, HEALTHCHECK_USAGE } from './admin/healthcheck.js';
import { kitCommand, KIT_USAGE } from './admin/kit.js';
import { tokenCommand, TOKEN_USAGE } from './admin/token.js';
import { readForReload } from './reload.js';
import { startProxy } from './server.js';
import { startCluster } from './cluster/start.js';

/** Subcommands: each one's usage is printed for `pg-tenant-proxy SUBCOMMAND --help` before it parses anything. */
const SUBCOMMANDS: Record<string, { summary: string; usage: string; run: (args: string[]) => Promise<number> }> = {
  'hash-password': {
    summary: 'reads a password; prints a users[].scram verifier',
    usage: `usage: pg-tenant-proxy hash-password [--iterations N]

Reads a password and prints its SCRAM-SHA-256 verifier for users[].scram (the password itself never goes in
the config). On a terminal it asks twice, without echo, and refuses a mismatch; from a pipe it reads one line:
  echo "$PASSWORD" | npx pg-tenant-proxy hash-password

  --iterations N   PBKDF2 iterations, at least 4096 (the default, as PostgreSQL)
`,
    run: hashPasswordCommand,
  },
  doctor: {
    summary: 'what in the database would let a tenant escape',
    usage: `usage: pg-tenant-proxy doctor --config FILE [--json] [--replicas N] [--reserve N]

Connects as backend.user and reports what would let a tenant escape row-level security (superuser or
BYPASSRLS, tables without forced RLS, policies that fail open, CREATE on schemas, functions calling
set_config, the tenancy kit and its proof key) and whether the connection budget fits the server,
each finding critical, warning or ok. Exits 2 on a critical finding, 1 if it cannot check.

  --config FILE    the proxy's config
  --json           machine-readable output
  --replicas N     proxy processes sharing the database (replicas, plus surge pods in a rollout; default 1)
  --reserve N      connections kept for everything else (migrations, psql, other services; default 5)
`,
    run: doctorCommand,
  },
  kit: { summary: 'prints or applies the tenancy kit (the database-side boundary)', usage: KIT_USAGE, run: kitCommand },
  token: { summary: 'signs a token for a tenant with the config\'s HS* secret (trying out, tests)', usage: TOKEN_USAGE, run: tokenCommand },
  healthcheck: { summary: 'exits 0 when the running proxy\'s /healthz answers (container health checks)', usage: HEALTHCHECK_USAGE, run: healthcheckCommand },
};

const USAGE = `usage: pg-tenant-proxy --config FILE
${Object.entries(SUBCOMMANDS)
  .map(([name, c]) => `       pg-tenant-proxy ${name.padEnd(14)} ${c.summary}`)
  .join('\n')}

  --config FILE   YAML configuration (see config/example.yaml and docs/configuration.md)
  --version       print the version
  --help          this text; pg-tenant-proxy SUBCOMMAND --help for a subcommand's

Runs the proxy until SIGINT or SIGTERM; SIGHUP reloads the config's reloadable parts.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  const sub = argv[0] !== undefined ? SUBCOMMANDS[argv[0]] : undefined;
  if (sub) {
    const args = argv.slice(1);
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(sub.usage);
      return 0;
    }
    return sub.run(args);
  }
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
  const clustered = await startCluster(config, configPath, log); // workers > 1: primary or worker; null otherwise
  if (clustered !== null) return clustered;
  let proxy;
  try {
    proxy = await startProxy(config, log, { loadConfig: () => loadConfigFile(configPath) });
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
