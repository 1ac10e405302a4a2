// The doctor's connection-budget check: replicas × pool.size plus a reserve must fit in what the server
// lets ordinary roles have (max_connections − superuser_reserved_connections − reserved_connections), and
// within the backend role's and database's own CONNECTION LIMIT.
import type { ProxyConfig } from '../config/types.js';
import { backendClient, type Finding } from './doctor.js';

export interface BudgetOptions {
  /** Proxy processes sharing this database budget: replicas, plus surge pods during a rollout. */
  replicas: number;
  /** Connections kept for everything else (migrations, psql, other services). */
  reserve: number;
}

export const DEFAULT_RESERVE = 5;

/** Reads --replicas N and --reserve N from doctor's arguments; returns the rest untouched. */
export function budgetArgs(args: string[]): { opts: BudgetOptions; rest: string[] } | { error: string } {
  const opts: BudgetOptions = { replicas: 1, reserve: DEFAULT_RESERVE };
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a !== '--replicas' && a !== '--reserve') {
      rest.push(a);
      continue;
    }
    const v = Number(args[++i]);
    if (!Number.isInteger(v) || v < (a === '--replicas' ? 1 : 0) || v > 100_000) return { error: `${a} needs a whole number${a === '--replicas' ? ' of at least 1' : ''}, got ${JSON.stringify(args[i] ?? '')}` };
    if (a === '--replicas') opts.replicas = v;
    else opts.reserve = v;
  }
  return { opts, rest };
}

export async function budgetFindings(cfg: ProxyConfig, opts: BudgetOptions): Promise<Finding[]> {
  const b = cfg.backend;
  const c = await backendClient(cfg);
  try {
    const r = (
      await c.query(
        `SELECT current_setting('max_connections')::int AS max, current_setting('superuser_reserved_connections')::int AS su,
                coalesce(current_setting('reserved_connections', true), '0')::int AS reserved,
                (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user) AS role_limit,
                (SELECT datconnlimit FROM pg_database WHERE datname = current_database()) AS db_limit`,
      )
    ).rows[0] as { max: number; su: number; reserved: number; role_limit: number; db_limit: number };
    const proxies = opts.replicas * cfg.pool.size;
    const need = proxies + opts.reserve;
    const usable = r.max - r.su - r.reserved;
    const sum = `${opts.replicas} replica(s) × pool.size ${cfg.pool.size} = ${proxies}, + reserve ${opts.reserve} = ${need}`;
    const out: Finding[] = [];
    if (need > usable) {
      out.push({
        level: 'critical',
        check: 'connection_budget',
        message: `${sum} exceeds max_connections ${r.max} − superuser_reserved_connections ${r.su}${r.reserved ? ` − reserved_connections ${r.reserved}` : ''} = ${usable}: under load clients get "too many clients already"`,
        fix: `lower pool.size to ${Math.max(0, Math.floor((usable - opts.reserve) / opts.replicas))} or less (or set the Helm value pool.totalBudget to ${Math.max(0, usable - opts.reserve)}), or raise max_connections`,
      });
    } else {
      out.push({ level: 'ok', check: 'connection_budget', message: `${sum} fits in ${usable} connections (max_connections − reserved slots)` });
    }
    for (const [what, limit] of [
      [`role ${b.user} CONNECTION LIMIT`, r.role_limit],
      [`database ${b.database} CONNECTION LIMIT`, r.db_limit],
    ] as const) {
      if (limit >= 0 && proxies > limit) {
        out.push({ level: 'critical', check: 'connection_budget', subject: what, message: `${opts.replicas} × ${cfg.pool.size} = ${proxies} backend connections exceed the ${what} of ${limit}`, fix: 'lower pool.size or raise the limit' });
      }
    }
    return out;
  } finally {
    await c.end();
  }
}
