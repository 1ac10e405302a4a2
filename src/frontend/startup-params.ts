// Which startup parameters a client may send, and how they become per-transaction session settings.
// PostgreSQL applies unknown names as settings and fails on bad ones; a pooler must decide each itself.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE

/** Settings a client may set at startup; they are applied at the start of each of its transactions. */
export const SESSION_PARAMS: ReadonlySet<string> = new Set([
  'application_name',
  'client_encoding',
  'datestyle',
  'timezone',
  'intervalstyle',
  'extra_float_digits',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
]);

const IGNORED = new Set(['user', 'database', 'fallback_application_name']);

export class StartupParamError extends Error {
  constructor(
    public readonly sqlstate: string,
    message: string,
    public readonly hint?: string,
  ) {
    super(message);
    this.name = 'StartupParamError';
  }
}

export function sessionParamsFromStartup(params: Map<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [rawName, value] of params) {
    const name = rawName.toLowerCase();
    if (IGNORED.has(name) || name.startsWith('_pq_.')) continue;
    if (SESSION_PARAMS.has(name)) {
      out.set(name, value);
      continue;
    }
    if (name === 'options') {
      if (value.trim() === '') continue;
      throw new StartupParamError(
        '08P01',
        'startup "options" are not supported through pg-tenant-proxy',
        'remove PGOPTIONS / the options connection parameter; set parameters with SET inside transactions instead',
      );
    }
    if (name === 'search_path') {
      throw new StartupParamError('42501', 'search_path is set by the proxy from the tenant and cannot be chosen at connect time', 'remove search_path / currentSchema from the connection settings');
    }
    if (name === 'replication') {
      throw new StartupParamError('08P01', 'replication connections are not supported through pg-tenant-proxy', 'connect replication clients to PostgreSQL directly');
    }
    throw new StartupParamError('08P01', `unsupported startup parameter: ${rawName.slice(0, 64)}`, `supported: ${[...SESSION_PARAMS].join(', ')}`);
  }
  const fallback = params.get('fallback_application_name');
  if (!out.has('application_name') && fallback) out.set('application_name', fallback);
  return out;
}
