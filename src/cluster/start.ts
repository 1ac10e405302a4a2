// The CLI's entry into cluster mode: in a worker process run the worker, with workers > 1 run the primary.
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { ProxyConfig } from '../config/types.js';
import { runPrimary } from './primary.js';
import { runWorker } from './worker.js';

/** Resolves with the exit code in cluster mode, or null when the CLI should run one plain process. */
export async function startCluster(config: ProxyConfig, configPath: string, log: Logger): Promise<number | null> {
  if (cluster.isWorker && process.env.PGTP_WORKER_INDEX !== undefined) return runWorker(config, configPath, log);
  if (config.workers > 1) return runPrimary(config, log, configPath);
  return null;
}
