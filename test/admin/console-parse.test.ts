// The console's command parser and the SQLSTATE-class reader used for pgtp_errors_total (no database needed).
import { describe, expect, it } from 'vitest';
import { CommandError, parseCommand, splitStatements } from '../../src/admin/console/parse.js';
import { sqlstateClass } from '../../src/admin/registry.js';
import { errorResponse } from '../../src/protocol/encode.js';

const refused = (text: string): CommandError => {
  try {
    parseCommand(text);
  } catch (e) {
    expect(e).toBeInstanceOf(CommandError);
    return e as CommandError;
  }
  throw new Error(`expected "${text}" to be refused`);
};

describe('console commands', () => {
  it('are case-insensitive and keep the argument as written', () => {
    expect(parseCommand('show Tenants')).toEqual({ kind: 'show', what: 'tenants' });
    expect(parseCommand('  SHOW\tPOOLS ')).toEqual({ kind: 'show', what: 'pools' });
    expect(parseCommand('pause')).toEqual({ kind: 'pause' });
    expect(parseCommand('Kill Client 42')).toEqual({ kind: 'kill_client', id: 42 });
    expect(parseCommand('suspend tenant acme_1')).toEqual({ kind: 'suspend_tenant', tenant: 'acme_1' });
    expect(parseCommand("UNSUSPEND TENANT 'acme'")).toEqual({ kind: 'unsuspend_tenant', tenant: 'acme' });
    expect(parseCommand('   ')).toBeNull();
  });

  it('a trailing semicolon is optional; several statements split at semicolons', () => {
    expect(splitStatements('SHOW POOLS;')).toEqual(['SHOW POOLS']);
    expect(splitStatements('SHOW POOLS')).toEqual(['SHOW POOLS']);
    expect(splitStatements('PAUSE; SHOW POOLS;')).toEqual(['PAUSE', ' SHOW POOLS']);
  });

  it('anything else is 42601 with the list of valid commands', () => {
    for (const bad of ['SELECT 1', 'SHOW', 'SHOW POOLS EXTRA', 'SHOW LISTS', 'KILL CLIENT abc', 'KILL 12', 'KILL SERVER 1', 'SUSPEND acme', 'PAUSE NOW', 'KILL CLIENT 12345678901']) {
      const e = refused(bad);
      expect(e.sqlstate, bad).toBe('42601');
      expect(e.hint).toContain('SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, SHOW STATS, SHOW TENANTS, SHOW CONFIG, SHOW WORKERS, PAUSE, RESUME, RELOAD');
    }
  });
});

describe('sqlstateClass', () => {
  it('reads the class of an ErrorResponse body in place', () => {
    const body = (code: string) => errorResponse({ code, message: 'm', hint: 'h' }).subarray(5);
    expect(sqlstateClass(body('53300'))).toBe('53');
    expect(sqlstateClass(body('22012'))).toBe('22');
    expect(sqlstateClass(body('xx;'))).toBe('XX'); // not a SQLSTATE: one fixed label, never free text
    expect(sqlstateClass(Buffer.from('SERROR\0Mno code\0\0'))).toBe('XX');
    expect(sqlstateClass(Buffer.alloc(0))).toBe('XX');
  });
});
