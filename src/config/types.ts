// The validated configuration: what every other module reads. Loaded by src/config/load.ts.

export interface ListenConfig {
  host: string;
  port: number;
  /** Most client connections accepted at once; PgBouncer's max_client_conn. */
  max_client_conn: number;
  /** A client must finish startup and authentication within this many ms. */
  startup_timeout_ms: number;
  /** TLS for clients (SSLRequest answered 'S'); absent: no TLS, SSLRequest answered 'N'. */
  tls?: ListenTlsConfig;
  /**
   * Whether a token (a cleartext password) may be sent over a connection that is not encrypted: refuse
   * (default), loopback (only from 127.0.0.0/8 and ::1), or allow. Static users use SCRAM and are exempt.
   */
  plaintext_tokens: 'refuse' | 'loopback' | 'allow';
  /** A client idle outside a transaction this long is disconnected with FATAL 57P01 (0 = off). */
  client_idle_timeout_ms: number;
}

export interface ListenTlsConfig {
  /** PEM certificate chain (absolute path; relative paths in the file are resolved against its directory). */
  cert_file: string;
  /** PEM private key (absolute path). */
  key_file: string;
  min_version: 'TLSv1.2' | 'TLSv1.3';
}

/** libpq's sslmode values the proxy supports for its backend connections. */
export type BackendSslMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface AdminConfig {
  host: string;
  /** 0 disables the admin HTTP server. */
  port: number;
}

export interface BackendConfig {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  /** TCP connect + authentication timeout for a new backend connection. */
  connect_timeout_ms: number;
  /** TLS to the server, as libpq's sslmode (default prefer). */
  sslmode: BackendSslMode;
  /** PEM CA bundle (absolute path) for verifying the server; absent: Node's bundled CAs. */
  sslrootcert?: string;
}

/** Limits an SRE tunes (issue 12); validated in pool-limits.ts, reloadable on SIGHUP. */
export interface PoolLimits {
  /** Extra backends allowed under load: the hard cap is size + overflow, never exceeded. */
  overflow: number;
  /** A backend above pool.size idle this long is closed. */
  overflow_idle_ms: number;
  /** Backends opened ahead of demand and kept ready (at most size). */
  min_idle: number;
  /** Check a backend idle longer than pre_ping_after_ms before a client gets it; replace a dead one. */
  pre_ping: boolean;
  pre_ping_after_ms: number;
  /** A backend older than this (minus up to 10 % jitter) is closed at its next release (0 = never). */
  max_lifetime_ms: number;
  /** Most backends one tenant holds at once (0 = no cap). */
  tenant_max_backends: number;
  /** fifo: one queue; tenant: waiters served round-robin across tenants, FIFO within a tenant. */
  fairness: 'fifo' | 'tenant';
  /** Fraction of the cap (and of overflow) above which POOL_SATURATED is logged. */
  alert_threshold: number;
  /** POOL_RECOVERED only after utilisation stayed below the hysteresis band this long. */
  alert_recovery_ms: number;
  /** A query running longer is cancelled with 57014 (0 = off). */
  query_timeout_ms: number;
  /** A client idle inside a transaction longer loses it: rolled back, FATAL 25P03 (0 = off). */
  idle_in_transaction_timeout_ms: number;
}

export interface PoolConfig extends PoolLimits {
  /** transaction: a client holds a backend per transaction; session: for its whole connection. */
  mode: 'transaction' | 'session';
  /** Protocol-level prepared statements remembered per client (re-prepared after each reset); LRU beyond. */
  max_prepared_statements: number;
  /** Bytes of Parse messages remembered per client. */
  max_prepared_statement_bytes: number;
  /** Bytes of Parse messages remembered across all clients; past it, new statements are not kept. */
  max_prepared_statement_bytes_total: number;
  /** A client that holds a backend with half a message sent and then goes quiet this long is disconnected (08P01). */
  partial_message_timeout_ms: number;
  /** Hard upper bound of backend connections that ever exist at once. */
  size: number;
  /** How long a client waits for a backend before it gets SQLSTATE 53300. */
  acquire_timeout_ms: number;
  /** Most clients allowed to wait for a backend at once; past it a client gets 53300 at once. */
  max_waiting: number;
  /** An idle backend unused this long is closed (0 = never). */
  idle_timeout_ms: number;
  /** How long the reset (DISCARD ALL) may take before the backend is closed instead. */
  reset_timeout_ms: number;
  /**
   * With nobody waiting, a released backend's reset is deferred this long, to be pipelined in front of the
   * next client that takes it; past it, it runs on its own. Bounds how long session-level locks, LISTEN and
   * temp tables outlive a client (0 = reset at once).
   */
  reset_delay_ms: number;
}

