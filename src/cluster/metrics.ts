// The primary's /metrics: every worker's registry summed (prom-client's AggregatorRegistry.aggregate), plus
// the primary's own per-worker gauges (up, restarts) so an operator sees which worker is which.
import client, { AggregatorRegistry, type Registry } from 'prom-client';

export class ClusterMetrics {
  readonly registry = new client.Registry();
  readonly workersConfigured = new client.Gauge({ name: 'pgtp_workers', help: 'Worker processes configured (workers).', registers: [this.registry] });
  readonly workerUp = new client.Gauge({ name: 'pgtp_worker_up', help: 'Whether the worker is running and listening (1) or down or restarting (0).', labelNames: ['worker'], registers: [this.registry] });
  readonly restarts = new client.Counter({ name: 'pgtp_worker_restarts_total', help: 'Worker processes restarted after they died.', labelNames: ['worker'], registers: [this.registry] });
  readonly fenceWaits = new client.Histogram({
    name: 'pgtp_worker_fence_seconds',
    help: "Time a dead worker's budget share waited for its backends to leave pg_stat_activity before the replacement started.",
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60],
    registers: [this.registry],
  });

  /** The sum over the workers that answered, merged with the primary's own metrics. */
  async render(perWorker: client.MetricObjectWithValues<client.MetricValue<string>>[][]): Promise<{ body: string; contentType: string }> {
    recomputeRatios(perWorker);
    const summed: Registry = AggregatorRegistry.aggregate(perWorker);
    const merged = client.Registry.merge([summed, this.registry]);
    return { body: await merged.metrics(), contentType: merged.contentType };
  }
}

type MetricJson = client.MetricObjectWithValues<client.MetricValue<string>>;

/**
 * Ratio gauges and the sums they are ratios of: a ratio cannot be summed over workers (two workers each at
 * 0.5 are a proxy at 0.5, not 1.0, and the shipped alerts fire at 0.8). The primary computes each from the
 * summed numerator and denominator instead.
 */
const RATIOS: Array<[ratio: string, numerator: string, denominator: string]> = [
  ['pgtp_pool_utilisation', 'pgtp_pool_held', 'pgtp_pool_cap'],
  ['pgtp_pool_overflow_utilisation', 'pgtp_pool_overflow_open', 'pgtp_pool_overflow_limit'],
  ['pgtp_pool_utilization_ratio', 'pgtp_pool_busy', 'pgtp_pool_size'],
];

/** Replaces every worker's ratio values with the whole proxy's (per `pool` label), aggregated as 'first'. */
function recomputeRatios(perWorker: MetricJson[][]): void {
  const sumBy = (name: string): Map<string, number> => {
    const out = new Map<string, number>();
    for (const metrics of perWorker) {
      for (const m of metrics) {
        if (m.name !== name) continue;
        for (const v of m.values) {
          const pool = String(v.labels.pool ?? '');
          out.set(pool, (out.get(pool) ?? 0) + v.value);
        }
      }
    }
    return out;
  };
  for (const [ratio, numerator, denominator] of RATIOS) {
    const num = sumBy(numerator);
    const den = sumBy(denominator);
    const values = [...den].map(([pool, d]) => ({ labels: { pool }, value: d === 0 ? 0 : (num.get(pool) ?? 0) / d }));
    for (const metrics of perWorker) {
      for (const m of metrics) {
        if (m.name !== ratio) continue;
        m.values = values;
        m.aggregator = 'first';
      }
    }
  }
}
