// The cluster primary (workers > 1): forks the workers, restarts a dead one (with backoff) only after its
// budget share is free again, routes CancelRequests to the worker that issued the key, relays SIGHUP and
// SIGTERM, and serves the one admin endpoint. It proxies nothing itself.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type client from 'prom-client';
import { sendCancel } from '../backend/connect.js';
import type { ActionResult, AdminAction } from '../admin/console/actions.js';
import type { ProxyConfig } from '../config/types.js';
import { readForReload } from '../reload.js';
import { startClusterAdmin } from './admin.js';
import { share } from './budget.js';
import { ownerOf } from './cancel-router.js';
import { ClusterMetrics } from './metrics.js';
import { consoleStateEnv } from './console-state-env.js';
import { isPgtp, type Command, type Request, type WorkerMessage } from './messages.js';

/** A worker that dies sooner than this after it started counts as a crash loop for the backoff. */
const STABLE_MS = 30_000;
const MAX_BACKOFF_MS = 30_000;
/** Longest wait for a dead worker's backends to leave pg_stat_activity before its share is reused anyway (logged). */
const FENCE_LIMIT_MS = 60_000;
/** With no live worker to run the check, how long to wait after cancelling the dead worker's backends. */
const FENCE_BLIND_MS = 2_000;
const REQUEST_TIMEOUT_MS = 3_000;
/** Beyond shutdown.drain_timeout_ms: what a worker may take to cancel queries and close backends before SIGKILL. */
const DRAIN_MARGIN_MS = 5_000;
/** Longest a cluster-wide PAUSE waits for every worker's running transactions. */
const ADMIN_PAUSE_LIMIT_MS = 3_600_000;

interface Slot {
  index: number;
  worker: Worker | null;
  listening: boolean;
  startedAt: number;
  crashes: number;
  /** Times this worker was restarted (SHOW WORKERS). */
  restarts: number;
  /** Server pid → cancel secret of every backend this worker holds (reported over IPC). */
  backends: Map<number, string>;
  timer: NodeJS.Timeout | null;
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type Pending = { slot: number; resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout };

export async function runPrimary(config: ProxyConfig, log: Logger, configPath?: string): Promise<number> {
  const count = config.workers;
  const plog = log.child({ worker: 'primary', pid: process.pid });
  const metrics = new ClusterMetrics();
  metrics.workersConfigured.set(count);
  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({ index, worker: null, listening: false, startedAt: 0, crashes: 0, restarts: 0, backends: new Map(), timer: null }));
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let stopping = false;
  /** shutdown.drain_timeout_ms as last reloaded (SIGHUP): the workers drain for it, so the SIGKILL deadline follows it. */
  let drainTimeoutMs = config.shutdown.drain_timeout_ms;
  /** pool.size as last reloaded, for SHOW WORKERS' pool_share. */
  let poolSize = config.pool.size;
  /** SIGHUP or the console's RELOAD: the primary keeps what it enforces itself in step with the workers (the drain deadline). */
  const reloadPrimary = (): void => {
    const next = configPath !== undefined ? readForReload(configPath, plog) : null;
    if (!next) return;
    drainTimeoutMs = next.shutdown.drain_timeout_ms;
    if (next.pool.size !== poolSize && next.pool.size >= count) {
      poolSize = next.pool.size;
      broadcastWorkers(); // SHOW WORKERS' pool_share: the workers took their shares of the new size
    }
  };
  let announced = false;

