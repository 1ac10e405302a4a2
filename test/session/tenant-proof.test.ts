// The tenant proof: its encoding matches an independent HMAC, its expiry is capped, and the cached context
// prefix is rebuilt only once the proof is half-way to expiry.
import { createHash, createHmac } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SEED_PLACEHOLDER, SEED_WIDTH } from '../../src/backend/seed.js';
import { TenantContext } from '../../src/session/tenant-context.js';
import { mintProof, ProofMinter, proofKeyId, proofKeyPads } from '../../src/session/tenant-proof.js';

const KEY = 'unit-test-proof-key-that-is-32-bytes-or-more';

describe('tenant proof', () => {
  afterEach(() => vi.useRealTimers());

  it('is <kid>.<exp>.<hex HMAC-SHA256 over tenant\\nexp>; the padded keys give the same HMAC', () => {
    const kid = proofKeyId(KEY);
    expect(kid).toMatch(/^[0-9a-f]{16}$/);
    const p = mintProof(KEY, kid, 'acme', 2_000_000_000);
    expect(p).toBe(`${kid}.2000000000.${createHmac('sha256', KEY).update('acme\n2000000000').digest('hex')}`);
    // What the database computes: sha256(opad || sha256(ipad || msg)), also for keys over 64 bytes.
    for (const key of [KEY, 'k'.repeat(100)]) {
      const { ipad, opad } = proofKeyPads(key);
      const inner = createHash('sha256').update(Buffer.concat([ipad, Buffer.from('t\n1')])).digest();
      const outer = createHash('sha256').update(Buffer.concat([opad, inner])).digest('hex');
      expect(outer).toBe(createHmac('sha256', key).update('t\n1').digest('hex'));
    }
  });

  it('expires at the token exp or after proof_max_ttl_s, whichever is first', () => {
    const now = 1_700_000_000_000;
    const capped = new ProofMinter({ setting: 'app.tenant_proof', key: KEY, maxTtlS: 600 }, 'acme', now + 3_600_000).mint(now);
    expect(capped.value.split('.')[1]).toBe(String(now / 1000 + 600));
    expect(capped.renewAtMs).toBe(now + 300_000);
    const token = new ProofMinter({ setting: 'app.tenant_proof', key: KEY, maxTtlS: 600 }, 'acme', now + 60_000).mint(now);
    expect(token.value.split('.')[1]).toBe(String(now / 1000 + 60));
    // Session mode (uncapped) for a static user (credentials never end): a finite, far expiry.
    const forever = new ProofMinter({ setting: 'app.tenant_proof', key: KEY, maxTtlS: Infinity }, 'acme', Infinity).mint(now);
    expect(forever.value).toMatch(/^[0-9a-f]{16}\.[0-9]{10,12}\.[0-9a-f]{64}$/);
    expect(Number(forever.value.split('.')[1])).toBeGreaterThan(now / 1000 + 40 * 365 * 86_400);
  });

  it('the prefix is cached and rebuilt, with a fresh proof, only after half the proof lifetime', () => {
    vi.useFakeTimers();
    vi.setSystemTime(1_700_000_000_000);
    const minter = new ProofMinter({ setting: 'app.tenant_proof', key: KEY, maxTtlS: 600 }, 'acme', Infinity);
    const ctx = new TenantContext([['app.current_tenant', 'acme']], new Map(), () => undefined, minter);
    const first = ctx.prefix;
    expect(first.toString('latin1')).toContain(`${proofKeyId(KEY)}.${1_700_000_600}.`);
    vi.setSystemTime(1_700_000_000_000 + 299_000);
    expect(ctx.prefix).toBe(first); // the same Buffer: not rebuilt
    vi.setSystemTime(1_700_000_000_000 + 300_000);
    const second = ctx.prefix;
    expect(second).not.toBe(first);
    expect(second.toString('latin1')).toContain(`${proofKeyId(KEY)}.${1_700_000_900}.`);
  });
});

describe('the prefix reseeds random() in every transaction', () => {
  it('each transaction gets its own copy with a fresh seed as the last bound value, and nothing else changes', () => {
    const ctx = new TenantContext([['app.current_tenant', 'acme'], ['application_name', SEED_PLACEHOLDER]], new Map(), () => undefined);
    const template = ctx.prefix;
    expect(template.toString('latin1')).toContain('pg_catalog.setseed($5)');
    const a = ctx.transactionPrefix();
    const b = ctx.transactionPrefix();
    expect(a).not.toBe(template);
    expect(a.length).toBe(template.length);
    const diff = (x: Buffer) => [...x].flatMap((v, i) => (v === template[i] ? [] : [i]));
    // Only the seed differs, and it is the last value: the look-alike setting value is left alone.
    const at = template.lastIndexOf(SEED_PLACEHOLDER);
    expect(template.indexOf(SEED_PLACEHOLDER)).toBeLessThan(at);
    for (const d of [...diff(a), ...diff(b)]) expect(d >= at && d < at + SEED_WIDTH).toBe(true);
    const seedOf = (x: Buffer) => x.toString('latin1', at, at + SEED_WIDTH);
    expect(seedOf(a)).toMatch(/^[+-]0\.[0-9]{16}$/);
    expect(seedOf(a)).not.toBe(seedOf(b));
    expect(template.toString('latin1', at, at + SEED_WIDTH)).toBe(SEED_PLACEHOLDER); // the cached one is never written
    expect(ctx.reseeds).toBe(true);
    expect(new TenantContext([], new Map(), () => undefined).transactionPrefix()).toHaveLength(0);
  });
});

describe('proof memo', () => {
  it('never serves one key proof for another, even when a caller names the same kid', () => {
    const kid = proofKeyId(KEY);
    const a = mintProof(KEY, kid, 'globex', 2_000_000_000);
    const b = mintProof('another-proof-key-that-is-at-least-32-bytes', kid, 'globex', 2_000_000_000);
    expect(a).not.toBe(b);
    expect(b.split('.')[2]).toBe(createHmac('sha256', 'another-proof-key-that-is-at-least-32-bytes').update('globex\n2000000000').digest('hex'));
    expect(mintProof(KEY, kid, 'globex', 2_000_000_000)).toBe(a);
  });
});
