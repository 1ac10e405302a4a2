// Which startup parameters a client may send, and how they become per-transaction session settings.
// PostgreSQL applies unknown names as settings and fails on bad ones; a pooler must decide each itself.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
import { isGuardableEncoding } from '../guard/rules.js';

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
      for (const [optName, optValue] of parseOptions(value)) {
        if (!SESSION_PARAMS.has(optName)) {
          throw new StartupParamError(
            '08P01',
            `startup option -c ${optName.slice(0, 64)} is not allowed through pg-tenant-proxy: options are never forwarded raw to pooled connections`,
            `allowed: ${[...SESSION_PARAMS].join(', ')}`,
          );
        }
        out.set(optName, optValue);
      }
      continue;
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

/**
 * A guarded tenant's client_encoding (startup packet or `options -c`, already merged into `session`): only
 * UTF8 (or SQL_ASCII, which a UTF8 database validates as UTF8). In SJIS, BIG5, GBK and the like a
 * character's second byte can be a backslash or a quote to the guard but not to the server, so the guard
 * would read a statement differently from the server. 0A000 (feature not supported), not 22023: the value
 * is valid for PostgreSQL; this proxy does not support it for guarded tenants.
 */
export function checkGuardedEncoding(session: ReadonlyMap<string, string>, server: ReadonlyMap<string, string> = new Map()): void {
  // The server's own values count when the client sets none (ALTER DATABASE/ROLE ... SET can change them).
  if (server.get('standard_conforming_strings') === 'off') {
    throw new StartupParamError(
      '0A000',
      'the database runs with standard_conforming_strings off, which the statement guard cannot read safely: tenant logins are refused',
      'an administrator must turn it back on: ALTER DATABASE ... SET standard_conforming_strings = on (or for the pool role), or in postgresql.conf',
    );
  }
  const encoding = session.get('client_encoding') ?? server.get('client_encoding');
  if (encoding === undefined || isGuardableEncoding(encoding)) return;
  throw new StartupParamError(
    '0A000',
    `client_encoding ${JSON.stringify(encoding.slice(0, 32))} is not supported for tenant connections through pg-tenant-proxy: only UTF8`,
    'connect with client_encoding=UTF8 (PGCLIENTENCODING=UTF8) and convert text in the application',
  );
}

/**
 * Parses a libpq `options` string: `-c name=value` or `--name=value` pairs separated by whitespace, where
 * a backslash escapes the next character (so `\ ` is a space inside a value). Anything else is refused.
 * Reference: https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-OPTIONS
 */
export function parseOptions(options: string): Array<[string, string]> {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i];
    if (ch === '\\' && i + 1 < options.length) {
      word += options[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < words.length; i++) {
    let setting: string;
    if (words[i] === '-c') {
      if (i + 1 >= words.length) throw new StartupParamError('08P01', 'startup option -c has no name=value after it');
      setting = words[++i];
    } else if (words[i].startsWith('-c')) {
      setting = words[i].slice(2);
    } else if (words[i].startsWith('--')) {
      setting = words[i].slice(2);
    } else {
      throw new StartupParamError('08P01', `unsupported startup option "${words[i].slice(0, 64)}": only -c name=value is accepted`);
    }
    const eq = setting.indexOf('=');
    if (eq <= 0) throw new StartupParamError('08P01', `startup option "${setting.slice(0, 64)}" is not name=value`);
    pairs.push([setting.slice(0, eq).toLowerCase().replace(/-/g, '_'), setting.slice(eq + 1)]);
  }
  return pairs;
}
