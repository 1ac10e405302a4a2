// The read-back row check: an intact row is recognised by bytes, anything else is decoded and compared,
// and search_path is ignored when the proxy does not set it.
import { describe, expect, it } from 'vitest';
import { type Readback, readbackIntact } from '../../src/backend/readback.js';
import { dataRowBody as row } from '../support/wire.js';

function rb(searchPath: string | null) {
  const seen: unknown[] = [];
  const r: Readback = { setting: 'app.current_tenant', tenant: 'ácme', searchPath, user: 'pool', tampered: (a) => seen.push(a), failed: () => seen.push('failed') };
  return { r, seen };
}

describe('readbackIntact', () => {
  it('accepts the exact row, and reports any difference with the values read', () => {
    const { r, seen } = rb('"tenant_ácme", public');
    expect(readbackIntact(r, row(['ácme', '"tenant_ácme", public', 'pool']))).toBe(true);
    expect(readbackIntact(r, row(['ácme', '"tenant_ácme", public', 'pool']))).toBe(true);
    expect(seen).toEqual([]);
    for (const bad of [['globex', '"tenant_ácme", public', 'pool'], [null, '"tenant_ácme", public', 'pool'], ['ácme', 'public', 'pool'], ['ácme', '"tenant_ácme", public', 'postgres']]) {
      expect(readbackIntact(r, row(bad))).toBe(false);
    }
    expect(seen).toHaveLength(4);
    expect(seen[1]).toEqual({ tenant: null, searchPath: '"tenant_ácme", public', user: 'pool' });
  });

  it('without a search_path template, any search_path is accepted but tenant and user are still checked', () => {
    const { r, seen } = rb(null);
    expect(readbackIntact(r, row(['ácme', 'whatever', 'pool']))).toBe(true);
    expect(readbackIntact(r, row(['ácme', 'whatever', 'other']))).toBe(false);
    expect(seen).toHaveLength(1);
  });
});
