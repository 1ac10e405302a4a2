// The console commands that change state (PAUSE, RESUME, KILL CLIENT, SUSPEND/UNSUSPEND TENANT), as actions
// one proxy process applies to itself. With workers (src/cluster) a console connection lands on one worker,
// so the console hands the action to the primary, which has every worker apply it: a PAUSE for a failover
// holds the whole proxy, not one worker's share.
import type { ConsoleDeps } from './commands.js';

export type AdminAction =
  | { op: 'pause' }
  | { op: 'resume' }
  | { op: 'kill'; id: number }
  | { op: 'suspend'; tenant: string }
  | { op: 'unsuspend'; tenant: string }
  /** RELOAD: with workers every worker re-reads the file, as SIGHUP does (one worker alone would split the config). */
  | { op: 'reload' };

/** What one process did with an action. */
export interface ActionResult {
  /** kill: this process had the client; unsuspend: the tenant was suspended here. */
  found: boolean;
}

/** Applies the action to everything the process runs; hands it to every worker when there are several. */
export type ApplyAction = (action: AdminAction) => Promise<ActionResult[]>;

const PAUSE_POLL_MS = 20;

/** Running transactions (clients holding a backend) in this process. */
function running(d: ConsoleDeps): number {
  let n = 0;
  for (const c of d.registry.clients.values()) if (c.server) n++;
  return n;
}

/**
 * Applies `action` to this process only. PAUSE resolves once this process's running transactions have
 * finished (or RESUME came, or `alive` turned false: the console client left).
 */
export async function applyLocally(action: AdminAction, d: ConsoleDeps, alive: () => boolean = () => true): Promise<ActionResult> {
  switch (action.op) {
    case 'pause':
      d.gate.pause();
      d.log.warn({ event: 'PAUSED' }, 'console PAUSE: new transactions are held until RESUME');
      if (d.config().pool.mode !== 'session') {
        while (running(d) > 0 && alive() && d.gate.isPaused) await new Promise((r) => setTimeout(r, PAUSE_POLL_MS));
      }
      return { found: true };
    case 'resume':
      d.gate.resume();
      d.log.warn({ event: 'RESUMED' }, 'console RESUME: held transactions released');
      return { found: true };
    case 'kill': {
      const c = d.registry.clients.get(action.id);
      if (!c) return { found: false };
      d.log.warn({ event: 'CLIENT_KILLED', client_pid: c.id, tenant: c.tenant ?? 'none', user: c.user }, 'console KILL CLIENT');
      c.kill();
      return { found: true };
    }
    case 'suspend':
      d.registry.suspended.add(action.tenant);
      d.log.warn({ event: 'TENANT_SUSPENDED', tenant: action.tenant, source: 'console' }, 'console SUSPEND TENANT: its logins and new transactions are refused');
      return { found: true };
    case 'reload':
      await d.reload();
      return { found: true };
    case 'unsuspend': {
      const was = d.registry.suspended.delete(action.tenant);
      d.log.warn({ event: 'TENANT_UNSUSPENDED', tenant: action.tenant, source: 'console' }, 'console UNSUSPEND TENANT');
      return { found: was };
    }
  }
}
