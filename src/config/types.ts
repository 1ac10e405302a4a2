// The validated configuration: what every other module reads. Loaded by src/config/load.ts.

export interface ListenConfig {
  host: string;
  port: number;
  /** Most client connections accepted at once; PgBouncer's max_client_conn. */
  max_client_conn: number;
  /** A client must finish startup and authentication within this many ms. */
  startup_timeout_ms: number;
}

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
}

export interface PoolConfig {
  /** transaction: a client holds a backend per transaction; session: for its whole connection. */
  mode: 'transaction' | 'session';
  /** Protocol-level prepared statements remembered per client (re-prepared after each reset); LRU beyond. */
  max_prepared_statements: number;
  /** Bytes of Parse messages remembered per client. */
  max_prepared_statement_bytes: number;
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
}

export interface JwtConfig {
  algorithms: string[];
  /** Shared secret for HS* algorithms (already resolved from inline/env/file). */
  secret: string;
  /** Claim that carries the tenant id. */
  tenant_claim: string;
  /** Largest token accepted, in bytes. */
  max_token_bytes: number;
  clock_tolerance_s: number;
  issuer?: string;
  audience?: string;
}

export interface AuthConfig {
  jwt: JwtConfig;
}

export interface TenantConfig {
  /** The GUC that row-level security policies read, e.g. app.current_tenant. */
  setting: string;
  /** Optional search_path template; `{tenant}` makes the element a quoted identifier. */
  search_path?: string;
  /** Tenant ids outside this pattern are refused at login. */
  id_pattern: RegExp;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface LogConfig {
  level: LogLevel;
}

export interface ProxyConfig {
  listen: ListenConfig;
  admin: AdminConfig;
  backend: BackendConfig;
  pool: PoolConfig;
  auth: AuthConfig;
  tenant: TenantConfig;
  log: LogConfig;
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
