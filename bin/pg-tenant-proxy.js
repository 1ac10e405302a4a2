#!/usr/bin/env node
// CLI entry point. An installed package (npm pack / registry / Docker image) runs the compiled dist/. A git
// checkout (src/ present) runs src/ through tsx when the dev dependencies are installed, so `npx pg-tenant-proxy`
// works after a plain `npm ci` with no build step and never runs a stale dist/.
import { existsSync } from 'node:fs';

const src = new URL('../src/main.ts', import.meta.url);
const dist = new URL('../dist/main.js', import.meta.url);

async function tsxAvailable() {
  try {
    const { register } = await import('tsx/esm/api');
    register();
    return true;
  } catch {
    return false; // production install of a checkout (npm ci --omit=dev): no tsx
  }
}

async function loadMain() {
  if (existsSync(src) && (await tsxAvailable())) return import(src.href);
  if (existsSync(dist)) return import(dist.href);
  throw new Error(
    'dist/ is missing. In a git checkout run `npm ci` (then src/ runs through tsx) or `npm run build` (needs the dev dependencies); or install the published package, which ships dist/.',
  );
}

loadMain()
  .then(({ main }) => main(process.argv.slice(2)))
  .then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`pg-tenant-proxy: ${e.message}\n`);
      process.exit(1);
    },
  );
