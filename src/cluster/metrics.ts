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
    const summed: Registry = AggregatorRegistry.aggregate(perWorker);
    const merged = client.Registry.merge([summed, this.registry]);
    return { body: await merged.metrics(), contentType: merged.contentType };
  }
}
