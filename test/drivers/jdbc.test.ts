// pgjdbc (Debian libpostgresql-jdbc-java, installed by .ci/run) prints the same through the proxy as directly:
// named server-side statements past prepareThreshold, batches, savepoints, cursors, COPY, metadata.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { primaryServer, testProof } from '../support/pg.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { canRun, marker, run, scenario, type Target } from './scenarios.js';

const JAR = '/usr/share/java/postgresql.jar';
const SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'java', 'JdbcScenarios.java');
const available = existsSync(JAR) && (await canRun('java', ['-version']));

describe.runIf(available)('pgjdbc (proxy vs direct)', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'drv_jdbc', { pool: { size: 2 } });
  });
  afterAll(async () => t?.close());

  async function jdbc(target: Target): Promise<string[]> {
    const m = marker('jdbc');
    const args =
      target === 'proxy'
        ? [`jdbc:postgresql://127.0.0.1:${t.proxy.port}/${t.database}?sslmode=disable`, 'app', await t.token('acme'), m]
        : [`jdbc:postgresql://${t.server.host}:${t.server.port}/${t.database}?sslmode=disable`, t.poolUser, t.poolPassword, m, 'acme', testProof('acme')];
    const { stdout } = await run('java', ['-cp', JAR, SOURCE, ...args], { timeout: 120_000 });
    return stdout.trimEnd().split('\n');
  }

  scenario('pgjdbc scenarios', jdbc, (d) =>
    expect(d).toEqual([
      `prepared ${Array.from({ length: 12 }, (_, i) => `${i + 1}a`).join('')}`,
      'batch 50',
      'error 22012',
      'cursor 50',
      'copy 2 52',
      'deleted 52',
      'metadata text',
    ]),
  );
});
