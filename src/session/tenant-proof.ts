// The tenant proof: an HMAC-SHA256 the proxy sets next to the tenant setting, which the database's
// tenancy.current_tenant() (sql/tenancy-kit.sql) verifies before it trusts the tenant setting.
//
// Encoding (version 1), chosen so that no two (tenant, expiry) pairs share a MAC input:
//   value = <kid>.<exp>.<mac>     kid: 16 lowercase hex (names the key), exp: Unix seconds (decimal digits)
//   mac   = hex(HMAC-SHA256(key, <tenant> || "\n" || <exp>))
// exp is digits only and comes last, so splitting the input at its last "\n" is unambiguous whatever bytes
// a tenant id holds. The tenant is not in the value: the database reads it from the tenant setting, so a
// proof replayed next to another tenant id does not verify.
import { createHash, createHmac } from 'node:crypto';
import { Lru } from '../util/lru.js';

/** HMAC-SHA256's block size: keys longer than this are hashed first (RFC 2104). */
const BLOCK = 64;

/** A short public name for a key (not secret: a hash of the key), so the database can hold several (rotation). */
export function proofKeyId(key: string): string {
  return KEY_IDS.getOrSet(key, () => createHash('sha256').update('pg-tenant-proxy proof key id\n').update(key, 'utf8').digest('hex').slice(0, 16));
}
/** Key ids by key: a login would else hash the key again (a handful of keys at most: current and rotated). */
const KEY_IDS = new Lru<string, string>(16);
/** Proofs per key, by kid, tenant and expiry: logins of one tenant within the same second share one HMAC. */
const PROOFS = new Lru<string, Lru<string, string>>(16);

/** The key XOR ipad and XOR opad, as the database stores them: HMAC = sha256(opad || sha256(ipad || msg)). */
export function proofKeyPads(key: string): { ipad: Buffer; opad: Buffer } {
  let k = Buffer.from(key, 'utf8');
  if (k.length > BLOCK) k = createHash('sha256').update(k).digest();
  const ipad = Buffer.alloc(BLOCK, 0x36);
  const opad = Buffer.alloc(BLOCK, 0x5c);
  for (let i = 0; i < k.length; i++) {
    ipad[i] ^= k[i];
    opad[i] ^= k[i];
  }
  return { ipad, opad };
}

/** The proof value for `tenant`, valid until `expSeconds` (Unix seconds). */
export function mintProof(key: string, kid: string, tenant: string, expSeconds: number): string {
  const exp = String(Math.floor(expSeconds));
  // Memoised per key (never across keys, whatever kid a caller names), then by kid, tenant and expiry.
  const memo = PROOFS.getOrSet(key, () => new Lru<string, string>(10_000));
  return memo.getOrSet(`${kid}\n${tenant}\n${exp}`, () => `${kid}.${exp}.${createHmac('sha256', key).update(`${tenant}\n${exp}`, 'utf8').digest('hex')}`);
}

export interface ProofConfig {
  /** The setting the proof goes in (tenant.proof_setting). */
  setting: string;
  key: string;
  /** Longest lifetime of one proof (tenant.proof_max_ttl_s); Infinity: until the credentials end. */
  maxTtlS: number;
}

/** Stands for "never" where credentials do not expire (static users) and the lifetime is not capped. */
const FAR_FUTURE_S = 50 * 365 * 86_400;

/** A proof for one client: mint() returns it with the time after which the context prefix must be rebuilt. */
export class ProofMinter {
  private readonly kid: string;

  constructor(
    private readonly cfg: ProofConfig,
    private readonly tenant: string,
    /** When the client's credentials end (token exp; Infinity for a static user). */
    private readonly expiresAtMs: number,
  ) {
    this.kid = proofKeyId(cfg.key);
  }

  get setting(): string {
    return this.cfg.setting;
  }

  /**
   * A proof that expires at the token's exp or after maxTtlS, whichever is first. It is renewed once half
   * its lifetime has passed, so a transaction always starts with at least half the lifetime left (or the
   * token's remaining time, after which the session refuses new transactions anyway).
   */
  mint(nowMs: number): { value: string; renewAtMs: number } {
    const capMs = nowMs + Math.min(this.cfg.maxTtlS, FAR_FUTURE_S) * 1000;
    const expMs = Math.min(this.expiresAtMs, capMs);
    const expS = Math.ceil(expMs / 1000);
    return { value: mintProof(this.cfg.key, this.kid, this.tenant, expS), renewAtMs: nowMs + (expS * 1000 - nowMs) / 2 };
  }
}
