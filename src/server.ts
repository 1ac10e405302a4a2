// Wires the proxy together: client listener, login, sessions, the backend pool, cancel routing,
// metrics, logs and the admin endpoint. `startProxy` is what the CLI, the demo and the tests run.
import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { startAdmin, type AdminServer } from './admin/http.js';
import { createLogger, lazyChild } from './admin/log.js';
import { Metrics } from './admin/metrics.js';
import { createTokenVerifier } from './auth/jwt.js';
import { connectBackend } from './backend/connect.js';
import { Pool } from './backend/pool.js';
import { UserSlots } from './backend/user-slots.js';
import type { ProxyConfig } from './config/types.js';
import { Admission } from './frontend/admission.js';
import { LoginError, type LoginOk } from './frontend/startup.js';
import { createClientTls } from './frontend/tls.js';
import { Session } from './session/bridge.js';
import { StatementGuard } from './guard/statement-guard.js';
import { CancelRegistry } from './session/cancel-registry.js';
import { guardKeepsSetting } from './guard/rules.js';
import { GuardHook } from './session/guard-hook.js';
import { ProofMinter } from './session/tenant-proof.js';
import { renderSearchPath, TenantContext } from './session/tenant-context.js';
import { Readiness } from './backend/probe.js';
import { CONSOLE_DATABASE, consoleParams } from './admin/console/database.js';
import { runConsole } from './admin/console/session.js';
import { createAdminRuntime } from './admin/runtime.js';
import { type ActionResult, type AdminAction, applyLocally } from './admin/console/actions.js';
import type { ProxyHooks } from './cluster/hooks.js';
import { poolEvents } from './backend/pool-log.js';
import { drain, type Drainable } from './drain.js';
import { applyReload } from './reload.js';

/** Idle time before the first TCP keepalive probe on a client connection (the backend side uses the same). */
const CLIENT_KEEPALIVE_MS = 30_000;

export interface StartOptions {
  /** Reads the config file again: the console's RELOAD runs it (as SIGHUP does); absent: RELOAD re-reads keys and certificates only. */
  loadConfig?: () => ProxyConfig;
  /** Worker-process hooks (src/cluster): backend bookkeeping for the budget fence, cancel routing. */
  hooks?: ProxyHooks;
  /**
   * The console's runtime state to start with (a worker restarted by the cluster: SUSPEND TENANT, PAUSE in
   * force), applied before the listener opens, so no login is served without it.
   */
  consoleState?: { paused: boolean; suspended: readonly string[] };
}

export interface RunningProxy {
  port: number;
  /** Backend readiness as /readyz reports it. */
  readiness: Readiness;
  adminPort: number | null;
  pool: Pool;
  metrics: Metrics;
  log: Logger;
  /** Stops at once: every client gets 57P01, running queries are cancelled (drain with no grace). */
  close(): Promise<void>;
  /** SIGTERM: drains for shutdown.drain_timeout_ms (drain.ts), then stops. */
  drain(): Promise<void>;
  /**
   * Applies a reloaded config (reload.ts decides what is live) and re-reads reloadable files (listen.tls
   * certificate and key, JWT key files); the CLI calls it on SIGHUP.
   */
  reload?(next?: ProxyConfig): Promise<void>;
  /** Cancels the query of this proxy's client with that key (constant-time secret check); workers: routed here by the primary. */
  cancelKey(pid: number, secret: Buffer): boolean;
  /** Applies a console action to this process only (a worker, asked by the primary). */
  applyAdminAction(action: AdminAction): Promise<ActionResult>;
}

