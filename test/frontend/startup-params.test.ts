// Startup parameters of guarded tenants: only client encodings the statement guard reads exactly as the
// server does (UTF8 and its spellings, SQL_ASCII) are accepted, from the startup packet or `options -c`.
import { describe, expect, it } from 'vitest';
import { checkGuardedEncoding, sessionParamsFromStartup, StartupParamError } from '../../src/frontend/startup-params.js';

const params = (p: Record<string, string>) => sessionParamsFromStartup(new Map(Object.entries({ user: 'app', database: 'app', ...p })));

describe('guarded client_encoding', () => {
  it.each(['UTF8', 'utf8', 'UTF-8', 'unicode', 'SQL_ASCII'])('accepts %s', (encoding) => {
    expect(() => checkGuardedEncoding(params({ client_encoding: encoding }))).not.toThrow();
  });

  it.each(['SJIS', 'BIG5', 'GBK', 'LATIN1', 'EUC_JP', 'WIN1252', 'auto'])('refuses %s with 0A000 and a hint', (encoding) => {
    let e: unknown;
    try {
      checkGuardedEncoding(params({ client_encoding: encoding }));
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(StartupParamError);
    expect((e as StartupParamError).sqlstate).toBe('0A000');
    expect((e as StartupParamError).message).toMatch(/only UTF8/);
    expect((e as StartupParamError).hint).toMatch(/client_encoding=UTF8/);
  });

  it('refuses it given as options -c too, and accepts a login that sets none', () => {
    expect(() => checkGuardedEncoding(params({ options: '-c client_encoding=SJIS' }))).toThrow(/client_encoding "SJIS"/);
    expect(() => checkGuardedEncoding(params({ options: '--client-encoding=GBK' }))).toThrow(/client_encoding "GBK"/);
    expect(() => checkGuardedEncoding(params({}))).not.toThrow();
  });

  it('counts the server\'s values when the client sets none, and refuses a database with standard_conforming_strings off', () => {
    expect(() => checkGuardedEncoding(params({}), new Map([['client_encoding', 'SJIS']]))).toThrow(/client_encoding "SJIS"/);
    expect(() => checkGuardedEncoding(params({ client_encoding: 'UTF8' }), new Map([['client_encoding', 'SJIS']]))).not.toThrow();
    expect(() => checkGuardedEncoding(params({}), new Map([['standard_conforming_strings', 'off']]))).toThrow(/standard_conforming_strings off/);
    expect(() => checkGuardedEncoding(params({}), new Map([['standard_conforming_strings', 'on'], ['client_encoding', 'UTF8']]))).not.toThrow();
  });
});
