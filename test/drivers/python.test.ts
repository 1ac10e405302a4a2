// psycopg 3 and asyncpg run python/scenarios.py through the proxy and directly; the JSON results must be equal.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { testProof } from '../support/pg.js';
import { canRun, dsnFor, EXPECTED_INTERLEAVED, EXPECTED_PARAM_TYPES, run, scenario, TIMEZONE, type Target } from './scenarios.js';

// The Debian interpreter: python3-psycopg / python3-asyncpg are installed for it, not for a pyenv python3 on PATH.
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'python', 'scenarios.py');
const drivers = ['psycopg', 'asyncpg'] as const;
// A driver is tested only where its module imports (CI installs both; a dev machine may lack them).
const available = Object.fromEntries(
  await Promise.all(drivers.map(async (d) => [d, await canRun(PYTHON, ['-c', `import ${d}`])] as const)),
) as Record<(typeof drivers)[number], boolean>;

describe.runIf(available.psycopg || available.asyncpg)('python drivers (proxy vs direct)', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'drv_python', { pool: { size: 2 } });
  });
  afterAll(async () => t?.close());

  /** One scenario in a fresh interpreter: acme on --dsn, globex on --dsn2. */
  async function runScript(driver: string, target: Target, name: string): Promise<unknown> {
    const args = [SCRIPT, '--driver', driver, '--only', name, '--dsn', await dsnFor(t, target, 'acme'), '--dsn2', await dsnFor(t, target, 'globex')];
    if (target === 'direct') args.push('--set-context', 'acme', '--set-context2', 'globex', '--proof', testProof('acme'), '--proof2', testProof('globex'));
    const { stdout } = await run(PYTHON, args, { timeout: 90_000, maxBuffer: 1 << 24 });
    const result = (JSON.parse(stdout) as Record<string, unknown>)[name];
    const err = (result as { error?: unknown } | null)?.error;
    if (err && Object.keys(result as object).length === 1) throw new Error(`${driver} ${name} via ${target}: ${JSON.stringify(err)}`);
    return result;
  }

  for (const driver of drivers) {
    describe.runIf(available[driver])(driver, () => {
      const at = (name: string) => (target: Target) => runScript(driver, target, name);
      scenario('prepared_reuse', at('prepared_reuse'), (d) =>
        expect(d).toEqual(Array.from({ length: 100 }, (_, i) => ({ n: i + 1, t: 'acme' }))),
      );
      scenario('interleaved_tenants', at('interleaved_tenants'), (d) =>
        expect(d).toEqual(Array.from({ length: 20 }, () => [EXPECTED_INTERLEAVED.acme, EXPECTED_INTERLEAVED.globex]).flat()),
      );
      scenario('param_types', at('param_types'), (d) => expect(d).toEqual([EXPECTED_PARAM_TYPES, EXPECTED_PARAM_TYPES]));
      scenario('savepoints', at('savepoints'), (d) => expect(d).toEqual(['first', 'third']));
      // psycopg: one pipeline (one Sync) = one implicit transaction; asyncpg executemany is atomic. Nothing persists.
      scenario('pipeline_error', at('pipeline_error'), (d) =>
        expect(d).toEqual({ raised: '22012', persisted: [], after: 'acme', ...(driver === 'psycopg' ? { first: { ok: ['a'] } } : {}) }),
      );
      scenario('session_timezone', at('session_timezone'), (d) => expect(d).toEqual({ autocommit: TIMEZONE, inTx: TIMEZONE }));
      // asyncpg's Pool sends RESET ALL (with CLOSE ALL, UNLISTEN *) at every release: a session reset.
      if (driver === 'asyncpg') scenario('pool_release', at('pool_release'), (d) => expect(d).toEqual(Array.from({ length: 5 }, (_, i) => ({ n: i + 1, t: 'acme' }))));
    });
  }
});
