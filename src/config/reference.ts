// Descriptions of every config key, for the generated reference docs/configuration.md. Types, defaults, ranges
// and allowed values are not written here: scripts/config-reference.ts takes them from the validators
// themselves. test/config/reference.test.ts fails when a validated key has no entry here, or an entry names a
// key nothing validates. After a change: `npm run docs:config`, and commit docs/configuration.md.

export interface KeyDoc {
  description: string;
  /** Only for keys whose validator is custom code (lists, maps), where no typed reader records a type. */
  type?: string;
  /** Overrides the recorded default where it is computed (e.g. from another key) or the key has none recorded. */
  default?: string;
}

/** Keys as the config file spells them; list entries as `users[].name`. Top-level keys introduce their section. */
export const KEY_DOCS: Record<string, KeyDoc> = {
  workers: {
    type: 'integer, 1–256, or `auto`',
    default: '`1`',
    description: 'Worker processes sharing the listen port and splitting `pool.size` (and `pool.overflow`, `pool.min_idle`, `pool.tenant_max_backends`, each `users[].pool_size` and `listen.max_client_conn`) exactly: worker *i* of *N* gets `floor(size / N)`, the first `size % N` one more. `auto`: one per CPU the process may run on (by affinity, not a container\'s CPU quota: in Kubernetes give the pod\'s CPU limit as a number), lowered to fit. May not exceed `pool.size` or any `users[].pool_size` ([workers and replicas](operations.md#workers-and-replicas)).',
  },

  listen: { description: 'Where clients connect, and how.' },
  'listen.host': { description: 'Address clients connect to. In a container, set `0.0.0.0`: the default is unreachable through a published port.' },
  'listen.port': { description: 'Port clients connect to (`0` picks a free port).' },
  'listen.max_client_conn': { description: 'Client connections accepted at once; more get 53300 "too many clients".' },
  'listen.startup_timeout_ms': { description: 'A client must finish startup and authentication within this.' },
  'listen.client_idle_timeout_ms': { description: 'A client idle outside a transaction this long gets FATAL 57P05 (as the server\'s `idle_session_timeout`) and is disconnected (`0` = off). Reloadable.' },
  'listen.tls': { description: 'TLS for clients. Absent: no TLS. When given, `cert_file` and `key_file` are required, and the proxy answers SSLRequest with `S`. Bytes a client sends after SSLRequest, before the handshake, are refused (08P01).' },
  'listen.tls.cert_file': { description: 'PEM certificate chain, relative to the config file\'s directory. Re-read on SIGHUP; a bad file keeps the old one.' },
  'listen.tls.key_file': { description: 'PEM private key, relative to the config file\'s directory. Re-read on SIGHUP.' },
  'listen.tls.min_version': { description: 'Lowest TLS version accepted.' },
  'listen.plaintext_tokens': { description: 'Whether a token (a password) may be sent over an unencrypted connection: `refuse`, `loopback` (only from loopback addresses; the demo uses it) or `allow`. A refused client is told to use `sslmode=require`. Static users (SCRAM) may always log in without TLS.' },

  admin: { description: 'The admin HTTP endpoint: `GET /metrics` (Prometheus), `/healthz`, `/readyz`.' },
  'admin.host': { description: 'Address of the admin HTTP server. In a container, `0.0.0.0` for probes and scraping.' },
  'admin.port': { description: 'Port of the admin HTTP server: `GET /metrics`, `/healthz`, `/readyz`, and the [console](operations.md#admin-console) tables as JSON (`/pools`, `/clients`, `/servers`, `/tenants`, `/stats`); `0` disables it. With `workers`, it runs on the primary and sums the workers.' },

  backend: { description: 'The PostgreSQL server the pool connects to.' },
  'backend.host': { description: 'PostgreSQL host.' },
  'backend.port': { description: 'PostgreSQL port.' },
  'backend.database': { description: 'Database on the server; also the only database name clients may ask for (others get 3D000 naming this one).' },
  'backend.user': { description: 'Role of every pooled connection: not a superuser, no BYPASSRLS (`pg-tenant-proxy doctor` checks).' },
  'backend.password': { description: 'Its password (`""` for none); SCRAM-SHA-256, md5 and cleartext authentication are supported. Over TLS, SCRAM-SHA-256-PLUS (channel binding) is used when the server offers it.' },
  'backend.connect_timeout_ms': { description: 'TCP connect + authentication of a new backend connection.' },
  'backend.sslmode': { description: 'TLS to the server, as libpq\'s sslmode. Cancel requests follow the same sslmode.' },
  'backend.sslrootcert': { description: 'CA bundle for verifying the server (Node\'s bundled CAs otherwise); only with `require`, `verify-ca` or `verify-full`. Relative to the config file\'s directory.' },

  pool: { description: 'The backend connection pool. Replicas × (`pool.size` + `pool.overflow`) is the most backend connections there can be; keep it under PostgreSQL\'s `max_connections`. Every `pool` key but `mode` applies live on SIGHUP ([operating the pool](operations.md#operating-the-pool)).' },
  'pool.mode': { description: '`transaction`: a client holds a backend only for a transaction. `session`: one backend per client connection ([protocol](protocol.md#transaction-mode-and-session-mode)).' },
  'pool.size': { description: 'Steady backends, kept open once opened (subject to `idle_timeout_ms`). The hard cap on backend connections (in use, idle, still connecting or closing) is `size + overflow`.' },
  'pool.overflow': { description: 'Extra backends allowed under load; the hard cap `size + overflow` is never exceeded (under load, churn, reload and backend failures). With `workers`, split like `size`.' },
  'pool.overflow_idle_ms': { description: 'A backend above `size` idle this long is closed.' },
  'pool.min_idle': { description: 'Backends opened ahead of demand and kept ready; at most `size` (overflow backends are never kept ready). With `workers`, split like `size` and at most each worker\'s share.' },
  'pool.pre_ping': { type: 'boolean', default: '`false`', description: '`true`: a backend idle `pre_ping_after_ms` or longer is checked (an empty query, bounded by `min(reset_timeout_ms, 5 s)`) before a client gets it; a dead or unresponsive one is closed and another used, invisibly to the client. Without it, a backend that dies before any of the client\'s statements ran is still replaced transparently.' },
  'pool.pre_ping_after_ms': { description: 'Idle time after which `pre_ping` checks a backend (`0`: always).' },
  'pool.max_lifetime_ms': { description: 'A backend older than this, less up to 10 % jitter, is closed at its next release, never mid-transaction (`0` = never; 300000 is SQLAlchemy\'s `pool_recycle = 300`).' },
  'pool.tenant_max_backends': { description: 'Most backends one tenant holds at once (`0` = no cap); at most `size + overflow`. Trusted logins (`tenant: none`) are not capped. With `workers`, divided over them, at least 1 each.' },
  'pool.fairness': { description: '`tenant`: waiters are served round-robin across tenants, FIFO within a tenant, so one tenant flooding the pool waits behind itself. `fifo`: one queue in arrival order.' },
  'pool.alert_threshold': { type: 'number, above 0 and at most 1', default: '`0.8`', description: 'Fraction of the cap (and, separately, of `overflow`) at which `POOL_SATURATED` is logged once; `POOL_RECOVERED` once it has stayed 0.1 below for `pool.alert_recovery_ms`.' },
  'pool.alert_recovery_ms': { description: 'How long utilisation must stay 0.1 below `pool.alert_threshold` before `POOL_RECOVERED` is logged: under steady overload the checked-out count dips for an instant at every release, which must not read as recovery.' },
  'pool.query_timeout_ms': { description: 'A query running longer is cancelled on the server: ERROR 57014 naming the key; the connection stays usable (`0` = off; the server\'s `statement_timeout` still applies).' },
  'pool.idle_in_transaction_timeout_ms': { description: 'A client idle inside a transaction longer gets FATAL 25P03; the transaction is rolled back and the backend reset and reused (`0` = off). Idle includes a client that sent extended-protocol messages without a Sync once the server has answered all it can (a lone `Parse`, `Execute` + `Flush`): such a hold is a transaction to the server. An `Execute` still running is not idle.' },
  'pool.acquire_timeout_ms': { description: 'How long a client waits for a backend before SQLSTATE 53300 (its connection stays open).' },
  'pool.max_waiting': { description: 'Clients allowed to wait at once for a busy backend; more get 53300 at once. A client a new backend is being opened for (below the cap) is not counted. `0`: a client never waits behind busy backends.' },
  'pool.idle_timeout_ms': { description: 'Idle backends unused this long are closed (`0` = never).' },
  'pool.reset_timeout_ms': { description: '`DISCARD ALL` must finish within this, else the backend is closed.' },
  'pool.reset_delay_ms': { description: 'With nobody waiting, a released backend\'s reset waits this long to be pipelined in front of the next client; then it runs on its own. The bound on how long a client\'s session-level locks, `LISTEN` and temp tables outlive it (`0` = reset at once).' },
  'pool.max_prepared_statements': { description: 'Prepared statements remembered per client for re-preparing; least recently used dropped first. Keep it above your driver\'s own statement cache (asyncpg 100, pgjdbc 256): a forgotten statement gets 26000 with a hint naming this key.' },
  'pool.max_prepared_statement_bytes': { description: 'Bytes of `Parse` messages remembered per client.' },
  'pool.max_prepared_statement_bytes_total': { description: 'Bytes of `Parse` messages remembered across all clients. Past it, a new statement is not remembered (usable within its transaction only) until clients leave: with the per-client bound, what clients can make the proxy keep is bounded whatever they do.' },
  'pool.partial_message_timeout_ms': { description: 'A client that holds a backend with half a message sent and then goes quiet this long gets FATAL 08P01 and is disconnected; the backend is closed (a half-received message cannot be reset). Bounds how long a quiet client can pin a backend mid-message.' },

  auth: { description: 'How logins are verified: tokens (`auth.jwt`) and the failure rate limit. Static users are under `users`.' },
  'auth.jwt': { default: 'required', description: 'Token verification (jose). Required. Give `algorithms`, and `secret` for HS* or exactly one of `public_key_file`, `jwks_file`, `jwks_url` for public-key algorithms. `exp` is always required and checked again at the start of every transaction.' },
  'auth.jwt.algorithms': {
    type: 'list of strings',
    default: 'required',
    description: 'Allowed algorithms: `HS256`, `HS384`, `HS512`, or public-key ones `RS256`, `PS256`, `ES256`, `EdDSA`, never both kinds (key confusion). Tokens naming another algorithm, or `none`, are refused.',
  },
  'auth.jwt.secret': { description: 'The HMAC key for HS*, at least 32 bytes (`openssl rand -base64 48`).', default: 'required for HS*' },
  'auth.jwt.public_key_file': { default: 'one key source required for public-key algorithms', description: 'PEM SPKI public key for public-key algorithms, relative to the config file. Re-read on SIGHUP.' },
  'auth.jwt.jwks_file': { default: 'one key source required for public-key algorithms', description: 'A local JWKS file for public-key algorithms. Re-read on SIGHUP.' },
  'auth.jwt.jwks_url': { default: 'one key source required for public-key algorithms', description: 'A remote JWKS (https; plain http only for a loopback host; no credentials in the URL). Cached, refetched on an unknown `kid` (at most once per cool-down) and every `jwks_max_age_ms`. A failed fetch keeps the cached keys; with no keys ever fetched, logins get 57P03 (try again).' },
  'auth.jwt.jwks_cooldown_ms': { description: 'Remote JWKS: an unknown `kid` refetches the set at most this often. Only with `jwks_url`.' },
  'auth.jwt.jwks_grace_ms': { description: 'Remote JWKS: a key removed from the set stays accepted this long (rotation). Only with `jwks_url`.' },
  'auth.jwt.jwks_timeout_ms': { description: 'Remote JWKS: fetch timeout. Only with `jwks_url`.' },
  'auth.jwt.jwks_max_age_ms': { description: 'Remote JWKS: refresh the set after this age. Only with `jwks_url`.' },
  'auth.jwt.tenant_claim': { description: 'Claim with the tenant id; a dotted path such as `app_metadata.tenant_id` reads a nested claim.' },
  'auth.jwt.max_token_bytes': { description: 'Longer passwords are refused before parsing.' },
  'auth.jwt.clock_tolerance_s': { description: 'Leeway for `exp`/`nbf`. `exp` is always required.' },
  'auth.jwt.issuer': { description: 'If set, `iss` must match.' },
  'auth.jwt.audience': { description: 'If set, `aud` must contain it.' },
  'auth.jwt.role_claim': { description: 'Claim (or dotted path) naming a backend role. If the role is in `allowed_roles`, every transaction runs `SET ROLE` to it inside the injected context, and `DISCARD ALL` undoes it; otherwise the login fails with 28000. Together with `allowed_roles` or not at all.' },
  'auth.jwt.allowed_roles': { type: 'list of role names', description: 'The roles `role_claim` may name (lowercase identifiers). Together with `role_claim` or not at all.' },
  'auth.rate_limit': { description: 'Failed authentications that could be a guess (a wrong password, a bad or forged token; never probes, expired tokens or suspended tenants: see [abuse limits](security.md#abuse-limits)) are counted per client address. Past `max_failures` within `window_ms`, logins from that address are refused at once (28000), before any token or password is read.' },
  'auth.rate_limit.max_failures': { description: 'Failures tolerated per address per window (`0` disables the limit).' },
  'auth.rate_limit.window_ms': { description: 'The counting window.' },
  'auth.rate_limit.max_tracked_addresses': { description: 'Addresses remembered at most (bounded memory).' },

  tenant: { description: 'The tenant context the proxy sets for every transaction, and the isolation around it ([security](security.md)).' },
  'tenant.setting': { description: 'The setting RLS policies read; a two-part custom name (case-insensitive).' },
  'tenant.search_path': { description: 'Template such as `tenant_{tenant}, public`. The element holding `{tenant}` becomes one quoted identifier (`"tenant_acme"`). Unset leaves `search_path` alone. A rendered schema name over 63 bytes is refused at login, because PostgreSQL would truncate it and could merge two tenants.' },
  'tenant.id_pattern': { description: 'Tenant ids outside it are refused at login; it must be anchored with `^…$`.' },
  'tenant.schema_map': { type: 'mapping of tenant id to schema name', default: 'unset', description: 'Explicit tenant → schema for the `search_path` template\'s `{tenant}` element; refused at load if two tenants share a schema.' },
  'tenant.deny': { type: 'list of tenant ids', default: '`[]`', description: 'Suspended tenants: refused at login and at the start of their next transaction (re-read on SIGHUP).' },
  'tenant.readback_check': { description: 'Read the context back at the end of each transaction; a mismatch disconnects the client (`TENANT_CONTEXT_TAMPERED`).' },
  'tenant.guard': { description: 'Check tenants\' statements with the statement guard (42501 naming the rule).' },
  'tenant.protected_settings': { type: 'list of setting names', default: '`[]`', description: 'More settings tenants may not change, added to the tenant setting, `search_path`, `role` and `session_authorization` (always protected).' },
  'tenant.guard_allow': {
    type: 'list of rule ids',
    default: '`[]`',
    description: 'Guard rules not enforced: `do_block`, `function_ddl`, `role_db_set`, `load`, `discard`, `listen`. The rules that protect the context or the guard\'s own reading of statements (`set_protected`, `set_config`, `reset_all`, `role_ddl` (the pool role\'s own login), `pg_settings_write`, `sql_from_string`, `encoding`, `standard_conforming_strings`, `function_call`, `statement_too_large`, `unparsable`, `too_complex`, `guard_error`) cannot be listed.',
  },
  'tenant.function_call_allow': {
    type: 'list of function OIDs',
    default: '`[]`',
    description: 'Function OIDs a guarded tenant may still call with the FunctionCall protocol message (libpq\'s fast path: `PQfn`, and its `lo_*` large-object calls). Every other FunctionCall is refused (rule `function_call`). Built-in OIDs are fixed (`SELECT \'lo_open\'::regproc::oid`); never list `set_config` or anything that runs SQL.',
  },
  'tenant.proof_key': {
    type: 'secret',
    default: 'unset',
    description: 'Key (at least 32 bytes: `openssl rand -base64 48`) of the tenant proof that the tenancy kit\'s `tenancy.current_tenant()` verifies ([the verified tenant context](security.md#the-verified-tenant-context)); `npx pg-tenant-proxy kit --apply` stores it in the database. Unset: no proof is set, and policies can only trust the raw setting (doctor warns).',
  },
  'tenant.proof_setting': { description: 'The setting that carries the proof (`<kid>.<exp>.<mac>`); a two-part custom name, different from `tenant.setting`; always protected by the guard.' },
  'tenant.proof_max_ttl_s': { description: 'Longest lifetime of one proof; it also ends at the token\'s `exp`. The proxy renews it after half its lifetime. In `pool.mode: session` the context is set once per connection, so the proof lasts until the token\'s `exp` instead (for a static user, as long as the connection).' },

  shutdown: { description: 'How the proxy stops on SIGTERM ([drain](operations.md#operating-the-pool)).' },
  'shutdown.drain_timeout_ms': { description: 'On SIGTERM, how long clients inside a transaction may take to finish it: `/readyz` turns 503 and idle clients get 57P01 at once; at the deadline queries still running are cancelled on the server and the rest get 57P01. The Helm chart derives `terminationGracePeriodSeconds` from it. Reloadable.' },

  log: { description: 'Logging: pino JSON lines on stdout ([operations](operations.md#logs)).' },
  'log.level': { description: 'Lowest level logged.' },

  users: { type: 'list of mappings', default: '`[]`', description: 'Static users: people and jobs that log in with a password (SCRAM-SHA-256) instead of a token ([security](security.md#static-users-people-and-jobs)).' },
  'users[].name': { description: 'The user name they log in with.' },
  'users[].scram': { description: 'SCRAM-SHA-256 verifier from `npx pg-tenant-proxy hash-password` (never the password).' },
  'users[].tenant': { description: 'A tenant id (gets that tenant\'s context, like a token), or `none`: trusted, no context injected, unguarded (migrations, SRE work).' },
  'users[].admin': { type: 'boolean', default: '`false`', description: '`true`: the user may log in to the [admin console](operations.md#admin-console) (database `pgtenantproxy`).' },
  'users[].pool_size': { type: 'integer, 1–`pool.size`', description: 'Its own cap on backend connections, taken before the shared pool; at the cap it waits, then gets 53300 naming this key.', default: '`pool.size`' },

  metrics: { description: 'The Prometheus metrics on the admin port ([operations](operations.md#admin-endpoint-and-metrics)).' },
  'metrics.tenant_top_k': { description: 'Tenants with their own `tenant` label on the `pgtp_tenant_*` metrics (most transactions first); the rest are summed as `tenant="other"`, so a scrape has at most K+1 tenant values per metric however many tenants there are.' },
};

