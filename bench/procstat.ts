// CPU time of processes read from /proc (Linux): what a benchmark divides by transactions to get CPU per
// transaction for each process (proxy, its workers, PgBouncer, PostgreSQL), independent of wall-clock noise.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat utime/stime (USER_HZ; 100 on every Linux build we target). */
const HZ = 100;

interface Stat {
  comm: string;
  ppid: number;
  /** utime + stime in ticks. */
  ticks: number;
}

function readStat(pid: string): Stat | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    const f = s.slice(close + 2).split(' ');
    return { comm: s.slice(s.indexOf('(') + 1, close), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null; // exited while we looked
  }
}

/** Ticks of every live process, by pid. */
export function snapshot(): Map<number, Stat> {
  const out = new Map<number, Stat>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const st = readStat(pid);
    if (st) out.set(Number(pid), st);
  }
  return out;
}

/** The pid and all its descendants in a snapshot (a proxy's workers, say). */
export function family(snap: Map<number, Stat>, root: number): Set<number> {
  const out = new Set<number>([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, st] of snap) {
      if (!out.has(pid) && out.has(st.ppid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return out;
}

/**
 * CPU seconds used between two snapshots by the processes `pick` selects in the later one. A process that
 * started in between counts from zero; one that exited in between is lost (so direct pgbench backends,
 * which exit with pgbench, cannot be measured this way).
 */
export function cpuSeconds(before: Map<number, Stat>, after: Map<number, Stat>, pick: (pid: number, st: Stat) => boolean): number {
  let ticks = 0;
  for (const [pid, st] of after) {
    if (!pick(pid, st)) continue;
    const b = before.get(pid);
    ticks += st.ticks - (b && b.comm === st.comm ? b.ticks : 0);
  }
  return ticks / HZ;
}
