// Runs one admin console command against the live proxy; returns the messages that answer it
// (a result set, or a CommandComplete tag). Errors are thrown as CommandError with their SQLSTATE.
import type { Logger } from 'pino';
import { noticeResponse } from '../../protocol/encode.js';
import { type AdminState, showClients, showConfig, showPools, showServers, showStats, showTenants, showWorkers } from '../views.js';
import { type ActionResult, type AdminAction, type ApplyAction, applyLocally } from './actions.js';
import { type Command, CommandError } from './parse.js';
import { commandComplete, resultSet } from './result-set.js';

export interface ConsoleDeps extends AdminState {
  /** Same as SIGHUP: re-reads the config file, TLS and JWT keys; rejects with the reason if the file is bad. */
  reload(): Promise<void>;
  log: Logger;
  /** With workers: applies a state-changing command on every worker (through the primary). */
  cluster?: ApplyAction;
}

/** Most tenants SUSPEND TENANT may hold at once (the list lives in memory). */
const MAX_SUSPENDED = 100_000;

const SHOW = { pools: showPools, clients: showClients, servers: showServers, stats: showStats, config: showConfig, tenants: showTenants, workers: showWorkers };

export async function runCommand(cmd: Command, d: ConsoleDeps, alive: () => boolean): Promise<Buffer> {
  switch (cmd.kind) {
    case 'show':
      return resultSet(SHOW[cmd.what](d));
    case 'pause': {
      await apply(d, { op: 'pause' }, alive);
      if (d.config().pool.mode === 'session') {
        return Buffer.concat([
          noticeResponse({ code: '01000', message: 'session mode: connected clients keep their backends; only transactions that need a new backend are held' }),
          commandComplete('PAUSE'),
        ]);
      }
      return commandComplete('PAUSE');
    }
    case 'resume':
      await apply(d, { op: 'resume' }, alive);
      return commandComplete('RESUME');
    case 'reload':
      try {
        await apply(d, { op: 'reload' }, alive);
      } catch (e) {
        throw new CommandError(`reload failed, previous settings kept: ${(e as Error).message}`, 'F0000', 'fix the config file and run RELOAD again');
      }
      return commandComplete('RELOAD');
    case 'kill_client': {
      const results = await apply(d, { op: 'kill', id: cmd.id }, alive);
      if (!results.some((r) => r.found)) throw new CommandError(`no client with id ${cmd.id}`, '42704', 'see the id column of SHOW CLIENTS');
      return commandComplete('KILL');
    }
    case 'suspend_tenant': {
      if (!d.config().tenant.id_pattern.test(cmd.tenant)) {
        throw new CommandError(`"${cmd.tenant.slice(0, 64)}" is not a tenant id (tenant.id_pattern)`, '22023', 'see the tenant column of SHOW TENANTS');
      }
      if (d.registry.suspended.size >= MAX_SUSPENDED && !d.registry.suspended.has(cmd.tenant)) {
        throw new CommandError(`at most ${MAX_SUSPENDED} tenants can be suspended from the console`, '54000', 'use tenant.deny in the config file for long lists');
      }
      await apply(d, { op: 'suspend', tenant: cmd.tenant }, alive);
      return commandComplete('SUSPEND');
    }
    case 'unsuspend_tenant': {
      const results = await apply(d, { op: 'unsuspend', tenant: cmd.tenant }, alive);
      const out = [commandComplete('UNSUSPEND')];
      if (d.config().tenant.deny.includes(cmd.tenant)) {
        out.unshift(noticeResponse({ code: '01000', message: `tenant "${cmd.tenant}" is still suspended by tenant.deny in the config file` }));
      } else if (!results.some((r) => r.found)) {
        out.unshift(noticeResponse({ code: '01000', message: `tenant "${cmd.tenant}" was not suspended` }));
      }
      return Buffer.concat(out);
    }
  }
}

/** This process alone, or (with workers) every worker through the primary. */
function apply(d: ConsoleDeps, action: AdminAction, alive: () => boolean): Promise<ActionResult[]> {
  return d.cluster ? d.cluster(action) : applyLocally(action, d, alive).then((r) => [r]);
}

