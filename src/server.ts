// Wires the proxy together: client listener, login, sessions, the backend pool, cancel routing,
// metrics, logs and the admin endpoint. `startProxy` is what the CLI, the demo and the tests run.
import net, { type AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { startAdmin, type AdminServer } from './admin/http.js';
import { createLogger } from './admin/log.js';
import { Metrics } from './admin/metrics.js';
import { createTokenVerifier } from './auth/jwt.js';
import { connectBackend } from './backend/connect.js';
import { Pool } from './backend/pool.js';
import { UserSlots } from './backend/user-slots.js';
import type { ProxyConfig } from './config/types.js';
import { FailureLimiter } from './frontend/rate-limit.js';
import { login, LoginError } from './frontend/startup.js';
import { createClientTls } from './frontend/tls.js';
import { errorResponse } from './protocol/encode.js';
import { Session } from './session/bridge.js';
import { StatementGuard } from './guard/statement-guard.js';
import { CancelRegistry } from './session/cancel-registry.js';
import { GuardHook } from './session/guard-hook.js';
import { renderSearchPath, TenantContext, TenantContextError } from './session/tenant-context.js';
import { probeBackend } from './backend/probe.js';
import type { ProxyHooks } from './cluster/hooks.js';

export interface RunningProxy {
  port: number;
  adminPort: number | null;
  pool: Pool;
  metrics: Metrics;
  log: Logger;
  close(): Promise<void>;
  /** Re-reads reloadable files (listen.tls certificate and key, JWT key files); the CLI calls it on SIGHUP. */
  reload?(next?: ProxyConfig): Promise<void>;
  /** Cancels the query of this proxy's client with that key (constant-time secret check); workers: routed here by the primary. */
  cancelKey(pid: number, secret: Buffer): boolean;
}

export async function startProxy(config: ProxyConfig, log: Logger = createLogger(config.log.level), hooks: ProxyHooks = {}): Promise<RunningProxy> {
  const poolName = `${config.backend.database}@${config.backend.host}:${config.backend.port}`;
  let metrics!: Metrics;
  const pool = new Pool(poolName, config.pool, config.backend, connectBackend, {
    opened: (c) => {
      metrics.backendOpened.inc();
      hooks.backendOpened?.(c.pid, c.secret);
      log.info({ event: 'BACKEND_OPEN', backend_pid: c.pid, conn: c.id }, 'backend connection opened');
    },
    closed: (c, reason) => {
      metrics.backendClosed.inc();
      hooks.backendClosed?.(c.pid);
      log.info({ event: 'BACKEND_CLOSE', backend_pid: c.pid, conn: c.id, reason }, 'backend connection closed');
    },
    acquired: (s) => metrics.acquireWait.observe(s),
    reset: (mode) => metrics.resets.inc({ mode }),
    resetFailed: (c, reason) => {
      metrics.resetFailures.inc();
      metrics.securityEvents.inc({ event: 'RESET_FAILED' });
      log.error({ event: 'RESET_FAILED', backend_pid: c.pid, conn: c.id, reason }, 'backend reset failed; connection closed');
    },
    connectFailed: (e) => {
      metrics.backendConnectFailures.inc();
      log.error({ event: 'BACKEND_CONNECT_FAILED', err: e.message }, 'could not open a backend connection');
    },
  });
  metrics = new Metrics(() => pool.stats(), poolName);
  const verify = createTokenVerifier(config.auth.jwt, config.tenant);
  const cancels = hooks.cancels ?? new CancelRegistry();
  const cancelKey = (pid: number, secret: Buffer): boolean => {
    const hit = cancels.cancel(pid, secret);
    metrics.cancels.inc({ outcome: hit ? 'forwarded' : 'unknown_key' });
    return hit;
  };
  const limiter = new FailureLimiter(config.auth.rate_limit);
  // One guard for the process: the parser (WASM) loads once; verdicts are cached.
  const statementGuard = config.tenant.guard
    ? await StatementGuard.create({ tenantSetting: config.tenant.setting, protectedSettings: config.tenant.protected_settings, allowRules: config.tenant.guard_allow })
    : null;
  /** Suspended tenants (tenant.deny); replaced on reload, checked at login and at every transaction start. */
  let denied = new Set(config.tenant.deny);
  const userSlots = new Map(config.users.map((u) => [u.name, new UserSlots(u.name, u.pool_size, config.pool.acquire_timeout_ms)]));
  const sessions = new Set<Session>();
  const sockets = new Set<net.Socket>();
  const clientTls = createClientTls(config.listen.tls, log, config.listen.plaintext_tokens);

  const onConnection = async (socket: net.Socket): Promise<void> => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (sockets.size > config.listen.max_client_conn) {
      socket.end(errorResponse({ severity: 'FATAL', code: '53300', message: 'sorry, too many clients already', hint: 'raise listen.max_client_conn' }));
      return;
    }
    const address = socket.remoteAddress ?? 'unknown';
    const wait = limiter.retryAfter(address);
    if (wait > 0) {
      metrics.authFailures.inc({ reason: 'rate_limited' });
      metrics.securityEvents.inc({ event: 'AUTH_FAILED' });
      log.warn({ event: 'AUTH_FAILED', reason: 'rate_limited', client: remote }, 'login refused: too many failures from this address');
      socket.end(errorResponse({ severity: 'FATAL', code: '28000', message: `too many failed logins from this address; retry in ${Math.ceil(wait / 1000)} s` }));
      return;
    }
    let client: net.Socket = socket; // the TLS socket once the client negotiated TLS
    const timer = setTimeout(() => {
      client.end(errorResponse({ severity: 'FATAL', code: '08P01', message: `startup did not complete within ${config.listen.startup_timeout_ms} ms` }));
      client.destroy();
    }, config.listen.startup_timeout_ms);
    try {
      const ok = await login(socket, {
        tls: clientTls,
        upgraded: (s) => (client = s),
        config,
        verify,
        serverParams: () => pool.serverParams(),
        cancel: (pid, secret) => {
          if (hooks.routeCancel?.(pid, secret)) metrics.cancels.inc({ outcome: 'routed_to_worker' });
          else cancelKey(pid, secret);
        },
      });
      clearTimeout(timer);
      if (!ok || ok.socket.destroyed) return;
      const { tenant, role, staticUser } = ok.principal;
      if (tenant !== null && denied.has(tenant)) throw new LoginError('28000', `tenant "${tenant}" is suspended`, 'tenant_suspended');
      const tenantSettings: Array<[string, string]> = [];
      const searchPath = tenant !== null && config.tenant.search_path ? renderSearchPath(config.tenant.search_path, tenant, config.tenant.schema_map) : null;
      if (tenant !== null) {
        tenantSettings.push([config.tenant.setting, tenant]);
        if (searchPath !== null) tenantSettings.push(['search_path', searchPath]);
      }
      // SET ROLE inside the injected context; DISCARD ALL undoes it (SET SESSION AUTHORIZATION DEFAULT).
      if (role) tenantSettings.push(['role', role]);
      const context = new TenantContext(tenantSettings, ok.sessionParams, ok.serverValue);
      let session: Session | null = null;
      const key = cancels.register({
        cancel: () => {
          const server = session?.runningOn;
          if (server) pool.cancel(server);
        },
      });
      const clog = log.child({ tenant: tenant ?? 'none', user: ok.user, client: remote, client_pid: key.pid, ...(staticUser ? { static_user: true } : {}) });
      session = new Session({
        client: ok.socket,
        pool,
        log: clog,
        context,
        mode: config.pool.mode,
        statementLimits: { maxCount: config.pool.max_prepared_statements, maxBytes: config.pool.max_prepared_statement_bytes },
        shownParams: ok.shown,
        expiresAtMs: ok.principal.expiresAtMs,
        suspended: tenant === null ? () => false : () => denied.has(tenant),
        // Trusted logins (tenant: none) are not guarded: they are for migrations and SRE work.
        ...(tenant !== null && statementGuard
          ? {
              guard: new GuardHook(statementGuard, (v, sql) => {
                metrics.securityEvents.inc({ event: 'TENANT_STATEMENT_BLOCKED' });
                // The rule, not the statement: SQL text can carry client data.
                clog.warn({ event: 'TENANT_STATEMENT_BLOCKED', rule: v.rule, statement_bytes: Buffer.byteLength(sql) }, 'statement blocked by the guard');
              }),
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
                failed: (reason: string) => clog.warn({ event: 'READBACK_FAILED', reason }, 'the tenant context could not be read back after a transaction'),
              },
            }
          : {}),
        userSlots: staticUser ? userSlots.get(staticUser.name) : undefined,
        hooks: {
          transactionDone: () => metrics.transactions.inc(),
          contextFailed: () => metrics.contextFailures.inc(),
          resetFailed: () => {
            metrics.resetFailures.inc();
            metrics.securityEvents.inc({ event: 'RESET_FAILED' });
          },
          acquireFailed: (sqlstate) => metrics.acquireTimeouts.inc({ sqlstate }),
          tenantSuspended: () => {
            metrics.securityEvents.inc({ event: 'TENANT_SUSPENDED' });
            clog.warn({ event: 'TENANT_SUSPENDED' }, 'tenant is suspended (tenant.deny); client disconnected at its next transaction');
          },
          tokenExpired: () => {
            metrics.authFailures.inc({ reason: 'expired' });
            metrics.securityEvents.inc({ event: 'TOKEN_EXPIRED' });
            clog.warn({ event: 'TOKEN_EXPIRED' }, 'token expired on an open connection; client disconnected');
          },
          closed: () => {
            cancels.unregister(key.pid);
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
    } catch (e) {
      clearTimeout(timer);
      const le =
        e instanceof LoginError
          ? e
          : e instanceof TenantContextError
            ? new LoginError('28000', e.message, 'bad_tenant')
            : new LoginError('08006', `internal error during login: ${(e as Error).message}`, 'internal');
      metrics.authFailures.inc({ reason: le.reason });
      if (le.reason !== 'backend_unavailable' && le.reason !== 'internal') limiter.fail(address);
      metrics.securityEvents.inc({ event: 'AUTH_FAILED' });
      log.warn({ event: 'AUTH_FAILED', reason: le.reason, sqlstate: le.sqlstate, client: remote, detail: le.message }, 'login refused');
      if (!client.destroyed) client.end(errorResponse({ severity: 'FATAL', code: le.sqlstate, message: le.message, hint: le.hint }));
    }
  };

  const server = net.createServer((socket) => void onConnection(socket));
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
    admin = await startAdmin(config.admin.host, config.admin.port, metrics, () => probeBackend(config.backend, pool));
  }
  log.info({ event: 'LISTENING', host: config.listen.host, port, admin_port: admin?.port ?? null, pool: poolName, pool_size: config.pool.size }, 'pg-tenant-proxy ready');

  return {
    port,
    adminPort: admin?.port ?? null,
    pool,
    metrics,
    log,
    cancelKey,
    async reload(next?: ProxyConfig) {
      if (next) {
        const before = denied;
        denied = new Set(next.tenant.deny);
        log.info({ event: 'RELOAD', deny: [...denied], newly_suspended: [...denied].filter((t) => !before.has(t)) }, 'tenant deny-list reloaded');
      }
      clientTls?.reload();
      // JWT key files (public_key_file, jwks_file) or the remote JWKS; on failure the old keys stay in use.
      await verify.reload().catch((e: Error) => log.error({ event: 'RELOAD_FAILED', what: 'auth.jwt keys', err: e.message }, 'JWT key reload failed; old keys kept'));
    },
    async close() {
      server.close();
      for (const s of [...sessions]) s.terminate({ code: '57P01', message: 'terminating connection: pg-tenant-proxy is shutting down' });
      for (const s of sockets) s.destroy();
      await pool.close();
      await admin?.close();
    },
  };
}
