// The tenant context: which settings a client's transactions must see, and the pipelined messages that
// set them in front of the client's first message of each transaction.
//
// Why this shape (verified against PostgreSQL 16 and 18, see test/session/context.test.ts):
//  - Extended-protocol Parse/Bind/Execute of BEGIN; SELECT set_config(..., false) ...; COMMIT is written
//    WITHOUT a Sync, immediately followed by the client's own messages, so there is no extra round trip.
//  - If any of it fails, the server skips every following message until a Sync, simple Query messages
//    included, so the client's statement never runs: fail closed.
//  - On success the COMMIT ends our transaction, so the client's statements start a fresh one: VACUUM and
//    other statements that refuse a transaction block or pipeline still work, and a client ROLLBACK
//    cannot undo the context. is_local = false keeps it for every transaction until the DISCARD ALL that
//    runs before the backend is reused.
//  - Values are bound parameters, never spliced into SQL.
//  - The same SELECT reseeds random() (setseed, a bound parameter written fresh into each transaction's
//    copy of the prefix): DISCARD ALL leaves the seed, and one statement is cheaper than two.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
import { serialize } from 'pg-protocol';
import type { ProofMinter } from './tenant-proof.js';
import { SEED_PLACEHOLDER, writeSeed } from '../backend/seed.js';
import { Lru } from '../util/lru.js';

/** PostgreSQL truncates identifiers longer than NAMEDATALEN-1 bytes, which would merge tenants. */
const MAX_IDENTIFIER_BYTES = 63;

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

export class TenantContextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TenantContextError';
  }
}

/**
 * Renders a search_path template such as `tenant_{tenant}, public`: an element holding `{tenant}`
 * becomes one quoted identifier (`"tenant_acme"`), the others stay as written.
 */
export function renderSearchPath(template: string, tenant: string, schemaMap?: ReadonlyMap<string, string>): string {
  // Rendered once per tenant and template (a login would else split and quote it again); the map is part of
  // the key by identity, since a reload replaces it.
  let byTenant = RENDERED.get(schemaMap ?? NO_MAP);
  if (!byTenant) RENDERED.set(schemaMap ?? NO_MAP, (byTenant = new Lru(10_000)));
  const key = `${template}\u0000${tenant}`;
  const hit = byTenant.get(key);
  if (hit !== undefined) return hit;
  const rendered = renderUncached(template, tenant, schemaMap);
  byTenant.set(key, rendered);
  return rendered;
}
const NO_MAP: ReadonlyMap<string, string> = new Map();
const RENDERED = new WeakMap<ReadonlyMap<string, string>, Lru<string, string>>();

function renderUncached(template: string, tenant: string, schemaMap?: ReadonlyMap<string, string>): string {
  // An explicit map wins; it was checked at load so that no two tenants share a schema.
  const mapped = schemaMap?.get(tenant);
  return template
    .split(',')
    .map((raw) => {
      const el = raw.trim();
      if (!el.includes('{tenant}')) return el;
      // Verbatim substitution (no normalisation), so distinct ids give distinct schemas: acme-corp and
      // acme_corp can never meet in one schema. Only truncation could merge them, and that is refused below.
      const ident = mapped ?? el.split('{tenant}').join(tenant);
      if (Buffer.byteLength(ident, 'utf8') > MAX_IDENTIFIER_BYTES) {
        throw new TenantContextError(
          `schema name for tenant is ${Buffer.byteLength(ident, 'utf8')} bytes; PostgreSQL would truncate it to ${MAX_IDENTIFIER_BYTES} and could merge tenants`,
        );
      }
      return quoteIdent(ident);
    })
    .join(', ');
}

/** Prefix templates by their settings, shared across logins: building one is most of a login's context cost. */
const PREFIXES = new Lru<string, { bytes: Buffer; seedAt: number }>(10_000);
const EMPTY = { bytes: Buffer.alloc(0), seedAt: -1 };

/** Number of CommandComplete messages the prefix produces (BEGIN, SELECT, COMMIT) before the client's own. */
export const PREFIX_COMMANDS = 3;

const BEGIN = Buffer.concat([serialize.parse({ text: 'BEGIN' }), serialize.bind({}), serialize.execute({})]);
const COMMIT = Buffer.concat([serialize.parse({ text: 'COMMIT' }), serialize.bind({}), serialize.execute({})]);

/**
 * Session settings the server reports (ParameterStatus) that a client may change with its own SET; the
 * proxy re-applies the latest value in every later transaction. Lowercase names.
 */
export const TRACKED_REPORTED: ReadonlyMap<string, string> = new Map([
  ['application_name', 'application_name'],
  ['client_encoding', 'client_encoding'],
  ['datestyle', 'DateStyle'],
  ['intervalstyle', 'IntervalStyle'],
  ['timezone', 'TimeZone'],
  ['standard_conforming_strings', 'standard_conforming_strings'],
]);

/**
 * One client's context: the tenant's settings, plus the session settings it asked for at startup or set
 * later. The prefix is built once and rebuilt only when a session setting changes, never per transaction.
 */
export class TenantContext {
  private cached: Buffer | null = null;
  /** Where the cached prefix holds its seed (see transactionPrefix). */
  private seedAt = -1;
  /** When the cached prefix's proof is half-way to expiry and the prefix must be rebuilt (Infinity: no proof). */
  private renewAtMs = Infinity;

