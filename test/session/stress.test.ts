// Isolation under stress: N clients across M tenants run random transactions of every shape (implicit,
// explicit, savepoints, errors, multi-statement COMMIT, named prepared statements, pipelines, cancels,
// clients killed mid-transaction, backends terminated). Every check verifies the tenant the statement sees.
// Zero mismatches allowed. PGTP_STRESS_TXNS sets the run length (default 20,000 transactions).
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryServer } from '../support/pg.js';
import { sendCancel } from '../support/wire.js';
import { startTestProxy, type TestProxy } from '../support/proxy.js';
import { ISOLATION_CHECK, isolationVerifier, rng, savepointTransaction } from '../support/stress.js';

const TOTAL = Number(process.env.PGTP_STRESS_TXNS ?? 20_000);
const CLIENTS = 8;
const TENANTS = ['acme', 'globex', 'initech'];
const CHECK = ISOLATION_CHECK;

describe('isolation stress', () => {
  let t: TestProxy;
  beforeAll(async () => {
    t = await startTestProxy(primaryServer(), 'stress', { pool: { size: 4, acquire_timeout_ms: 20_000 } });
    const admin = await t.admin();
    await admin.query(`CREATE SCHEMA IF NOT EXISTS tenant_initech;
      CREATE TABLE IF NOT EXISTS tenant_initech.notes (id serial PRIMARY KEY, body text);
      INSERT INTO tenant_initech.notes (body) VALUES ('initech note');
      INSERT INTO public.orders (tenant_id, item) VALUES ('initech', 'stapler');
      GRANT USAGE ON SCHEMA tenant_initech TO ${t.poolUser};
      GRANT SELECT, INSERT ON tenant_initech.notes TO ${t.poolUser};
      GRANT USAGE ON SEQUENCE tenant_initech.notes_id_seq TO ${t.poolUser};`);
  });
  afterAll(async () => t?.close());

  it(`${TOTAL} random transactions across ${TENANTS.length} tenants and ${CLIENTS} clients: zero mismatches`, { timeout: 600_000 }, async () => {
    let done = 0;
    const mismatches: string[] = [];
    const expectedErrors = new Map<string, number>();
    const admin = await t.admin();

    const verify = isolationVerifier(mismatches);

    async function worker(id: number): Promise<void> {
      const rand = rng(1000 + id);
      const tenant = TENANTS[id % TENANTS.length];
      const connect = async (): Promise<pg.Client> => {
        const c = new pg.Client({ host: '127.0.0.1', port: t.proxy.port, database: t.database, user: 'app', password: await t.token(tenant) });
        c.on('error', () => {});
        await c.connect();
        return c;
      };
      let c = await connect();
      while (done < TOTAL) {
        const kind = Math.floor(rand() * 10);
        try {
          switch (kind) {
            case 0: // implicit, simple protocol
              verify(tenant, (await c.query(CHECK)).rows[0], 'simple');
              break;
            case 1: // extended protocol with a parameter, named statement reused across transactions
              verify(tenant, (await c.query({ name: 'chk', text: `${CHECK}, $1::int AS n`, values: [id] })).rows[0], 'named');
              break;
            case 2: // explicit transaction with a savepoint and an error rolled back to it
              verify(tenant, await savepointTransaction(c, rand() < 0.5), 'savepoint');
              break;
            case 3: { // multi-statement string with COMMIT and ROLLBACK inside
              const res = (await c.query(`BEGIN; SELECT 1; COMMIT; ${CHECK}; BEGIN; ROLLBACK; ${CHECK}`)) as unknown as Array<{ rows: Array<Record<string, unknown>> }>;
              verify(tenant, res[3].rows[0], 'multi-commit');
              verify(tenant, res[6].rows[0], 'multi-rollback');
              break;
            }
            case 4: // an error in an implicit transaction, then a check
              await c.query('SELECT * FROM no_such_table').catch(() => {});
              verify(tenant, (await c.query(CHECK)).rows[0], 'after-error');
              break;
            case 5: // a session SET that must not leak, and a write under RLS
              await c.query("SET work_mem = '9MB'");
              // Sometimes pause: the backend then goes back with nobody waiting (the eager reset path).
              if (rand() < 0.5) await new Promise((r) => setTimeout(r, rand() * 10));
              await c.query(`INSERT INTO notes (body) VALUES ('w${id}')`);
              verify(tenant, (await c.query(CHECK)).rows[0], 'write');
              break;
            case 6: { // a cancel of a running query (via node-postgres' cancel path: a new connection with the key)
              const key = c as unknown as { processID: number; secretKey: number };
              const running = c.query('SELECT pg_sleep(0.3)').catch((e: { code?: string }) => e);
              await new Promise((r) => setTimeout(r, 30 + rand() * 60));
              await sendCancel(t.proxy.port, key.processID, key.secretKey);
              const r = await running;
              if ((r as { code?: string }).code) expectedErrors.set('57014', (expectedErrors.get('57014') ?? 0) + 1);
              verify(tenant, (await c.query(CHECK)).rows[0], 'after-cancel');
              break;
            }
            case 7: // session state left behind, then killed mid-transaction: the socket dies with a transaction open
              await c.query('CREATE TEMP TABLE IF NOT EXISTS leak_probe (x int)');
              await c.query('BEGIN');
              await c.query("SET LOCAL work_mem = '7MB'");
              (c as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
              expectedErrors.set('killed', (expectedErrors.get('killed') ?? 0) + 1);
              c = await connect();
              break;
            case 8: { // our backend terminated by the server mid-transaction
              await c.query('BEGIN');
              const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
              await admin.query('SELECT pg_terminate_backend($1)', [pid]);
              const e = await c.query('SELECT 1').catch((err: Error) => err);
              if (e instanceof Error) {
                expectedErrors.set('terminated', (expectedErrors.get('terminated') ?? 0) + 1);
                c = await connect();
              } else {
                await c.query('ROLLBACK').catch(() => {});
              }
              break;
            }
            default: // a lull: the pool goes idle now and then, so eager resets run as well as pipelined ones
              await new Promise((r) => setTimeout(r, rand() * 15));
              verify(tenant, (await c.query(CHECK)).rows[0], 'after-lull');
          }
        } catch (e) {
          // An unexpected error is not a mismatch, but it must not hide one: record it and reconnect.
          expectedErrors.set(`unexpected:${(e as Error).message.slice(0, 80)}`, (expectedErrors.get(`unexpected:${(e as Error).message.slice(0, 80)}`) ?? 0) + 1);
          await c.end().catch(() => {});
          c = await connect();
        }
        done++;
      }
      await c.end().catch(() => {});
    }

    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => worker(i)));
    if (process.env.PGTP_STRESS_DEBUG) console.log('resets', JSON.stringify((await t.proxy.metrics.resets.get()).values), JSON.stringify([...expectedErrors]));
    const unexpected = [...expectedErrors].filter(([k]) => k.startsWith('unexpected:'));
    expect(mismatches).toEqual([]);
    expect(unexpected).toEqual([]);
    expect(done).toBeGreaterThanOrEqual(TOTAL);
    expect(t.proxy.pool.stats().open).toBeLessThanOrEqual(4);
    // Both hand-over paths ran under this load: eager (pool went idle) and pipelined (a client was waiting).
    const resets = (await t.proxy.metrics.resets.get()).values;
    expect(resets.find((v) => v.labels.mode === 'eager')?.value ?? 0).toBeGreaterThan(0);
    expect(resets.find((v) => v.labels.mode === 'pipelined')?.value ?? 0).toBeGreaterThan(0);
  });
});

