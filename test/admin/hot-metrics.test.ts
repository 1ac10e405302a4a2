// The hot-path counters and histograms must expose exactly what prom-client's own would, and aggregate
// across workers like them.
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotHistogram } from '../../src/admin/hot-metrics.js';

const BUCKETS = [0.0005, 0.001, 0.01, 0.1, 1];
const SAMPLES = [0.0001, 0.0005, 0.0007, 0.003, 0.2, 0.9, 5, 0.05];

describe('hot metrics', () => {
  it('a histogram exposes the same text as a prom-client histogram given the same observations', async () => {
    const ours = new client.Registry();
    const theirs = new client.Registry();
    const h = new HotHistogram(ours, 'x_seconds', 'help text', BUCKETS, 'outcome', ['a', 'b']);
    const p = new client.Histogram({ name: 'x_seconds', help: 'help text', buckets: BUCKETS, labelNames: ['outcome'], registers: [theirs] });
    for (const [i, s] of SAMPLES.entries()) {
      const o = i % 3 === 0 ? 'b' : 'a';
      h.observe(s, o);
      p.observe({ outcome: o }, s);
    }
    // The same lines; series may come in another order (prom-client: first observed first).
    const lines = async (r: client.Registry) => (await r.metrics()).split('\n').sort();
    expect(await lines(ours)).toEqual(await lines(theirs));
    const plain = new HotHistogram(new client.Registry(), 'y_seconds', 'h', BUCKETS);
    plain.observe(0.002);
    const text = await (await plain.get()).values.find((v) => v.metricName === 'y_seconds_bucket' && v.labels.le === 0.01)!.value;
    expect(text).toBe(1);
  });

  it('a counter exposes every known label value (0 until counted) and refuses an unknown one', async () => {
    const reg = new client.Registry();
    const c = new HotCounter(reg, 'r_total', 'resets', 'mode', ['eager', 'pipelined']);
    c.inc('pipelined');
    c.inc('pipelined', 2);
    expect(await reg.metrics()).toBe('# HELP r_total resets\n# TYPE r_total counter\nr_total{mode="eager"} 0\nr_total{mode="pipelined"} 3\n');
    expect(() => c.inc('other' as 'eager')).toThrow(/unknown mode value "other"/);
    const u = new HotCounter(reg, 'u_total', 'plain');
    u.inc();
    expect(await reg.getSingleMetricAsString('u_total')).toBe('# HELP u_total plain\n# TYPE u_total counter\nu_total 1');
    reg.resetMetrics();
    expect(await reg.getSingleMetricAsString('u_total')).toBe('# HELP u_total plain\n# TYPE u_total counter\nu_total 0');
  });

  it('aggregates across workers like prom-client metrics (summed per series)', async () => {
    const workers = [new client.Registry(), new client.Registry()];
    for (const [i, reg] of workers.entries()) {
      const h = new HotHistogram(reg, 'q_seconds', 'q', BUCKETS);
      const c = new HotCounter(reg, 'n_total', 'n');
      for (let k = 0; k <= i; k++) {
        h.observe(0.0006);
        c.inc();
      }
    }
    const merged = client.AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
    const text = await merged.metrics();
    expect(text).toContain('n_total 3');
    expect(text).toContain('q_seconds_bucket{le="0.001"} 3');
    expect(text).toContain('q_seconds_count 3');
  });
});
