// A value the guard refuses (a client_encoding other than UTF8, standard_conforming_strings off) is never
// re-applied in a guarded tenant's later transactions, whatever route the server reported it from.
import { describe, expect, it } from 'vitest';
import { guardKeepsSetting } from '../../src/guard/rules.js';
import { TenantContext } from '../../src/session/tenant-context.js';

const reported = new Map([
  ['client_encoding', 'SJIS'],
  ['standard_conforming_strings', 'off'],
  ['DateStyle', 'ISO, DMY'],
]);

describe('re-applied session settings of guarded tenants', () => {
  it('keeps ordinary changes but never a refused encoding or standard_conforming_strings off', () => {
    const ctx = new TenantContext([['app.current_tenant', 'acme']], new Map(), () => undefined, undefined, guardKeepsSetting);
    ctx.settle(reported);
    expect(ctx.prefix.includes('ISO, DMY')).toBe(true);
    expect(ctx.prefix.includes('SJIS')).toBe(false);
    expect(ctx.prefix.includes('standard_conforming_strings')).toBe(false);
  });

  it('an unguarded context (trusted login) keeps them, as before', () => {
    const ctx = new TenantContext([['app.current_tenant', 'acme']], new Map(), () => undefined);
    ctx.settle(reported);
    expect(ctx.prefix.includes('SJIS')).toBe(true);
  });

  it('accepts UTF8 spellings and on', () => {
    expect(guardKeepsSetting('client_encoding', 'UTF8')).toBe(true);
    expect(guardKeepsSetting('standard_conforming_strings', 'on')).toBe(true);
    expect(guardKeepsSetting('client_encoding', 'BIG5')).toBe(false);
  });
});
