// Counters and histograms for the per-transaction hot path. prom-client hashes the label object on every
// inc()/observe(); at several updates per transaction that showed in the proxy's CPU profile. These keep
// plain numbers per label value (values known up front, so no hashing) and hand them to prom-client's
// registry at scrape time through its metric interface (name, help, type, aggregator, get(), reset()), so
// the exposition format and the workers' aggregation are prom-client's own.
import type client from 'prom-client';

/** What prom-client's registry reads from a metric at scrape time (its own metrics return the same shape). */
export interface MetricExport {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
}

/** A counter with at most one label whose values are all known when it is made. */
export class HotCounter<V extends string = never> {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly counts: Map<V | '', number> = new Map();

  /**
   * @param label the label's name, or null for an unlabelled counter
   * @param values every value the label may take (each exported from the start, as 0)
   */
  constructor(
    registry: client.Registry,
    readonly name: string,
    readonly help: string,
    private readonly label: string | null = null,
    values: readonly V[] = [],
  ) {
    if (label === null) this.counts.set('', 0);
    for (const v of values) this.counts.set(v, 0);
    registry.registerMetric(this as unknown as client.Metric);
  }

  /** Adds 1 (or `n`) to the counter for `value` (unlabelled: no argument). */
  inc(value?: V, n = 1): void {
    const k = value ?? '';
    const c = this.counts.get(k);
    if (c === undefined) throw new Error(`${this.name}: unknown ${this.label ?? 'label'} value "${String(value)}"`);
    this.counts.set(k, c + n);
  }

  async get(): Promise<MetricExport> {
    const values = [...this.counts].map(([k, value]) => ({ value, labels: this.label === null ? {} : { [this.label]: k } }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const k of this.counts.keys()) this.counts.set(k, 0);
  }
}

/** Bucket counts, sum and count of one series. */
class Series {
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;
  constructor(n: number) {
    this.buckets = new Float64Array(n);
  }
}

/** A histogram with fixed buckets and at most one label whose values are all known when it is made. */
export class HotHistogram<V extends string = never> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series: Map<V | '', Series> = new Map();

  constructor(
    registry: client.Registry,
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    private readonly label: string | null = null,
    values: readonly V[] = [],
  ) {
    if (label === null) this.series.set('', new Series(bounds.length));
    for (const v of values) this.series.set(v, new Series(bounds.length));
    registry.registerMetric(this as unknown as client.Metric);
  }

  /** Records `seconds` (in the series of `value`, when labelled). */
  observe(seconds: number, value?: V): void {
    const s = this.series.get(value ?? '');
    if (!s) throw new Error(`${this.name}: unknown ${this.label ?? 'label'} value "${String(value)}"`);
    s.sum += seconds;
    s.count++;
    // Buckets are few (≤ 15): a linear scan from the low end, where most observations land.
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]) {
        s.buckets[i]++;
        return;
      }
    }
  }

  async get(): Promise<MetricExport> {
    const values: MetricExport['values'] = [];
    for (const [k, s] of this.series) {
      const labels = this.label === null ? {} : { [this.label]: k };
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.buckets[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { le: this.bounds[i], ...labels }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...labels }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const s of this.series.values()) {
      s.buckets.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
