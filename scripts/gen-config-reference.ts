// `npm run docs:config`: writes docs/configuration.md from the validators and src/config/reference.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildReference, REFERENCE_PATH } from './config-reference.js';

const ref = await buildReference();
const problems = [
  ...ref.undocumented.map((k) => `config key ${k} is validated but has no description: add '${k}': { description: '…' } to KEY_DOCS in src/config/reference.ts`),
  ...ref.unvalidated.map((k) => `KEY_DOCS in src/config/reference.ts describes ${k}, which no validator reads: remove it, or read it in src/config/`),
  ...ref.untyped.map((k) => `config key ${k} has no type: read it with int/str/oneOf/validateBool (src/config/validate.ts), or give 'type' in its KEY_DOCS entry`),
];
mkdirSync(path.dirname(REFERENCE_PATH), { recursive: true });
writeFileSync(REFERENCE_PATH, ref.markdown);
console.log(`wrote ${REFERENCE_PATH}`);
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exitCode = 1;
}