/** Prose before the tables. */
export const PREAMBLE = `\`pg-tenant-proxy --config FILE\` reads YAML. [config/example.yaml](../config/example.yaml) is a complete,
commented example. Unknown keys are refused. A bad config prints one line naming the key and the problem,
e.g. \`config: backend.prot: unknown key; did you mean "port"?\`, and exits with status 2.

Secrets (type *secret*: \`backend.password\`, \`auth.jwt.secret\`, \`tenant.proof_key\`) can be a string, \`{ env: VAR }\`, or
\`{ file: path }\` (relative to the config file; trailing newlines trimmed). They are never logged or echoed.

SIGHUP (or \`RELOAD\` in the admin console) re-reads the config file without dropping connections: every
\`pool\` key but \`mode\` (growing at once, shrinking idle backends first and never mid-transaction, timeouts
from the next transaction), \`tenant.deny\`, \`listen.client_idle_timeout_ms\`, \`shutdown.drain_timeout_ms\` and
\`log.level\` take effect at once (\`pool.max_prepared_statements\` and \`pool.max_prepared_statement_bytes\` for
clients that connect after the reload); the \`listen.tls\` certificate and key and
the JWT key files are reloaded (or the JWKS refetched). The other keys need a restart: a reload keeps their
running value and logs \`RELOAD_NEEDS_RESTART\` naming them. A file that no longer validates changes nothing
and logs \`RELOAD_FAILED\` naming the key. With \`workers\`, the primary relays SIGHUP to every worker.`;