  const request = (slot: Slot, m: WithoutId<Request>, timeoutMs = REQUEST_TIMEOUT_MS): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const w = slot.worker;
      if (!w || !slot.listening || !w.isConnected()) return reject(new Error(`worker ${slot.index} is not running`));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`worker ${slot.index} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, { slot: slot.index, resolve, reject, timer });
      w.send({ ...m, id } as Request);
    });
  const command = (slot: Slot, m: Command): void => {
    if (slot.worker?.isConnected()) slot.worker.send(m);
  };
  const running = (): Slot[] => slots.filter((s) => s.worker && s.listening);
  /** Tells every worker the current states (SHOW WORKERS); called on every start, ready and exit. */
  const broadcastWorkers = (): void => {
    const rows = slots.map((s) => ({
      worker: s.index,
      pid: s.worker?.process.pid ?? null,
      state: (s.worker ? (s.listening ? 'running' : 'starting') : 'restarting') as 'running' | 'starting' | 'restarting',
      restarts: s.restarts,
      pool_share: share(poolSize, count, s.index),
      started_at: s.worker ? new Date(s.startedAt).toISOString() : null,
    }));
    for (const s of slots) command(s, { t: 'pgtp:workers', rows });
  };

  /**
   * The console's runtime state (SUSPEND TENANT, PAUSE) as the cluster last applied it. A worker that is
   * restarted (after a crash) starts with none of it, so it is replayed to the replacement as soon as it
   * listens: a suspended tenant stays suspended and a PAUSE for a failover holds the new worker too.
   */
  const consoleState = { paused: false, suspended: new Set<string>() };
  const remember = (a: AdminAction): void => {
    if (a.op === 'pause') consoleState.paused = true;
    else if (a.op === 'resume') consoleState.paused = false;
    else if (a.op === 'suspend') consoleState.suspended.add(a.tenant);
    else if (a.op === 'unsuspend') consoleState.suspended.delete(a.tenant);
  };
  const replay = (slot: Slot): void => {
    const actions: AdminAction[] = [...consoleState.suspended].map((tenant) => ({ op: 'suspend', tenant }) as const);
    if (consoleState.paused) actions.push({ op: 'pause' });
    for (const action of actions) {
      request(slot, { t: 'pgtp:admin-action', action }, action.op === 'pause' ? ADMIN_PAUSE_LIMIT_MS : REQUEST_TIMEOUT_MS).catch((e: Error) =>
        plog.error({ event: 'CONSOLE_STATE_REPLAY_FAILED', worker: slot.index, op: action.op, err: e.message }, 'could not restore the console state on a restarted worker'),
      );
    }
  };

  const onMessage = (slot: Slot, raw: unknown): void => {
    if (!isPgtp(raw)) return;
    const m = raw as WorkerMessage;
    if (m.t === 'pgtp:reply') {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.error));
    } else if (m.t === 'pgtp:backend-open') slot.backends.set(m.pid, m.secret);
    else if (m.t === 'pgtp:backend-close') slot.backends.delete(m.pid);
    else if (m.t === 'pgtp:cancel') {
      // Keys are sharded by pid % workers; a key of a worker that is gone has no query left to stop.
      command(slots[ownerOf(m.pid, count)], { t: 'pgtp:cancel', pid: m.pid, secret: m.secret });
    } else if (m.t === 'pgtp:admin-action') {
      if (m.action.op === 'reload') reloadPrimary();
      remember(m.action);
      // A console command on one worker: every running worker applies it (PAUSE answers once all are quiet).
      const timeout = m.action.op === 'pause' ? ADMIN_PAUSE_LIMIT_MS : REQUEST_TIMEOUT_MS;
      void Promise.all(running().map((s) => request(s, { t: 'pgtp:admin-action', action: m.action }, timeout) as Promise<ActionResult>)).then(
        (results) => command(slot, { t: 'pgtp:admin-done', id: m.id, ok: true, results }),
        (e: Error) => command(slot, { t: 'pgtp:admin-done', id: m.id, ok: false, error: e.message }),
      );
    } else if (m.t === 'pgtp:listening') {
      slot.listening = true;
      replay(slot);
      metrics.workerUp.set({ worker: String(slot.index) }, 1);
      broadcastWorkers();
      if (!announced && running().length === count) {
        announced = true;
        plog.info({ event: 'LISTENING', host: config.listen.host, port: m.port, admin_port: adminPort, workers: count, pool_size: config.pool.size, shares: slots.map((s) => share(config.pool.size, count, s.index)) }, 'pg-tenant-proxy ready');
      }
    }
  };

  const fork = (slot: Slot): void => {
    slot.timer = null;
    if (stopping) return;
    // The console's state goes with the fork, so the worker has it before it listens; the replay once it
    // listens covers a change made while it was starting.
    // (Too large for the environment, it is left to the replay: E2BIG would throw here and end the primary.)
    const state = consoleStateEnv(consoleState);
    if (state === undefined) plog.warn({ event: 'CONSOLE_STATE_TOO_LARGE', suspended: consoleState.suspended.size }, 'console state too large to pass at fork; the worker gets it from the replay once it listens');
    const w = cluster.fork({ PGTP_WORKER_INDEX: String(slot.index), PGTP_WORKERS: String(count), PGTP_ADMIN_EPHEMERAL: '0', ...(state !== undefined ? { PGTP_CONSOLE_STATE: state } : {}) });
    slot.worker = w;
    slot.listening = false;
    slot.startedAt = Date.now();
    w.on('message', (m: unknown) => onMessage(slot, m));
    w.on('disconnect', () => {
      // The IPC channel is gone with the process: nothing sent to it will be answered.
      slot.listening = false;
      for (const [id, p] of pending) {
        if (p.slot !== slot.index) continue;
        pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new Error('not running'));
      }
    });
    w.on('exit', (code, signal) => void onExit(slot, w, code, signal));
  };

  /**
   * The budget fence. A dead worker's sockets are closed by the kernel: its idle backends see EOF and exit at
   * once, but a backend in the middle of a statement notices only when it next reads or writes its socket.
   * So: cancel each of them (the statement ends, the backend then reads EOF and exits), and start the
   * replacement only once a live worker, on a backend of its own share, sees none of them in pg_stat_activity.
   */
  const fence = async (slot: Slot): Promise<void> => {
    let pids = [...slot.backends.keys()];
    const secrets = new Map(slot.backends);
    slot.backends.clear();
    if (pids.length === 0) return;
    const t0 = Date.now();
    await Promise.all(pids.map((pid) => sendCancel(config.backend, pid, Buffer.from(secrets.get(pid)!, 'hex')).catch(() => {})));
    let warned = 0;
    while (pids.length > 0 && !stopping) {
      const checker = running().find((s) => s !== slot);
      if (!checker) {
        plog.warn({ event: 'FENCE_BLIND', dead_worker: slot.index, backend_pids: pids }, 'no live worker to check pg_stat_activity; waiting a fixed time after cancelling the dead worker\'s backends');
        await sleep(FENCE_BLIND_MS);
        break;
      }
      // A pid the server has already reused for a live worker's new backend is that worker's, not the dead one's.
      pids = pids.filter((pid) => !slots.some((s) => s !== slot && s.backends.has(pid)));
      if (pids.length === 0) break;
      try {
        pids = (await request(checker, { t: 'pgtp:live-pids', pids })) as number[];
      } catch (e) {
        plog.warn({ event: 'FENCE_CHECK_FAILED', dead_worker: slot.index, err: (e as Error).message }, 'pg_stat_activity check failed; retrying');
      }
      if (pids.length === 0) break;
      if (Date.now() - t0 > FENCE_LIMIT_MS) {
        plog.error({ event: 'FENCE_TIMEOUT', dead_worker: slot.index, backend_pids: pids }, `dead worker's backends still in pg_stat_activity after ${FENCE_LIMIT_MS / 1000} s; restarting it anyway (terminate them with pg_terminate_backend)`);
        break;
      }
      if (Date.now() - warned > 10_000) {
        warned = Date.now();
        plog.warn({ event: 'FENCE_WAIT', dead_worker: slot.index, backend_pids: pids }, "waiting for the dead worker's backends to end before reusing its pool share");
      }
      await sleep(50);
    }
    metrics.fenceWaits.observe((Date.now() - t0) / 1000);
  };

  const onExit = async (slot: Slot, w: Worker, code: number | null, signal: string | null): Promise<void> => {
    if (slot.worker !== w) return;
    slot.worker = null;
    slot.listening = false;
    metrics.workerUp.set({ worker: String(slot.index) }, 0);
    if (!stopping) broadcastWorkers();
    if (stopping) {
      if (slots.every((s) => !s.worker)) allExited();
      return;
    }
    const lived = Date.now() - slot.startedAt;
    slot.crashes = lived < STABLE_MS ? slot.crashes + 1 : 1;
    const backoff = slot.crashes <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 250 * 2 ** (slot.crashes - 2));
    plog.error({ event: 'WORKER_EXIT', dead_worker: slot.index, code, signal, lived_ms: lived, backends: slot.backends.size, restart_in_ms: backoff }, 'worker died; its clients are disconnected; restarting it');
    await fence(slot);
    metrics.restarts.inc({ worker: String(slot.index) });
    slot.restarts++;
    if (!stopping) slot.timer = setTimeout(() => fork(slot), backoff);
  };

  let allExited: () => void = () => {};
  const admin =
    config.admin.port !== 0 || process.env.PGTP_ADMIN_EPHEMERAL === '1'
      ? await startClusterAdmin(config.admin.host, config.admin.port, {
          metrics: async () => {
            const answers = await Promise.allSettled(running().map((s) => request(s, { t: 'pgtp:metrics' })));
            return metrics.render(answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value as client.MetricObjectWithValues<client.MetricValue<string>>[]] : [])));
          },
          health: async () => {
            const r = await Promise.all(slots.map((s) => (s.worker && s.listening ? request(s, { t: 'pgtp:ping' }).then(() => 'ok', (e: Error) => e.message) : Promise.resolve('restarting'))));
            // A worker being restarted is the primary's job, not a reason to kill the pod; a hung one is.
            return { ok: r.every((x) => x === 'ok' || x === 'restarting'), detail: r.map((x, i) => `worker ${i}: ${x}\n`).join('') };
          },
          ready: async () => {
            // Draining: 503 at once, so the load balancer stops sending before the workers close their listeners.
            if (stopping) return { ok: false, detail: 'draining: shutting down\n' };
            const r = await Promise.all(slots.map((s) => (s.worker && s.listening ? request(s, { t: 'pgtp:ready' }).then((ok) => (ok ? 'ready' : 'backend unreachable'), (e: Error) => e.message) : Promise.resolve('not running'))));
            return { ok: r.every((x) => x === 'ready'), detail: r.map((x, i) => `worker ${i}: ${x}\n`).join('') };
          },
        })
      : null;
  const adminPort = admin?.port ?? null;

  for (const slot of slots) fork(slot);

  await new Promise<void>((resolve) => {
    allExited = resolve;
    let signals = 0;
    const stop = (signal: string): void => {
      // A second signal stops at once, as in one process: every worker closes now (no grace), and the
      // primary exits 0 once they are gone. (With process.once the second SIGTERM hit the default action:
      // the primary died by the signal and left its workers draining unsupervised.)
      if (stopping) {
        if (++signals !== 2) return;
        plog.warn({ event: 'SHUTDOWN', signal, workers: running().length }, 'second signal: stopping every worker now');
        for (const s of slots) if (s.worker) command(s, { t: 'pgtp:shutdown', now: true });
        return;
      }
      signals = 1;
      stopping = true;
      plog.info({ event: 'SHUTDOWN', signal, workers: running().length }, 'draining every worker');
      for (const s of slots) {
        if (s.timer) clearTimeout(s.timer);
        if (s.worker) command(s, { t: 'pgtp:shutdown' });
      }
      if (slots.every((s) => !s.worker)) resolve();
      setTimeout(() => {
        for (const s of slots) s.worker?.kill('SIGKILL');
      }, drainTimeoutMs + DRAIN_MARGIN_MS).unref();
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGHUP', () => {
      plog.info({ event: 'RELOAD', signal: 'SIGHUP', workers: running().length }, 'reloading every worker');
      reloadPrimary();
      for (const s of slots) command(s, { t: 'pgtp:reload' });
    });
  });
  await admin?.close();
  return 0;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
