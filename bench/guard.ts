// `npm run bench:guard`: what the statement guard costs per query: the pre-check alone, a cached verdict,
// a full parse (short and long statements), and pgbench -N's statements with fresh literals each time,
// first time (full parse) and repeated (shape cache). A benchmark to read, not a test that can fail on timing.
import { performance } from 'node:perf_hooks';
import { needsParse, StatementGuard } from '../src/guard/statement-guard.js';

/** Prints the best of three rounds (the machine is shared: the minimum is the least disturbed figure). */
function time(label: string, n: number, fn: (i: number, round: number) => void, warm = true): void {
  if (warm) for (let i = 0; i < Math.min(n, 1000); i++) fn(i, 0);
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn(i, round);
    best = Math.min(best, ((performance.now() - t0) * 1000) / n);
  }
  console.log(`| ${label} | ${best.toFixed(2)} µs |`);
}

/** pgbench's TPC-B-like statements with fresh literals for call i; -N (simple-update) sends the 1st, 2nd and 5th. */
function pgbenchN(i: number): string[] {
  const aid = 1 + ((i * 7919) % 100_000);
  const delta = ((i * 104_729) % 10_001) - 5000;
  return [
    `UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};`,
    `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
    `UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${1 + (i % 10)};`,
    `UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = 1;`,
    `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${1 + (i % 10)}, 1, ${aid}, ${delta}, CURRENT_TIMESTAMP);`,
  ];
}

const g = await StatementGuard.create({ tenantSetting: 'app.current_tenant', cacheEntries: 10 });
const plain = 'SELECT id, item, created_at FROM orders WHERE id = $1 AND tenant_id = current_setting($2)';
const long = `SELECT ${Array.from({ length: 60 }, (_, i) => `c${i}`).join(', ')} FROM orders o JOIN notes n ON n.id = o.id WHERE o.item LIKE 'set%' ORDER BY 1`;
console.log('| path | cost per query |\n|---|---|');
time('pre-check only (ordinary query, no parse)', 1_000_000, () => needsParse(plain));
time('guard.check, ordinary query (pre-check decides)', 1_000_000, () => g.check(plain));
time('guard.check, cached verdict (SET work_mem)', 1_000_000, () => g.check("SET work_mem = '8MB'"));
time(`guard.check, full parse, short statement`, 20_000, (i) => g.check(`SET work_mem = '${i}kB'`));
// A fresh alias each time: a new shape, so a full parse (a fresh comment or literal would hit the shape cache).
time(`guard.check, full parse, ${long.length}-byte statement`, 5_000, (i, round) => g.check(long.replace('SELECT ', `SELECT c0 AS x${round}_${i}, `)));

// pgbench's statements (-N's three, and the TPC-B-like script's two extra UPDATEs), statement by statement,
// with texts made up front (fresh literals for every call): a fresh guard
// per call for the first time, then one guard over all calls (the shape cache answers).
const N = 50_000;
const texts = Array.from({ length: N }, (_, i) => pgbenchN(i));
const names = ['UPDATE pgbench_accounts', 'SELECT abalance', 'UPDATE pgbench_tellers', 'UPDATE pgbench_branches', 'INSERT INTO pgbench_history'];
for (let s = 0; s < names.length; s++) {
  const how = needsParse(texts[0][s]) ? 'full parse' : 'pre-check, no parse';
  const fresh = await Promise.all(Array.from({ length: 3 * 2000 }, () => StatementGuard.create({ tenantSetting: 'app.current_tenant' })));
  time(`${names[s]}, first time (${how})`, 2000, (i, round) => fresh[round * 2000 + i].check(texts[i][s]), false);
  const shared = await StatementGuard.create({ tenantSetting: 'app.current_tenant' });
  time(`${names[s]}, repeated, fresh literals`, N, (i) => shared.check(texts[i][s]));
}
const all = await StatementGuard.create({ tenantSetting: 'app.current_tenant' });
time('TPC-B-like transaction (all 5 statements; -N sends 3), repeated, fresh literals', N, (i) => {
  for (const sql of texts[i]) all.check(sql);
});
console.log(`\nguard counters over the last run: ${JSON.stringify(all.stats)}`);
