// The hand-over judges the server's answers the same way on both paths: the read-back's outcome is always
// reported (intact, tampered, failed, skipped), a failed read-back never passes silently, and a reset that
// does not complete fails the hand-over.
import { describe, expect, it } from 'vitest';
import { serialize } from 'pg-protocol';
import { Handover, type HandoverMode, type ReadbackOutcome } from '../../src/backend/handover.js';
import { cryptoSeed, SEED_WIDTH } from '../../src/backend/seed.js';
import type { Readback } from '../../src/backend/readback.js';
import { dataRowBody } from '../support/wire.js';

const msg = (type: string, body: Buffer) => ({ type: type.charCodeAt(0), body });
const cstr = (s: string) => Buffer.from(s + '\0');
const error = (code: string, severity = 'ERROR') => msg('E', Buffer.concat([cstr('S' + severity), cstr('V' + severity), cstr('C' + code), cstr('Mboom'), Buffer.from([0])]));
const complete = (tag: string) => msg('C', cstr(tag));
const ready = (status = 'I') => msg('Z', Buffer.from(status));
const dataRow = (fields: Array<string | null>) => msg('D', dataRowBody(fields));

function setup(mode: HandoverMode, rollback = false) {
  const outcomes: Array<[ReadbackOutcome, string | null]> = [];
  const calls: string[] = [];
  const rb: Readback = {
    setting: 'app.current_tenant',
    tenant: 'acme',
    searchPath: '"tenant_acme", public',
    user: 'pool',
    tampered: () => calls.push('tampered'),
    failed: (r) => calls.push('failed:' + r),
  };
  const h = new Handover(rollback, rb, { readback: (o, r) => outcomes.push([o, r]) });
  const bytes = h.bytes(mode);
  return { h, outcomes, calls, bytes };
}

/** The answers each path gets for its reset statements after the read-back. */
const resetAnswers = (mode: HandoverMode) =>
  mode === 'eager'
    ? [complete('DISCARD ALL'), ready(), msg('T', Buffer.alloc(0)), dataRow(['']), complete('SELECT 1'), ready()]
    : [
        ...[complete('DISCARD ALL'), complete('BEGIN'), dataRow(['']), complete('SELECT 1'), complete('COMMIT')].flatMap((m) => [msg('1', Buffer.alloc(0)), msg('2', Buffer.alloc(0)), m]),
      ];

function feed(h: Handover, answers: Array<{ type: number; body: Buffer }>) {
  let last = h.answer(answers[0].type, answers[0].body);
  for (const a of answers.slice(1)) last = h.answer(a.type, a.body);
  return last;
}

describe.each(['eager', 'pipelined'] as const)('Handover (%s)', (mode) => {
  it('an intact read-back is counted, and the reset completes', () => {
    const { h, outcomes, calls, bytes } = setup(mode);
    expect(bytes.includes(Buffer.from('DISCARD ALL'))).toBe(true);
    expect(bytes.includes(Buffer.from('setseed('))).toBe(true);
    const v = feed(h, [dataRow(['acme', '"tenant_acme", public', 'pool']), complete('SELECT 1'), ready(), ...resetAnswers(mode)]);
    expect(v.state).toBe('done');
    expect(outcomes).toEqual([['intact', null]]);
    expect(calls).toEqual([]);
  });

  it('a tampered read-back is reported to the client, and counted', () => {
    const { h, outcomes, calls } = setup(mode);
    const v = feed(h, [dataRow(['globex', '"tenant_acme", public', 'pool']), complete('SELECT 1'), ready(), ...resetAnswers(mode)]);
    expect(v.state).toBe('done');
    expect(outcomes).toEqual([['tampered', null]]);
    expect(calls).toEqual(['tampered']);
  });

  it('a read-back that fails is counted and reported, never silent; the reset still runs', () => {
    const { h, outcomes, calls } = setup(mode);
    const v = feed(h, [error('57014'), ready(), ...resetAnswers(mode)]);
    expect(v.state).toBe('done');
    expect(outcomes.map((o) => o[0])).toEqual(['failed']);
    expect(calls[0]).toMatch(/^failed:the read-back query failed: 57014/);
  });

  it('a FATAL (backend terminated) skips the read-back explicitly and fails the hand-over', () => {
    const { h, outcomes, calls } = setup(mode);
    const v = h.answer(error('57P01', 'FATAL').type, error('57P01', 'FATAL').body);
    expect(v.state).toBe('failed');
    expect(outcomes.map((o) => o[0])).toEqual(['skipped']);
    expect(calls).toEqual([]);
  });

  it('a DISCARD ALL that fails fails the hand-over', () => {
    const { h } = setup(mode);
    const answers = mode === 'eager' ? [error('XX000'), ready(), msg('T', Buffer.alloc(0)), complete('SELECT 1'), ready()] : [error('XX000')];
    const v = feed(h, [dataRow(['acme', '"tenant_acme", public', 'pool']), complete('SELECT 1'), ready(), ...answers]);
    expect(v.state).toBe('failed');
  });
});

describe('Handover', () => {
  it('pipelined in front of a context prefix (which reseeds), only DISCARD ALL is sent, and it settles the hand-over', () => {
    const own = new Handover(false, null, { readback: () => {} });
    const bytes = own.bytes('pipelined', true);
    expect(bytes).toEqual(Buffer.concat([serialize.parse({ text: 'DISCARD ALL' }), serialize.bind({}), serialize.execute({})]));
    expect(feed(own, [msg('1', Buffer.alloc(0)), msg('2', Buffer.alloc(0)), complete('DISCARD ALL')]).state).toBe('done');
    // A DISCARD ALL that did not complete is no hand-over, even with nothing after it.
    const failed = new Handover(false, null, { readback: () => {} });
    failed.bytes('pipelined', true);
    expect(feed(failed, [complete('SELECT 1')]).state).toBe('failed');
    // Without a BEGIN after it, the reseed wraps itself (its COMMIT ends the implicit block).
    const wrapped = new Handover(false, null, { readback: () => {} });
    expect(wrapped.bytes('pipelined', false).includes(Buffer.from('COMMIT'))).toBe(true);
    expect(feed(wrapped, [complete('DISCARD ALL'), complete('BEGIN'), complete('SELECT 1')]).state).toBe('more');
    expect(wrapped.answer(0x43, Buffer.from('COMMIT\0')).state).toBe('done');
  });

  it('a backend left in a transaction is rolled back first and cannot be pipelined', () => {
    const { h, bytes } = setup('eager', true);
    expect(h.pipelinable).toBe(false);
    expect(bytes.indexOf(Buffer.from('ROLLBACK'))).toBeLessThan(bytes.indexOf(Buffer.from('DISCARD ALL')));
    expect(() => new Handover(true, null, { readback: () => {} }).bytes('pipelined')).toThrow();
  });

  it('reseeds from a cryptographic source: a fresh value in setseed domain every time', () => {
    const seeds = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const s = cryptoSeed();
      expect(s).toHaveLength(SEED_WIDTH);
      expect(s).toMatch(/^[+-]0\.[0-9]{16}$/);
      const x = Number(s);
      expect(x).toBeGreaterThan(-1);
      expect(x).toBeLessThan(1);
      seeds.add(s);
    }
    expect(seeds.size).toBe(2000);
  });
});
