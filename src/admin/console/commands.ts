// Runs one admin console command against the live proxy; returns the messages that answer it
// (a result set, or a CommandComplete tag). Errors are thrown as CommandError with their SQLSTATE.
import type { Logger } from 'pino';
import { noticeResponse } from '../../protocol/encode.js';
import { type AdminState, showClients, showConfig, showPools, showServers, showStats, showTenants, showWorkers } from '../views.js';
import { type Command, CommandError } from './parse.js';
import { commandComplete, resultSet } from './result-set.js';

export interface ConsoleDeps extends AdminState {
  /** Same as SIGHUP: re-reads the config file, TLS and JWT keys; rejects with the reason if the file is bad. */
  reload(): Promise<void>;
  log: Logger;
}

/** Most tenants SUSPEND TENANT may hold at once (the list lives in memory). */
const MAX_SUSPENDED = 100_000;
const PAUSE_POLL_MS = 20;

const SHOW = { pools: showPools, clients: showClients, servers: showServers, stats: showStats, config: showConfig, tenants: showTenants, workers: showWorkers };

export async function runCommand(cmd: Command, d: ConsoleDeps, alive: () => boolean): Promise<Buffer> {
  switch (cmd.kind) {
    case 'show':
      return resultSet(SHOW[cmd.what](d));
    case 'pause':
      return pause(d, alive);
    case 'resume':
      d.gate.resume();
      d.log.warn({ event: 'RESUMED' }, 'console RESUME: held transactions released');
      return commandComplete('RESUME');
    case 'reload':
      try {
        await d.reload();
      } catch (e) {
        throw new CommandError(`reload failed, previous settings kept: ${(e as Error).message}`, 'F0000', 'fix the config file and run RELOAD again');
      }
      return commandComplete('RELOAD');
    case 'kill_client': {
      const c = d.registry.clients.get(cmd.id);
      if (!c) throw new CommandError(`no client with id ${cmd.id}`, '42704', 'see the id column of SHOW CLIENTS');
      d.log.warn({ event: 'CLIENT_KILLED', client_pid: c.id, tenant: c.tenant ?? 'none', user: c.user }, 'console KILL CLIENT');
      c.kill();
      return commandComplete('KILL');
    }
    case 'suspend_tenant': {
      if (!d.config().tenant.id_pattern.test(cmd.tenant)) {
        throw new CommandError(`"${cmd.tenant.slice(0, 64)}" is not a tenant id (tenant.id_pattern)`, '22023', 'see the tenant column of SHOW TENANTS');
      }
      if (d.registry.suspended.size >= MAX_SUSPENDED && !d.registry.suspended.has(cmd.tenant)) {
        throw new CommandError(`at most ${MAX_SUSPENDED} tenants can be suspended from the console`, '54000', 'use tenant.deny in the config file for long lists');
      }
      d.registry.suspended.add(cmd.tenant);
      d.log.warn({ event: 'TENANT_SUSPENDED', tenant: cmd.tenant, source: 'console' }, 'console SUSPEND TENANT: its logins and new transactions are refused');
      return commandComplete('SUSPEND');
    }
    case 'unsuspend_tenant': {
      const was = d.registry.suspended.delete(cmd.tenant);
      d.log.warn({ event: 'TENANT_UNSUSPENDED', tenant: cmd.tenant, source: 'console' }, 'console UNSUSPEND TENANT');
      const out = [commandComplete('UNSUSPEND')];
      if (d.config().tenant.deny.includes(cmd.tenant)) {
        out.unshift(noticeResponse({ code: '01000', message: `tenant "${cmd.tenant}" is still suspended by tenant.deny in the config file` }));
      } else if (!was) {
        out.unshift(noticeResponse({ code: '01000', message: `tenant "${cmd.tenant}" was not suspended` }));
      }
      return Buffer.concat(out);
    }
  }
}

/**
 * Holds new transactions, then answers once the running ones have finished (the database is then free of
 * this proxy's work, e.g. for a failover). In session mode clients keep their backends, so it answers at once.
 */
async function pause(d: ConsoleDeps, alive: () => boolean): Promise<Buffer> {
  d.gate.pause();
  d.log.warn({ event: 'PAUSED' }, 'console PAUSE: new transactions are held until RESUME');
  if (d.config().pool.mode === 'session') {
    return Buffer.concat([
      noticeResponse({ code: '01000', message: 'session mode: connected clients keep their backends; only transactions that need a new backend are held' }),
      commandComplete('PAUSE'),
    ]);
  }
  const running = (): number => {
    let n = 0;
    for (const c of d.registry.clients.values()) if (c.server) n++;
    return n;
  };
  while (running() > 0 && alive() && d.gate.isPaused) await new Promise((r) => setTimeout(r, PAUSE_POLL_MS));
  return commandComplete('PAUSE');
}
