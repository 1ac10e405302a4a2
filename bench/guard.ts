// `npm run bench:guard`: what the statement guard costs per query: the pre-check alone, a cached verdict,
// and a full parse (short and long statements). A benchmark to read, not a test that can fail on timing.
import { performance } from 'node:perf_hooks';
import { needsParse, StatementGuard } from '../src/guard/statement-guard.js';

function time(label: string, n: number, fn: (i: number) => void): void {
  for (let i = 0; i < Math.min(n, 1000); i++) fn(i); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  const us = ((performance.now() - t0) * 1000) / n;
  console.log(`| ${label} | ${us.toFixed(2)} µs |`);
}

const g = await StatementGuard.create({ tenantSetting: 'app.current_tenant', cacheEntries: 10 });
const plain = 'SELECT id, item, created_at FROM orders WHERE id = $1 AND tenant_id = current_setting($2)';
const long = `SELECT ${Array.from({ length: 60 }, (_, i) => `c${i}`).join(', ')} FROM orders o JOIN notes n ON n.id = o.id WHERE o.item LIKE 'set%' ORDER BY 1`;
console.log('| path | cost per query |\n|---|---|');
time('pre-check only (ordinary query, no parse)', 1_000_000, () => needsParse(plain));
time('guard.check, ordinary query (pre-check decides)', 1_000_000, () => g.check(plain));
time('guard.check, cached verdict (SET work_mem)', 1_000_000, () => g.check("SET work_mem = '8MB'"));
time(`guard.check, full parse, short statement`, 20_000, (i) => g.check(`SET work_mem = '${i}kB'`));
time(`guard.check, full parse, ${long.length}-byte statement`, 5_000, (i) => g.check(`${long} -- ${i}`));