export async function startProxy(config: ProxyConfig, log: Logger = createLogger(config.log.level), opts: StartOptions = {}): Promise<RunningProxy> {
  const hooks = opts.hooks ?? {};
  const poolName = `${config.backend.database}@${config.backend.host}:${config.backend.port}`;
  /** The configuration now in force: replaced by a successful reload (reload.ts). */
  let live = config;
  /** Set once a drain starts: /readyz answers 503 and logins are refused from then on. */
  let draining = false;
  let metrics!: Metrics;
  // Pool logins drive readiness both ways; while down, Readiness probes by itself until a login succeeds.
  const readiness = new Readiness(config.backend, log);
  const pool = new Pool(poolName, config.pool, config.backend, connectBackend, poolEvents(log, () => metrics, readiness, hooks));
  readiness.serving = () => pool.stats().open > 0;
  metrics = new Metrics(() => pool.snapshot(), poolName, config.metrics.tenant_top_k);
  let api!: RunningProxy;
  // The live view (console, JSON, per-tenant metrics) and the PAUSE gate.
  const ops = createAdminRuntime({ pool, metrics, config, log, loadConfig: opts.loadConfig, reload: (next) => api.reload!(next), cluster: hooks.adminAction });
  const { registry, gate } = ops;
  for (const tenant of opts.consoleState?.suspended ?? []) registry.suspended.add(tenant);
  if (opts.consoleState?.paused) gate.pause();
  const verify = createTokenVerifier(config.auth.jwt, config.tenant);
  const cancels = hooks.cancels ?? new CancelRegistry();
  const cancelKey = (pid: number, secret: Buffer): boolean => {
    const hit = cancels.cancel(pid, secret);
    metrics.cancels.inc({ outcome: hit ? 'forwarded' : 'unknown_key' });
    return hit;
  };
  // One guard for the process: the parser (WASM) loads once; verdicts are cached.
  const statementGuard = config.tenant.guard
    ? await StatementGuard.create({ tenantSetting: config.tenant.setting, protectedSettings: config.tenant.protected_settings, allowRules: config.tenant.guard_allow, poolMode: config.pool.mode })
    : null;
  const functionCallAllow: ReadonlySet<number> = new Set(config.tenant.function_call_allow ?? []);
  /** Suspended tenants (tenant.deny); replaced on reload, checked at login and at every transaction start. */
  let denied = new Set(config.tenant.deny);
  // The wait for a user's slot follows a reloaded pool.acquire_timeout_ms, as the pool's own wait does.
  const userSlots = new Map(config.users.map((u) => [u.name, new UserSlots(u.name, u.pool_size, () => live.pool.acquire_timeout_ms)]));
  const sessions = new Set<Session>();
  const clientTls = createClientTls(config.listen.tls, log, config.listen.plaintext_tokens);

  // Session assembly for a completed login; admission (slots, timeout, rate limit, refusals) is in Admission.
  const admit = (ok: LoginOk, remote: string): void => {
    const { tenant, role, staticUser } = ok.principal;
    if (ok.database === CONSOLE_DATABASE) {
      // Admitted by login() only for static users with admin: true.
      log.info({ event: 'ADMIN_CONNECT', user: ok.user, client: remote }, 'admin console login');
      ok.finish(0, randomBytes(4));
      runConsole(ok.socket, ops.console, ok.user, ok.leftover);
      return;
    }
    if (draining) throw new LoginError('57P01', 'the proxy is shutting down', 'shutting_down', 'Reconnect; another proxy instance will serve you.');
    if (tenant !== null && (denied.has(tenant) || registry.suspended.has(tenant))) throw new LoginError('28000', `tenant "${tenant}" is suspended`, 'tenant_suspended');
    const tenantSettings: Array<[string, string]> = [];
    const searchPath = tenant !== null && config.tenant.search_path ? renderSearchPath(config.tenant.search_path, tenant, config.tenant.schema_map) : null;
    if (tenant !== null) {
      tenantSettings.push([config.tenant.setting, tenant]);
      if (searchPath !== null) tenantSettings.push(['search_path', searchPath]);
    }
    // SET ROLE inside the injected context; DISCARD ALL undoes it (SET SESSION AUTHORIZATION DEFAULT).
    if (role) tenantSettings.push(['role', role]);
    // The proof (tenant.proof_key) lets the database verify the tenant setting: tenancy.current_tenant().
    // In session mode the prefix is sent once per connection, so its proof cannot be renewed: it lasts
    // until the token's exp (when the session ends anyway), uncapped by tenant.proof_max_ttl_s.
    const { proof_key } = config.tenant;
    const maxTtlS = config.pool.mode === 'session' ? Infinity : config.tenant.proof_max_ttl_s;
    const proof = tenant !== null && proof_key !== undefined ? new ProofMinter({ setting: config.tenant.proof_setting, key: proof_key, maxTtlS }, tenant, ok.principal.expiresAtMs) : undefined;
    // A guarded tenant never gets an encoding or string setting the guard refuses re-applied.
    const context = new TenantContext(tenantSettings, ok.sessionParams, ok.serverValue, proof, tenant !== null && statementGuard ? guardKeepsSetting : undefined);
    let session: Session | null = null;
    const key = cancels.register({
      cancel: () => session?.cancelQuery(),
    });
    const entry = registry.add({
      id: key.pid,
      user: ok.user,
      tenant,
      socket: ok.socket,
      tls: (ok.socket as { encrypted?: boolean }).encrypted === true,
      applicationName: ok.sessionParams.get('application_name') ?? '',
      kill: () => session?.terminate({ code: '57P01', message: 'terminating connection: closed by an administrator (KILL CLIENT)' }),
    });
    const clog = lazyChild(log, () => ({ tenant: tenant ?? 'none', user: ok.user, client: remote, client_pid: key.pid, ...(staticUser ? { static_user: true } : {}) }));
    session = new Session({
      client: ok.socket,
      pool,
      log: clog,
      context,
      tenant,
      clientIdleMs: () => live.listen.client_idle_timeout_ms,
      mode: config.pool.mode,
      // From the live config: a reload applies to clients that connect after it.
      statementLimits: { maxCount: live.pool.max_prepared_statements, maxBytes: live.pool.max_prepared_statement_bytes },
      shownParams: ok.shown,
      expiresAtMs: ok.principal.expiresAtMs,
      suspended: tenant === null ? () => false : () => denied.has(tenant) || registry.suspended.has(tenant),
      observer: entry,
      gate: gate.pass,
      // Trusted logins (tenant: none) are not guarded: they are for migrations and SRE work.
      ...(tenant !== null && statementGuard
        ? {
            guard: new GuardHook(statementGuard, (v, sql) => {
              metrics.securityEvents.inc({ event: 'TENANT_STATEMENT_BLOCKED' });
              // The rule, not the statement: SQL text can carry client data.
              clog.warn({ event: 'TENANT_STATEMENT_BLOCKED', rule: v.rule, statement_bytes: Buffer.byteLength(sql) }, 'statement blocked by the guard');
            }, functionCallAllow),
          }
        : {}),
      ...(tenant !== null && config.tenant.readback_check
        ? {
            readback: {
              setting: config.tenant.setting,
              tenant,
              searchPath,
              user: role ?? config.backend.user,
              tampered: (actual: { tenant: string | null; searchPath: string | null; user: string | null }) => {
                metrics.securityEvents.inc({ event: 'TENANT_CONTEXT_TAMPERED' });
                clog.error(
                  { event: 'TENANT_CONTEXT_TAMPERED', expected: { tenant, search_path: searchPath, user: role ?? config.backend.user }, actual },
                  'the tenant context was changed inside a transaction; client disconnected',
                );
                session?.terminate({
                  code: '42501',
                  message: 'the tenant context was changed inside your transaction (tenant setting, search_path or role); the connection is closed',
                });
              },
              // Fail closed like a tampered context: otherwise a client could make its own check fail
              // (e.g. SET statement_timeout = 1) to escape it. Counted and logged by the pool's readback event.
              failed: () =>
                session?.terminate({
                  code: '42501',
                  message: 'the tenant context could not be verified after your transaction; the connection is closed',
                }),
            },
          }
        : {}),
      userSlots: staticUser ? userSlots.get(staticUser.name) : undefined,
      hooks: {
        transactionDone: () => metrics.transactions.inc(),
        contextFailed: () => metrics.contextFailures.inc(),
        resetFailed: () => {
          metrics.resetFailures.inc();
          metrics.resetOutcomes.inc('failed');
          metrics.securityEvents.inc({ event: 'RESET_FAILED' });
        },
        acquireFailed: (sqlstate) => metrics.acquireTimeouts.inc({ sqlstate }),
        tenantSuspended: () => {
          metrics.errors.inc({ class: '28', source: 'proxy' });
          metrics.securityEvents.inc({ event: 'TENANT_SUSPENDED' });
          clog.warn({ event: 'TENANT_SUSPENDED' }, 'tenant is suspended (tenant.deny or console SUSPEND TENANT); client disconnected at its next transaction');
        },
        tokenExpired: () => {
          metrics.errors.inc({ class: '28', source: 'proxy' });
          metrics.authFailures.inc({ reason: 'expired' });
          metrics.securityEvents.inc({ event: 'TOKEN_EXPIRED' });
          clog.warn({ event: 'TOKEN_EXPIRED' }, 'token expired on an open connection; client disconnected');
        },
        closed: () => {
          cancels.unregister(key.pid);
          entry.closed();
          sessions.delete(session!);
          metrics.clients.dec();
          clog.info({ event: 'CLIENT_DISCONNECT' }, 'client disconnected');
        },
      },
    });
    sessions.add(session);
    metrics.clients.inc();
    metrics.clientLogins.inc();
    clog.info({ event: 'CLIENT_CONNECT', database: ok.database }, 'client logged in');
    ok.finish(key.pid, key.secret);
    session.start(ok.leftover);
  };
  const admission = new Admission({
    config,
    log,
    metrics,
    login: {
      tls: clientTls,
      config,
      verify,
      serverParams: () => pool.serverParams(),
      consoleParams: (user) => consoleParams(pool.snapshot().params, user),
      cancel: (pid, secret) => {
        if (hooks.routeCancel?.(pid, secret)) metrics.cancels.inc({ outcome: 'routed_to_worker' });
        else cancelKey(pid, secret);
      },
    },
    admit,
  });

  // Nagle off (every answer is a complete batch), and TCP keepalive as PgBouncer's tcp_keepalive: a client
  // that vanished without a FIN (a dead host, a dropped NAT entry) is found and its slot and backend freed.
  // Set on the accepted handle by Node itself, before the socket reaches JavaScript.
  const server = net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: CLIENT_KEEPALIVE_MS }, (socket) => void admission.handle(socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let admin: AdminServer | null = null;
  if (config.admin.port !== 0 || process.env.PGTP_ADMIN_EPHEMERAL === '1') {
    admin = await startAdmin(config.admin.host, config.admin.port, metrics, () => (draining ? Promise.resolve(false) : readiness.check()), ops.tables);
  }
  log.info({ event: 'LISTENING', host: config.listen.host, port, admin_port: admin?.port ?? null, pool: poolName, pool_size: config.pool.size }, 'pg-tenant-proxy ready');

  const drainable = (): Drainable => ({
    listener: server,
    sessions,
    admission,
    readiness,
    pool,
    gate,
    admin,
    log,
    stopReady: () => {
      draining = true;
    },
  });

  api = {
    port,
    adminPort: admin?.port ?? null,
    readiness,
    pool,
    metrics,
    log,
    cancelKey,
    applyAdminAction: (action) => applyLocally(action, ops.console),
    reload: (next?: ProxyConfig) =>
      applyReload(next, {
        live: () => live,
        setLive: (c) => {
          live = c;
          denied = new Set(c.tenant.deny);
          ops.setConfig(c);
        },
        pool,
        clientTls,
        verify,
        log,
      }),
    close: () => drain(drainable(), 0),
    drain: () => drain(drainable(), live.shutdown.drain_timeout_ms),
  };
  return api;
}
