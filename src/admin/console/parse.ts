// The admin console's command language: a few PgBouncer-style commands, case-insensitive, with an optional
// trailing semicolon. Anything else is refused with the list of valid commands.

export type Command =
  | { kind: 'show'; what: 'pools' | 'clients' | 'servers' | 'stats' | 'config' | 'tenants' | 'workers' }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'reload' }
  | { kind: 'kill_client'; id: number }
  | { kind: 'suspend_tenant'; tenant: string }
  | { kind: 'unsuspend_tenant'; tenant: string };

export const VALID_COMMANDS = [
  'SHOW POOLS',
  'SHOW CLIENTS',
  'SHOW SERVERS',
  'SHOW STATS',
  'SHOW TENANTS',
  'SHOW CONFIG',
  'SHOW WORKERS',
  'PAUSE',
  'RESUME',
  'RELOAD',
  'KILL CLIENT <id>',
  'SUSPEND TENANT <tenant>',
  'UNSUSPEND TENANT <tenant>',
];

export class CommandError extends Error {
  constructor(
    message: string,
    readonly sqlstate = '42601',
    readonly hint = `valid commands: ${VALID_COMMANDS.join(', ')}`,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

const SHOWABLE = new Set(['pools', 'clients', 'servers', 'stats', 'config', 'tenants', 'workers']);

/** Parses one statement (no semicolons inside); null for an empty one. */
export function parseCommand(text: string): Command | null {
  const words = text.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return null;
  const verb = words.map((w, i) => (i < 2 ? w.toLowerCase() : w));
  const shown = text.trim().slice(0, 80);
  const arity = (n: number): void => {
    if (words.length !== n) throw new CommandError(`"${shown}": wrong number of arguments`);
  };
  switch (verb[0]) {
    case 'show':
      arity(2);
      if (!SHOWABLE.has(verb[1])) throw new CommandError(`unknown SHOW item "${words[1].slice(0, 40)}"`);
      return { kind: 'show', what: verb[1] as 'pools' };
    case 'pause':
    case 'resume':
    case 'reload':
      arity(1);
      return { kind: verb[0] };
    case 'kill':
      arity(3);
      if (verb[1] !== 'client' || !/^\d{1,10}$/.test(words[2])) throw new CommandError(`"${shown}": expected KILL CLIENT <id> (the id column of SHOW CLIENTS)`);
      return { kind: 'kill_client', id: Number(words[2]) };
    case 'suspend':
    case 'unsuspend': {
      arity(3);
      if (verb[1] !== 'tenant') throw new CommandError(`"${shown}": expected ${verb[0].toUpperCase()} TENANT <tenant>`);
      const tenant = words[2].replace(/^'(.*)'$/, '$1');
      return verb[0] === 'suspend' ? { kind: 'suspend_tenant', tenant } : { kind: 'unsuspend_tenant', tenant };
    }
    default:
      throw new CommandError(`unknown command "${shown}"`);
  }
}

/** Splits a query string into statements at semicolons (the console's commands never contain one). */
export function splitStatements(query: string): string[] {
  const parts = query.split(';');
  // "SHOW POOLS;" is one statement, not one plus an empty one.
  if (parts.length > 1 && parts[parts.length - 1].trim() === '') parts.pop();
  return parts;
}
