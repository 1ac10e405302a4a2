// Small typed readers for the raw YAML tree: each one returns a checked value or throws a one-line ConfigError.
import { ConfigError } from './types.js';

export type Raw = Record<string, unknown>;

/**
 * What a reader learned about one key, for the generated configuration reference (docs/configuration.md,
 * scripts/config-reference.ts). Recording is off except inside recordKeys(), so validation is unchanged.
 */
export interface KeyInfo {
  key: string;
  type?: 'mapping' | 'integer' | 'string' | 'enum' | 'boolean' | 'secret';
  default?: unknown;
  values?: readonly string[];
  min?: number;
  max?: number;
  required?: boolean;
}

let recorder: ((info: KeyInfo) => void) | undefined;

/** Notes a key for the reference; a no-op outside recordKeys(). */
export function record(info: KeyInfo): void {
  recorder?.(info);
}

/** Runs `fn` (validations) and returns every key the readers saw, in the order they saw them. */
export function recordKeys(fn: () => void): KeyInfo[] {
  const seen: KeyInfo[] = [];
  const previous = recorder;
  recorder = (info) => seen.push(info);
  try {
    fn();
  } finally {
    recorder = previous;
  }
  return seen;
}

/** setTimeout fires at once for delays past 2^31-1 ms, so no timeout may exceed it. */
export const MAX_TIMER_MS = 2_147_483_647;

export function join(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

/** A short, safe description of a non-secret value for error messages. */
export function show(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v);
  return String(v);
}

export function isMapping(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

function suggest(key: string, allowed: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of allowed) {
    const d = distance(key.toLowerCase(), k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? `; did you mean "${best}"?` : '';
}

/**
 * Reads a mapping (absent or empty → {}), refusing keys outside `allowed` so a typo never silently
 * falls back to a default.
 */
export function section(v: unknown, key: string, allowed: readonly string[]): Raw {
  if (recorder) {
    if (key !== '') record({ key, type: 'mapping' });
    for (const k of allowed) record({ key: join(key, k) });
  }
  if (v === undefined || v === null) return {};
  if (!isMapping(v)) {
    throw new ConfigError(key || '(top level)', `must be a mapping of keys (${allowed.join(', ')}), got ${show(v)}`);
  }
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) {
      throw new ConfigError(join(key, k), `unknown key${suggest(k, allowed)} (allowed here: ${allowed.join(', ')})`);
    }
  }
  return v;
}

export interface IntOpts {
  min: number;
  max: number;
  def?: number;
}

export function int(obj: Raw, parent: string, name: string, o: IntOpts): number {
  const key = join(parent, name);
  record({ key, type: 'integer', min: o.min, max: o.max, default: o.def, required: o.def === undefined });
  const v = obj[name];
  if (v === undefined || v === null) {
    if (o.def === undefined) throw new ConfigError(key, 'is required');
    return o.def;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < o.min || v > o.max) {
    throw new ConfigError(key, `must be an integer from ${o.min} to ${o.max}, got ${show(v)}`);
  }
  return v;
}

export function str(obj: Raw, parent: string, name: string, def?: string): string {
  const key = join(parent, name);
  record({ key, type: 'string', default: def, required: def === undefined });
  const v = obj[name];
  if (v === undefined || v === null) {
    if (def === undefined) throw new ConfigError(key, 'is required');
    return def;
  }
  if (typeof v !== 'string' || v.length === 0) {
    throw new ConfigError(key, `must be a non-empty string, got ${typeof v === 'string' ? 'an empty string' : show(v)}`);
  }
  return v;
}

export function optStr(obj: Raw, parent: string, name: string): string | undefined {
  record({ key: join(parent, name), type: 'string', required: false });
  const v = obj[name];
  return v === undefined || v === null ? undefined : str(obj, parent, name);
}

export function oneOf<T extends string>(obj: Raw, parent: string, name: string, values: readonly T[], def: T): T {
  record({ key: join(parent, name), type: 'enum', values, default: def, required: false });
  const v = str(obj, parent, name, def);
  if (!(values as readonly string[]).includes(v)) {
    throw new ConfigError(join(parent, name), `must be one of ${values.join(', ')}, got ${show(v)}`);
  }
  return v as T;
}

/**
 * True when `source` is anchored at both ends for every match: starts with ^, ends with an unescaped $,
 * and has no top-level alternation (`^a|b$` would match "b" anywhere).
 */
export function isFullyAnchored(source: string): boolean {
  if (!source.startsWith('^') || !source.endsWith('$')) return false;
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      if (i === source.length - 2) return false; // the final $ is escaped
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
    } else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return false;
  }
  return true;
}
