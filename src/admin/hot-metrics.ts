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

/**
 * One series per known label value (or a single series when unlabelled), registered with prom-client's
 * registry; an unknown label value is a programming error, reported at once.
 */
abstract class HotMetric<V extends string, S> {
  readonly aggregator = 'sum';
  protected readonly series: Map<V | '', S> = new Map();

  constructor(
    registry: client.Registry,
    readonly name: string,
    readonly help: string,
    protected readonly label: string | null,
    values: readonly V[],
    make: () => S,
  ) {
    if (label === null) this.series.set('', make());
    for (const v of values) this.series.set(v, make());
    registry.registerMetric(this as unknown as client.Metric);
  }

  protected at(value: V | undefined): S {
    const s = this.series.get(value ?? '');
    if (s === undefined) throw new Error(`${this.name}: unknown ${this.label ?? 'label'} value "${String(value)}"`);
    return s;
  }

  protected labelsOf(value: V | ''): Record<string, string> {
    return this.label === null ? {} : { [this.label]: value };
  }
}

/** A counter with at most one label whose values are all known when it is made. */
export class HotCounter<V extends string = never> extends HotMetric<V, { n: number }> {
  readonly type = 'counter';

  /**
   * @param label the label's name, or null for an unlabelled counter
   * @param values every value the label may take (each exported from the start, as 0)
   */
  constructor(registry: client.Registry, name: string, help: string, label: string | null = null, values: readonly V[] = []) {
    super(registry, name, help, label, values, () => ({ n: 0 }));
  }

  /** Adds 1 (or `n`) to the counter for `value` (unlabelled: no argument). */
  inc(value?: V, n = 1): void {
    this.at(value).n += n;
  }

  async get(): Promise<MetricExport> {
    const values = [...this.series].map(([k, c]) => ({ value: c.n, labels: this.labelsOf(k) }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const c of this.series.values()) c.n = 0;
  }
}

/** Bucket counts, sum and count of one series. */
class Buckets {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(n: number) {
    this.counts = new Float64Array(n);
  }
}

/** A histogram with fixed buckets and at most one label whose values are all known when it is made. */
export class HotHistogram<V extends string = never> extends HotMetric<V, Buckets> {
  readonly type = 'histogram';

  constructor(registry: client.Registry, name: string, help: string, private readonly bounds: readonly number[], label: string | null = null, values: readonly V[] = []) {
    super(registry, name, help, label, values, () => new Buckets(bounds.length));
  }

  /** Records `seconds` (in the series of `value`, when labelled). */
  observe(seconds: number, value?: V): void {
    const s = this.at(value);
    s.sum += seconds;
    s.count++;
    // Buckets are few (≤ 15): a linear scan from the low end, where most observations land.
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]) {
        s.counts[i]++;
        return;
      }
    }
  }

  async get(): Promise<MetricExport> {
    const values: MetricExport['values'] = [];
    for (const [k, s] of this.series) {
      const labels = this.labelsOf(k);
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.counts[i];
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
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
