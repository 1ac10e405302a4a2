// The README and docs/ as a newcomer reads them: the two set-up commands, a minimal config that validates,
// and links (files and #anchors) that resolve.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
const docs = ['README.md', 'helm/pg-tenant-proxy/README.md', ...readdirSync(path.join(REPO, 'docs')).map((f) => `docs/${f}`)];

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const m = !fence && /^#+ (.*)$/.exec(line);
    if (m) out.add(m[1].toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return out;
}

describe('README and docs', () => {
  it('keeps the two set-up commands and stays short', () => {
    expect(readme).toContain('npm run demo');
    expect(readme).toContain('npm test');
    expect(readme.length).toBeLessThan(10_000);
    expect(readme).not.toMatch(/^pg-tenant-proxy /m); // bare commands are not on PATH after npm ci
  });

  it('its minimal config validates', () => {
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)![1];
    const config = validateConfig(parse(yaml), { PGTP_BACKEND_PASSWORD: 'pw', PGTP_JWT_SECRET: 'x'.repeat(48), PGTP_PROOF_KEY: 'y'.repeat(48) }, '/etc/pg-tenant-proxy');
    expect(config.listen.tls).toBeDefined();
    expect(config.tenant.proof_key).toBeDefined(); // the verified tenant context the kit checks
  });

  it.each(docs)('%s: every relative link and #anchor resolves', (file) => {
    const text = readFileSync(path.join(REPO, file), 'utf8');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      const [rel, anchor] = target.split('#');
      const dest = rel === '' ? path.join(REPO, file) : path.resolve(path.dirname(path.join(REPO, file)), rel);
      expect(existsSync(dest), `${file} links to ${target}`).toBe(true);
      if (anchor && dest.endsWith('.md')) expect(anchors(readFileSync(dest, 'utf8')).has(anchor), `${file} links to ${target}`).toBe(true);
    }
  });
});
