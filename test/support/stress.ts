// Shared by the isolation stress tests (one process and workers: 2): the per-transaction check query and a
// deterministic PRNG, so a failing run can be replayed with the same seed.

/** What a transaction sees: its tenant, search_path and schema, no foreign RLS rows, and no state left by others. */
export const ISOLATION_CHECK =
  "SELECT current_setting('app.current_tenant') AS t, current_setting('search_path') AS p, " +
  "(SELECT body FROM notes ORDER BY id LIMIT 1) AS note, (SELECT count(*)::int FROM orders WHERE tenant_id <> current_setting('app.current_tenant', true)) AS foreign_rows, " +
  // Session state other transactions leave behind (a SET, a temp table) must never be visible here.
  "current_setting('work_mem') AS wm, to_regclass('pg_temp.leak_probe') IS NULL AS clean";

/** A deterministic PRNG (LCG) in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Checks one ISOLATION_CHECK row against `tenant`; a difference is pushed onto `mismatches`, with where it was seen. */
export function isolationVerifier(mismatches: string[]): (tenant: string, row: Record<string, unknown>, where: string) => void {
  return (tenant, row, where) => {
    const ok = row.t === tenant && row.p === `"tenant_${tenant}", public` && row.note === `${tenant} note` && row.foreign_rows === 0 && row.wm === '4MB' && row.clean === true;
    if (!ok) mismatches.push(`${where}: expected ${tenant}, saw ${JSON.stringify(row)}`);
  };
}

/**
 * An explicit transaction with a savepoint and an error rolled back to it; returns the ISOLATION_CHECK row
 * seen inside, and ends with COMMIT or ROLLBACK (`commit`).
 */
export async function savepointTransaction(c: { query(sql: string): Promise<{ rows: Array<Record<string, unknown>> }> }, commit: boolean): Promise<Record<string, unknown>> {
  await c.query('BEGIN');
  await c.query('SAVEPOINT s');
  await c.query('SELECT 1/0').catch(() => {});
  await c.query('ROLLBACK TO SAVEPOINT s');
  const row = (await c.query(ISOLATION_CHECK)).rows[0];
  await c.query(commit ? 'COMMIT' : 'ROLLBACK');
  return row;
}