export interface JwtConfig {
  /** Either only HS* (shared secret) or only asymmetric algorithms (RS256, PS256, ES256, EdDSA); never both. */
  algorithms: string[];
  /** Shared secret for HS* algorithms (already resolved from inline/env/file); set exactly when the algorithms are HS*. */
  secret?: string;
  /** Asymmetric algorithms have exactly one key source: */
  /** Absolute path of a PEM (SPKI) public key file; re-read by the verifier's reload(). */
  public_key_file?: string;
  /** Absolute path of a local JWKS (JSON) file; re-read by the verifier's reload(). */
  jwks_file?: string;
  /** A remote JWKS (https, or http on a loopback host); the jwks_* timings below are set exactly when this is. */
  jwks_url?: string;
  /** An unknown kid refetches the remote set at most once per this many ms. */
  jwks_cooldown_ms?: number;
  /** A key that disappears from the remote set stays accepted this long after it was last seen. */
  jwks_grace_ms?: number;
  /** Fetch timeout for the remote set. */
  jwks_timeout_ms?: number;
  /** The remote set is refetched (on the next login) once it is older than this. */
  jwks_max_age_ms?: number;
  /** Claim that carries the tenant id. */
  tenant_claim: string;
  /** Largest token accepted, in bytes. */
  max_token_bytes: number;
  clock_tolerance_s: number;
  issuer?: string;
  audience?: string;
  /** Optional claim (dotted path allowed) carrying a role; set together with allowed_roles. */
  role_claim?: string;
  /** Roles a token's role_claim may name; set together with role_claim. */
  allowed_roles?: string[];
}

/** Authentication failures tolerated per client address before logins from it are refused for a while. */
export interface RateLimitConfig {
  /** Failures per address within window_ms; 0 disables the limit. */
  max_failures: number;
  window_ms: number;
  /** Most addresses remembered (oldest forgotten first), so memory stays bounded under a spray of sources. */
  max_tracked_addresses: number;
}

export interface AuthConfig {
  jwt: JwtConfig;
  rate_limit: RateLimitConfig;
}

/** A person or job that logs in with a password (SCRAM-SHA-256 against a stored verifier), not a token. */
export interface StaticUser {
  name: string;
  verifier: import('../auth/scram.js').ScramVerifier;
  /** The tenant it always acts as, or null for a trusted login: no context injected. */
  tenant: string | null;
  /** Most backend connections this user may hold at once. */
  pool_size: number;
  /** May log in to the admin console (database pgtenantproxy). */
  admin: boolean;
}

export interface TenantConfig {
  /** The GUC that row-level security policies read, e.g. app.current_tenant. */
  setting: string;
  /** Optional search_path template; `{tenant}` makes the element a quoted identifier. */
  search_path?: string;
  /** Tenant ids outside this pattern are refused at login. */
  id_pattern: RegExp;
  /** Explicit tenant → schema for the search_path's {tenant} element (one schema per tenant, checked at load). */
  schema_map: Map<string, string>;
  /** Suspended tenants: refused at login and at the start of every transaction; re-read on SIGHUP. */
  deny: string[];
  /** At the end of each transaction, read back the context and disconnect a client that changed it. */
  readback_check: boolean;
  /** Check tenants' statements with the statement guard (libpg-query). */
  guard: boolean;
  /** Settings tenants may not SET, RESET or set_config (always includes the tenant setting, search_path, role, session_authorization). */
  protected_settings: string[];
  /** Guard rules not enforced (e.g. do_block); the rules protecting the context itself cannot be listed. */
  guard_allow: string[];
  /**
   * The key of the tenant proof (an HMAC the database verifies in tenancy.current_tenant(), see
   * sql/tenancy-kit.sql); absent: no proof is set and policies can only trust the raw tenant setting.
   */
  proof_key?: string;
  /** The setting that carries the proof (two-part custom name). */
  proof_setting: string;
  /** Longest lifetime of one proof in seconds; it is also capped at the token's exp. */
  proof_max_ttl_s: number;
  /** Function OIDs a tenant may call with the FunctionCall protocol message (e.g. libpq's lo_* calls); all others are refused. */
  function_call_allow?: number[];
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface ShutdownConfig {
  /** On SIGTERM, how long clients inside a transaction may take to finish it. */
  drain_timeout_ms: number;
}

export interface LogConfig {
  level: LogLevel;
}

export interface MetricsConfig {
  /** Tenants with their own label on per-tenant metrics (the most active); the rest share tenant="other". */
  tenant_top_k: number;
}

export interface ProxyConfig {
  /** Worker processes (node:cluster) sharing the listen port and splitting pool.size exactly; 1 = no cluster. */
  workers: number;
  listen: ListenConfig;
  admin: AdminConfig;
  backend: BackendConfig;
  pool: PoolConfig;
  auth: AuthConfig;
  tenant: TenantConfig;
  log: LogConfig;
  users: StaticUser[];
  metrics: MetricsConfig;
  shutdown: ShutdownConfig;
}

/** Thrown for any invalid configuration: one message naming the key and what is wrong. */
export class ConfigError extends Error {
  constructor(
    public readonly key: string,
    problem: string,
  ) {
    super(`config: ${key}: ${problem}`);
    this.name = 'ConfigError';
  }
}
