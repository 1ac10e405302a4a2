// psql scripts (session SET, transactions, savepoints, COPY, \gset) print the same through the proxy as directly.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { primaryServer, testProof } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { canRun, marker, run, scenario, TIMEZONE, type Target } from './scenarios.js';

// psql comes from postgresql-client (installed by .ci/run); skip where it is not installed.
const hasPsql = await canRun('psql', ['--version']);

/** Emulates the proxy's tenant context on a direct session; \gset keeps it out of the output. */
const DIRECT_CONTEXT =
  "SELECT set_config('app.current_tenant', :'tenant', false) AS _t, set_config('app.tenant_proof', :'proof', false) AS _q, set_config('search_path', '\"tenant_' || :'tenant' || '\", public', false) AS _p \\gset\n";

const TIMEZONE_SCRIPT = `SET TimeZone = '${TIMEZONE}';
SELECT current_setting('TimeZone');
`;

// Each line is its own simple Query (autocommit = its own transaction) unless inside BEGIN … COMMIT.
const MULTI_SCRIPT = `SELECT current_setting('app.current_tenant'), current_setting('search_path');
SELECT item FROM orders ORDER BY item;
SELECT body FROM notes ORDER BY id LIMIT 1;
BEGIN;
INSERT INTO notes (body) VALUES (:'m' || ':first');
SAVEPOINT a;
INSERT INTO notes (body) VALUES (:'m' || ':second');
ROLLBACK TO SAVEPOINT a;
INSERT INTO notes (body) VALUES (:'m' || ':third');
COMMIT;
BEGIN;
CREATE TEMP TABLE copied (body text) ON COMMIT DROP;
COPY copied FROM STDIN;
copy-1
copy-2
\\.
INSERT INTO notes (body) SELECT :'m' || ':' || body FROM copied;
COMMIT;
SELECT substr(body, length(:'m') + 2) FROM notes WHERE starts_with(body, :'m' || ':') ORDER BY id;
COPY (SELECT count(*) FROM notes WHERE starts_with(body, :'m' || ':')) TO STDOUT;
SELECT current_setting('app.current_tenant') AS tenant \\gset
SELECT :'tenant' || ' via gset';
SELECT 'one'; SELECT 'two';
DELETE FROM notes WHERE starts_with(body, :'m' || ':');
SELECT count(*) FROM notes WHERE starts_with(body, :'m' || ':');
`;

describe.runIf(hasPsql)('psql scripts (proxy vs direct)', () => {
  let t: TestProxy;
  let dir: string;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'drv_psql', { pool: { size: 2 } });
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgtp-psql-'));
  });
  afterAll(async () => {
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `script` with psql -X -At -q -v ON_ERROR_STOP=1 -f at `target` for tenant acme; returns stdout lines. */
  async function psql(target: Target, script: string): Promise<string[]> {
    const file = path.join(dir, `${target}-${marker('psql')}.sql`);
    writeFileSync(file, (target === 'direct' ? DIRECT_CONTEXT : '') + script);
    const env =
      target === 'proxy'
        ? { PGHOST: '127.0.0.1', PGPORT: String(t.proxy.port), PGUSER: 'app', PGPASSWORD: await t.token('acme') }
        : { PGHOST: t.server.host, PGPORT: String(t.server.port), PGUSER: t.poolUser, PGPASSWORD: t.poolPassword };
    const args = ['-X', '-At', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'tenant=acme', '-v', `proof=${testProof('acme')}`, '-v', `m=${marker('psql')}`, '-d', t.database, '-f', file];
    try {
      const { stdout } = await run('psql', args, { env: { ...process.env, ...env, PGSSLMODE: 'disable' }, timeout: 60_000 });
      return stdout.trimEnd().split('\n');
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      throw new Error(`psql (${target}) exited ${err.code}: ${err.stderr ?? ''}\nstdout:\n${err.stdout ?? ''}`);
    }
  }

  scenario('session_timezone', (target) => psql(target, TIMEZONE_SCRIPT), (d) => expect(d).toEqual([TIMEZONE]));

  scenario(
    'multi-statement script',
    (target) => psql(target, MULTI_SCRIPT),
    (d) =>
      expect(d).toEqual([
        'acme|"tenant_acme", public',
        'anvil',
        'rocket',
        'acme note',
        'first',
        'third',
        'copy-1',
        'copy-2',
        '4',
        'acme via gset',
        'one',
        'two',
        '0',
      ]),
  );
});
