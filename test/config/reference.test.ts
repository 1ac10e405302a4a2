// docs/configuration.md is generated from the validators and src/config/reference.ts; this fails when the two
// drift: a key validated but not described, described but not validated, or the file not regenerated.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildReference, REFERENCE_PATH } from '../../scripts/config-reference.js';
import { validateConfig } from '../../src/config/load.js';
import { recordKeys } from '../../src/config/validate.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('configuration reference', async () => {
  const ref = await buildReference();

  it('describes every key the validators read (src/config/reference.ts KEY_DOCS)', () => {
    const msg = ref.undocumented
      .map((k) => `config key ${k} is validated but has no description: add '${k}': { description: '…' } to KEY_DOCS in src/config/reference.ts, then run npm run docs:config`)
      .join('\n');
    expect(ref.undocumented, msg).toEqual([]);
  });

  it('describes no key that nothing validates', () => {
    const msg = ref.unvalidated
      .map((k) => `KEY_DOCS in src/config/reference.ts describes ${k}, which no validator reads: remove the entry (or, if it is read only on a branch the samples in scripts/config-reference.ts miss, add a sample), then run npm run docs:config`)
      .join('\n');
    expect(ref.unvalidated, msg).toEqual([]);
  });

  it('knows every key\'s type', () => {
    const msg = ref.untyped.map((k) => `config key ${k} has no type: read it with int/str/oneOf/validateBool from src/config/validate.ts, or give 'type' in its KEY_DOCS entry`).join('\n');
    expect(ref.untyped, msg).toEqual([]);
  });

  it(`${REFERENCE_PATH} is what npm run docs:config generates now`, () => {
    const committed = readFileSync(path.join(REPO, REFERENCE_PATH), 'utf8');
    expect(committed === ref.markdown, `${REFERENCE_PATH} is out of date: run npm run docs:config and commit the result`).toBe(true);
  });

  it('the recording hook sees a key the moment a validator reads it, and is off otherwise', () => {
    const tree = { backend: { database: 'd', user: 'u', password: '' }, auth: { jwt: { algorithms: ['HS256'], secret: 'x'.repeat(32) } } };
    const seen = recordKeys(() => validateConfig(tree, {}, '/'));
    expect(seen).toContainEqual({ key: 'pool.size', type: 'integer', min: 1, max: 10_000, default: 20, required: false });
    expect(seen.find((r) => r.key === 'pool.mode' && r.type !== undefined)).toMatchObject({ type: 'enum', values: ['transaction', 'session'], default: 'transaction' });
    expect(recordKeys(() => {})).toEqual([]);
  });
});
