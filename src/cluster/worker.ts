// One worker process of a cluster (workers > 1): runs the whole proxy on its exact share of the budget,
// owns its clients and backends, and answers the primary over IPC (cancels, metrics, readiness, reload, drain).
import type { Logger } from 'pino';
import { loadConfigFile } from '../config/load.js';
import type { ProxyConfig } from '../config/types.js';
import { readForReload } from '../reload.js';
import { startProxy, type RunningProxy } from '../server.js';
import { CancelRegistry } from '../session/cancel-registry.js';
import { workerConfig } from './budget.js';
import { ownerOf } from './cancel-router.js';
import { livePids } from './live-pids.js';
import { setWorkerView } from './view.js';
import type { ActionResult, AdminAction } from '../admin/console/actions.js';
import { isPgtp, type Command, type Request, type WorkerMessage } from './messages.js';

const send = (m: WorkerMessage): void => {
  if (process.connected) process.send!(m);
};

/** Runs until the primary says shutdown (or goes away); resolves with the exit code. */
export async function runWorker(base: ProxyConfig, configPath: string, baseLog: Logger): Promise<number> {
  const index = Number(process.env.PGTP_WORKER_INDEX);
  const count = Number(process.env.PGTP_WORKERS);
  if (!Number.isInteger(index) || !Number.isInteger(count) || index < 0 || index >= count) {
    throw new Error('worker started without a valid PGTP_WORKER_INDEX / PGTP_WORKERS');
  }
  const log = baseLog.child({ worker: index, pid: process.pid });
  // Console actions this worker asked the primary to apply everywhere, by request id (answered by pgtp:admin-done).
  const adminPending = new Map<number, { resolve(r: ActionResult[]): void; reject(e: Error): void }>();
  let nextAdminId = 1;
  const adminAction = (action: AdminAction): Promise<ActionResult[]> =>
    new Promise((resolve, reject) => {
      if (!process.connected) return reject(new Error('the cluster primary is gone'));
      const id = nextAdminId++;
      adminPending.set(id, { resolve, reject });
      send({ t: 'pgtp:admin-action', id, action });
    });
  const config = workerConfig(base, index, count);
  let proxy: RunningProxy;
  try {
    proxy = await startProxy(config, log, {
      // The console's RELOAD in this worker re-reads the file and takes this worker's share, as SIGHUP does.
      loadConfig: () => workerConfig(loadConfigFile(configPath), index, count),
      consoleState: consoleStateFromEnv(process.env.PGTP_CONSOLE_STATE),
      hooks: {
        cancels: new CancelRegistry({ index, count }),
        routeCancel: (pid, secret) => {
          if (ownerOf(pid, count) === index) return false;
          send({ t: 'pgtp:cancel', pid, secret: secret.toString('hex') });
          return true;
        },
        backendOpened: (pid, secret) => send({ t: 'pgtp:backend-open', pid, secret: secret.toString('hex') }),
        backendClosed: (pid) => send({ t: 'pgtp:backend-close', pid }),
        adminAction,
      },
    });
  } catch (e) {
    log.fatal({ event: 'WORKER_START_FAILED', err: (e as Error).message }, 'worker could not start');
    return 1;
  }

  const answer = async (m: Request): Promise<unknown> => {
    switch (m.t) {
      case 'pgtp:metrics':
        return proxy.metrics.registry.getMetricsAsJSON();
      case 'pgtp:ready':
        return proxy.readiness.check();
      case 'pgtp:ping':
        return proxy.pool.stats();
      case 'pgtp:live-pids':
        return livePids(proxy.pool, m.pids);
      case 'pgtp:admin-action':
        return proxy.applyAdminAction(m.action);
    }
  };

  return new Promise<number>((resolve) => {
    // Drains as a single process does (drain.ts): transactions may finish within shutdown.drain_timeout_ms.
    // Once: a Ctrl-C reaches the worker and the primary both, and the primary's deadline (drain_timeout_ms plus
    // a margin, then SIGKILL) bounds it.
    let stopping = false;
    let closing = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'SHUTDOWN', reason: why }, 'worker draining');
      void proxy.drain().then(() => resolve(0));
    };
    /** The primary's second signal: no grace, whatever the drain still waits for is ended now. */
    const stopNow = (): void => {
      if (closing) return;
      closing = true;
      stopping = true;
      log.warn({ event: 'SHUTDOWN', reason: 'second signal' }, 'worker stopping now');
      void proxy.close().then(() => resolve(0));
    };
    process.on('message', (raw: unknown) => {
      if (!isPgtp(raw)) return;
      const m = raw as Request | Command;
      if (m.t === 'pgtp:workers') {
        setWorkerView(m.rows, index);
      } else if (m.t === 'pgtp:admin-done') {
        const p = adminPending.get(m.id);
        adminPending.delete(m.id);
        if (!p) return;
        if (m.ok) p.resolve(m.results ?? []);
        else p.reject(new Error(m.error ?? 'the primary could not apply the command'));
      } else if (m.t === 'pgtp:cancel') {
        // Routed here by the primary because this worker issued the key; a wrong secret stops nothing.
        proxy.cancelKey(m.pid, Buffer.from(m.secret, 'hex'));
      } else if (m.t === 'pgtp:reload') {
        // The live pool reload (reload.ts) on this worker's share; a bad file logs RELOAD_FAILED with its key.
        const read = readForReload(configPath, log);
        const next: ProxyConfig | undefined = read ? workerConfig(read, index, count) : undefined;
        void proxy.reload?.(next).catch((e: Error) => log.error({ event: 'RELOAD_FAILED', err: e.message }, 'reload failed'));
      } else if (m.t === 'pgtp:shutdown') {
        if (m.now) stopNow();
        else stop('primary asked');
      } else {
        answer(m).then(
          (value) => send({ t: 'pgtp:reply', id: m.id, ok: true, value }),
          (e: Error) => send({ t: 'pgtp:reply', id: m.id, ok: false, error: e.message }),
        );
      }
    });
    // The primary relays SIGTERM/SIGHUP; a terminal's Ctrl-C reaches the whole process group.
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {}); // the primary sends pgtp:reload to every worker
    // Without a primary nobody supervises the budget: stop.
    process.on('disconnect', () => stop('primary went away'));
    send({ t: 'pgtp:listening', port: proxy.port });
  });
}

/**
 * The console state the primary forked this worker with (SUSPEND TENANT, PAUSE in force): a worker that
 * replaces a crashed one must not serve a suspended tenant before the primary's replay reaches it. A value
 * that does not read is no state: the replay still follows.
 */
export function consoleStateFromEnv(raw: string | undefined): { paused: boolean; suspended: string[] } | undefined {
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as { paused?: unknown; suspended?: unknown };
    const suspended = Array.isArray(v.suspended) ? v.suspended.filter((t): t is string => typeof t === 'string') : [];
    return { paused: v.paused === true, suspended };
  } catch {
    return undefined;
  }
}

