// Resolves secret-valued config keys given inline, as { env: VAR } or as { file: path }, without ever echoing the value.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from './types.js';
import { isMapping, record, show } from './validate.js';

const FORMS = 'a string, { env: VAR_NAME } or { file: path }';

/**
 * Returns the secret at `key`. `allowEmpty` permits "" (e.g. a backend using trust authentication).
 * Relative file paths resolve against `baseDir` (the config file's directory); trailing newlines are trimmed.
 */
export function resolveSecret(v: unknown, key: string, env: NodeJS.ProcessEnv, baseDir: string, allowEmpty: boolean): string {
  record({ key, type: 'secret', required: true });
  if (v === undefined || v === null) {
    throw new ConfigError(key, `is required: give ${FORMS}${allowEmpty ? ' ("" for no password)' : ''}`);
  }
  let value: string;
  if (typeof v === 'string') {
    value = v;
  } else if (isMapping(v)) {
    const keys = Object.keys(v);
    if (keys.length !== 1 || (keys[0] !== 'env' && keys[0] !== 'file')) {
      throw new ConfigError(key, `must be ${FORMS}, got a mapping with keys ${keys.map((k) => JSON.stringify(k)).join(', ') || '(none)'}`);
    }
    const ref = v[keys[0]];
    if (typeof ref !== 'string' || ref.length === 0) {
      throw new ConfigError(`${key}.${keys[0]}`, `must be a non-empty string, got ${show(ref)}`);
    }
    if (keys[0] === 'env') {
      const fromEnv = env[ref];
      if (fromEnv === undefined) {
        throw new ConfigError(`${key}.env`, `environment variable ${ref} is not set; export it or give the secret another way`);
      }
      value = fromEnv;
    } else {
      const path = resolve(baseDir, ref);
      try {
        value = readFileSync(path, 'utf8').replace(/[\r\n]+$/, '');
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw new ConfigError(`${key}.file`, `cannot read secret file ${path}: ${err.code ?? err.message}`);
      }
    }
  } else {
    // Never show a scalar here: it may be the secret itself (an unquoted number, say).
    throw new ConfigError(key, `must be ${FORMS} (quote a numeric value), got ${typeof v === 'object' ? 'a list' : `a ${typeof v}`}`);
  }
  if (!allowEmpty && value.length === 0) throw new ConfigError(key, 'is empty');
  return value;
}
