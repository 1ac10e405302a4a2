// The isolation stress run (test/session/stress.test.ts), shortened, against workers: 2: random transactions of
// every shape across two tenants, cancels that land on either worker, clients killed mid-transaction and
// backends terminated by the server. Zero mismatches, and never more backends than pool.size.
// PGTP_CLUSTER_STRESS_TXNS sets the run length (default 2,000 transactions).
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric, startClusterProxy, type ClusterProxy } from '../support/cluster.js';
import { adminClient, primaryServer } from '../support/pg.js';
import { backendCount } from '../support/proxy.js';
import { sendCancel } from '../support/wire.js';
import { ISOLATION_CHECK, isolationVerifier, rng, savepointTransaction } from '../support/stress.js';

const TOTAL = Number(process.env.PGTP_CLUSTER_STRESS_TXNS ?? 2_000);
const CLIENTS = 8;
const TENANTS = ['acme', 'globex'];
const CHECK = ISOLATION_CHECK;

describe('isolation stress with workers: 2', () => {
  let p: ClusterProxy;
  let admin: pg.Client;
  beforeAll(async () => {
    p = await startClusterProxy(primaryServer(), 'cluster_stress', { workers: 2, pool: { size: 4, acquire_timeout_ms: 20_000 } });
    admin = await adminClient(primaryServer(), p.database);
  });
  afterAll(async () => {
    await admin?.end();
    await p?.stop('SIGKILL');
  });

  it(`${TOTAL} random transactions, ${CLIENTS} clients over two workers: zero mismatches, at most 4 backends`, { timeout: 600_000 }, async () => {
    let done = 0;
    let maxBackends = 0;
    let sampling = true;
    const sampler = (async () => {
      const probe = await adminClient(primaryServer(), p.database);
      while (sampling) {
        maxBackends = Math.max(maxBackends, await backendCount(probe, p.poolUser));
        await new Promise((r) => setTimeout(r, 5));
      }
      await probe.end();
    })();
    const mismatches: string[] = [];
    const unexpected: string[] = [];
    const verify = isolationVerifier(mismatches);

    async function client(id: number): Promise<void> {
      const rand = rng(2000 + id);
      const tenant = TENANTS[id % TENANTS.length];
      let c = await p.client(tenant);
      while (done < TOTAL) {
        try {
          switch (Math.floor(rand() * 9)) {
            case 0:
              verify(tenant, (await c.query(CHECK)).rows[0], 'simple');
              break;
            case 1:
              verify(tenant, (await c.query({ name: 'chk', text: `${CHECK}, $1::int AS n`, values: [id] })).rows[0], 'named');
              break;
            case 2:
              verify(tenant, await savepointTransaction(c, rand() < 0.5), 'savepoint');
              break;
            case 3: {
              const res = (await c.query(`BEGIN; SELECT 1; COMMIT; ${CHECK}`)) as unknown as Array<{ rows: Array<Record<string, unknown>> }>;
              verify(tenant, res[3].rows[0], 'multi-commit');
              break;
            }
            case 4:
              await c.query("SET work_mem = '9MB'");
              if (rand() < 0.5) await new Promise((r) => setTimeout(r, rand() * 10));
              verify(tenant, (await c.query(CHECK)).rows[0], 'after-set');
              break;
            case 5: { // a cancel on a fresh connection: it lands on either worker
              const key = c as unknown as { processID: number; secretKey: number };
              const running = c.query('SELECT pg_sleep(0.3)').catch((e: { code?: string }) => e);
              await new Promise((r) => setTimeout(r, 30 + rand() * 60));
              await sendCancel(p.port, key.processID, key.secretKey);
              await running;
              verify(tenant, (await c.query(CHECK)).rows[0], 'after-cancel');
              break;
            }
            case 6: // killed mid-transaction with session state left behind
              await c.query('CREATE TEMP TABLE IF NOT EXISTS leak_probe (x int)');
              await c.query('BEGIN');
              await c.query("SET LOCAL work_mem = '7MB'");
              (c as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
              c = await p.client(tenant);
              break;
            case 7: { // our backend terminated by the server mid-transaction
              await c.query('BEGIN');
              const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
              await admin.query('SELECT pg_terminate_backend($1)', [pid]);
              const e = await c.query('SELECT 1').catch((err: Error) => err);
              if (e instanceof Error) c = await p.client(tenant);
              else await c.query('ROLLBACK').catch(() => {});
              break;
            }
            default:
              await new Promise((r) => setTimeout(r, rand() * 15));
              verify(tenant, (await c.query(CHECK)).rows[0], 'after-lull');
          }
        } catch (e) {
          unexpected.push((e as Error).message.slice(0, 80));
          await c.end().catch(() => {});
          c = await p.client(tenant);
        }
        done++;
      }
      await c.end().catch(() => {});
    }

    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i)));
    sampling = false;
    await sampler;
    expect(mismatches).toEqual([]);
    expect(unexpected).toEqual([]);
    expect(done).toBeGreaterThanOrEqual(TOTAL);
    expect(maxBackends).toBeLessThanOrEqual(4);
    const m = (await p.http('/metrics')).body;
    expect(metric(m, 'pgtp_cancel_requests_total{outcome="routed_to_worker"}')).toBeGreaterThan(0);
  });
});