  /**
   * @param tenantSettings the tenant's own settings (tenant.setting, search_path): never client-changeable
   * @param session the client's session settings, lowercase name → value
   * @param serverValue the server's default for a setting; an equal value needs no set_config
   */
  constructor(
    private readonly tenantSettings: ReadonlyArray<readonly [string, string]>,
    private readonly session: Map<string, string>,
    private readonly serverValue: (name: string) => string | undefined,
    /** Mints the tenant proof (tenant.proof_key), set in the same statement as the tenant setting. */
    private readonly proof?: ProofMinter,
    /** Whether a value the server reports may be kept and re-applied (the guard's encoding rules); default all. */
    private readonly keeps: (name: string, value: string) => boolean = () => true,
  ) {
    this.loginSession = new Map(session);
  }

  /** The session settings the client logged in with, for resetSession(). */
  private readonly loginSession: ReadonlyMap<string, string>;

  /** True if the client gave `name` (lowercase) itself: a startup parameter, `options`, or a SET it kept. */
  clientSetting(name: string): boolean {
    return this.session.has(name);
  }

  /** The client reset its session (RESET ALL in a session reset): its settings go back to those of its login. */
  resetSession(): void {
    this.session.clear();
    for (const [name, value] of this.loginSession) this.session.set(name, value);
    this.cached = null;
  }

  /**
   * The messages to write in front of one transaction: a copy of the cached prefix with a fresh random()
   * seed (a copy, since a write still queued on a socket may reference the previous one). Empty when there
   * is nothing to set.
   */
  transactionPrefix(): Buffer {
    const template = this.prefix;
    if (template.length === 0) return template;
    const out = Buffer.allocUnsafe(template.length);
    template.copy(out);
    writeSeed(out, this.seedAt);
    return out;
  }

  /** True if the prefix reseeds random() inside its own BEGIN…COMMIT (it does whenever it is not empty). */
  get reseeds(): boolean {
    return this.prefix.length > 0;
  }

  /** The cached prefix, with a placeholder seed (see transactionPrefix); rebuilt only when something changed. */
  get prefix(): Buffer {
    // One clock read per transaction; the prefix itself is rebuilt only when the proof nears its expiry.
    if (this.cached && this.proof && Date.now() >= this.renewAtMs) this.cached = null;
    if (!this.cached) {
      const settings = [...this.tenantSettings];
      if (this.proof) {
        const now = Date.now();
        const p = this.proof.mint(now);
        settings.push([this.proof.setting, p.value]);
        this.renewAtMs = p.renewAtMs;
      }
      for (const [name, value] of this.session) if (this.serverValue(name) !== value) settings.push([name, value]);
      // Clients of one tenant with the same settings share one template (each transaction copies it).
      const built = settings.length > 0 ? PREFIXES.getOrSet(JSON.stringify(settings), () => buildContextPrefix(settings)) : EMPTY;
      this.cached = built.bytes;
      this.seedAt = built.seedAt;
    }
    return this.cached;
  }

  /** CommandCompletes the prefix produces: PREFIX_COMMANDS, or 0 when it is empty. */
  get commands(): number {
    return this.prefix.length > 0 ? PREFIX_COMMANDS : 0;
  }

  /**
   * At the end of a transaction, given the server's last reported values (ServerConn.reported): a tracked
   * setting that differs from what this context asked for was changed by the client's own SET, RESET or
   * DISCARD, and is kept for its later transactions.
   */
  settle(actual: ReadonlyMap<string, string>): void {
    for (const [name, reported] of TRACKED_REPORTED) {
      const value = actual.get(reported);
      if (value === undefined || value === (this.session.get(name) ?? this.serverValue(name)) || !this.keeps(name, value)) continue;
      this.session.set(name, value);
      this.cached = null;
    }
  }
}

/**
 * Builds the prefix for a list of (setting, value) pairs, with a placeholder random() seed as its last
 * bound value; `seedAt` is where that seed's text starts. The last statement it leaves as the unnamed
 * prepared statement is COMMIT: a client that Binds the unnamed statement without parsing one can only
 * ever run that, never the set_config with values of its choosing.
 */
export function buildContextPrefix(settings: ReadonlyArray<readonly [string, string]>): { bytes: Buffer; seedAt: number } {
  if (settings.length === 0) throw new TenantContextError('a tenant context needs at least one setting');
  const calls = settings.map((_, i) => `pg_catalog.set_config($${2 * i + 1}, $${2 * i + 2}, false)`);
  const values = [...settings.flatMap(([name, value]) => [name, value]), SEED_PLACEHOLDER];
  const parse = serialize.parse({ text: `SELECT ${calls.join(', ')}, pg_catalog.setseed($${values.length})` });
  const bind = serialize.bind({ values });
  // The seed is the last value, so its text is the last occurrence of the placeholder in the Bind (a
  // setting's value that happens to read the same comes before it).
  const seedInBind = bind.lastIndexOf(SEED_PLACEHOLDER);
  if (seedInBind < 0) throw new TenantContextError('internal: the reseed value is missing from the context prefix');
  return {
    bytes: Buffer.concat([BEGIN, parse, bind, serialize.execute({}), COMMIT]),
    seedAt: BEGIN.length + parse.length + seedInBind,
  };
}
