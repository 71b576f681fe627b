// The server's metrics in the Prometheus text exposition format (version 0.0.4): counters,
// gauges and histograms with labels, enough for `alexnet serve`'s /metrics without a
// dependency. Label values are escaped (\\, ", newline); histogram buckets are cumulative
// with le="+Inf", _sum and _count, as Prometheus expects.

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) pairs.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

abstract class Metric {
  protected readonly series = new Map<string, { labels: Labels }>();

  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'gauge' | 'histogram', readonly labelNames: readonly string[]) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`bad metric name '${name}'`);
  }

  // The series of one label set, in labelNames order (a missing label is '').
  protected key(labels: Labels): { id: string; labels: Labels } {
    for (const k of Object.keys(labels)) if (!this.labelNames.includes(k)) throw new Error(`${this.name}: unknown label '${k}'`);
    const ordered: Labels = {};
    for (const k of this.labelNames) ordered[k] = labels[k] ?? '';
    return { id: JSON.stringify(this.labelNames.map((k) => ordered[k])), labels: ordered };
  }

  render(): string {
    return [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.samples()].join('\n') + '\n';
  }

  protected abstract samples(): string[];
}

export class Counter extends Metric {
  protected override readonly series = new Map<string, { labels: Labels; value: number }>();

  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, 'counter', labelNames);
  }

  inc(labels: Labels = {}, by = 1): void {
    if (by < 0) throw new Error(`${this.name}: a counter only goes up`);
    const { id, labels: l } = this.key(labels);
    const s = this.series.get(id) ?? { labels: l, value: 0 };
    s.value += by;
    this.series.set(id, s);
  }

  get(labels: Labels = {}): number {
    return this.series.get(this.key(labels).id)?.value ?? 0;
  }

  protected samples(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  }
}

export class Gauge extends Metric {
  protected override readonly series = new Map<string, { labels: Labels; value: number }>();

  // collect: called at each render, e.g. to read the process's memory.
  constructor(name: string, help: string, labelNames: readonly string[] = [], private readonly collect?: (g: Gauge) => void) {
    super(name, help, 'gauge', labelNames);
  }

  set(labels: Labels, value: number): void {
    const { id, labels: l } = this.key(labels);
    this.series.set(id, { labels: l, value });
  }

  inc(labels: Labels = {}, by = 1): void {
    const { id, labels: l } = this.key(labels);
    const s = this.series.get(id) ?? { labels: l, value: 0 };
    s.value += by;
    this.series.set(id, s);
  }

  dec(labels: Labels = {}, by = 1): void {
    this.inc(labels, -by);
  }

  value(labels: Labels = {}): number | undefined {
    return this.series.get(this.key(labels).id)?.value;
  }

  // Forgets every series (an info gauge whose labels changed).
  reset(): void {
    this.series.clear();
  }

  protected samples(): string[] {
    this.collect?.(this);
    return [...this.series.values()].map((s) => `${this.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  }
}

export class Histogram extends Metric {
  protected override readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  readonly buckets: number[];

  constructor(name: string, help: string, buckets: number[], labelNames: readonly string[] = []) {
    super(name, help, 'histogram', labelNames);
    if (labelNames.includes('le')) throw new Error(`${name}: 'le' is reserved for buckets`);
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(labels: Labels, value: number): void {
    const { id, labels: l } = this.key(labels);
    let s = this.series.get(id);
    if (!s) {
      s = { labels: l, counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(id, s);
    }
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]++;
    s.sum += value;
    s.count++;
  }

  // Observations of one label set: count, sum (tests and logs).
  stats(labels: Labels = {}): { count: number; sum: number } {
    const s = this.series.get(this.key(labels).id);
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  protected samples(): string[] {
    const out: string[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += s.counts[i];
        out.push(`${this.name}_bucket${formatLabels(s.labels, ['le', formatValue(b)])} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${formatLabels(s.labels, ['le', '+Inf'])} ${s.count}`);
      out.push(`${this.name}_sum${formatLabels(s.labels)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${formatLabels(s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  register<M extends Metric>(metric: M): M {
    if (this.metrics.some((m) => m.name === metric.name)) throw new Error(`metric ${metric.name} registered twice`);
    this.metrics.push(metric);
    return metric;
  }

  render(): string {
    return this.metrics.map((m) => m.render()).join('');
  }
}

// The metrics of one `alexnet serve` process.
export function serveMetrics() {
  const registry = new Registry();
  const started = performance.timeOrigin / 1000;
  return {
    registry,
    requests: registry.register(new Counter('alexnet_serve_requests_total', 'HTTP requests answered, by route and status code.', ['route', 'code'])),
    latency: registry.register(new Histogram('alexnet_serve_request_duration_seconds', 'Time from a request\'s arrival to its answer, by route.',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], ['route'])),
    inflight: registry.register(new Gauge('alexnet_serve_inflight_requests', 'Requests being answered now.')),
    batchSize: registry.register(new Histogram('alexnet_serve_batch_size', 'Images per classification batch (one classifyImages call).',
      [1, 2, 4, 8, 16, 32, 64, 128, 256])),
    batchDuration: registry.register(new Histogram('alexnet_serve_batch_duration_seconds', 'Time one batch takes: decode, preprocess, forward.',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])),
    images: registry.register(new Counter('alexnet_serve_images_total', 'Images received for classification, by outcome (classified, or refused as unreadable).', ['outcome'])),
    modelInfo: registry.register(new Gauge('alexnet_serve_model_info', 'The checkpoint being served (value 1): its key (the model version), run, and where it came from (serving, latest, checkpoint).',
      ['model', 'version', 'run', 'from', 'dataset'])),
    ready: registry.register(new Gauge('alexnet_serve_ready', '1 when a model is loaded and requests are accepted, else 0.')),
    reloads: registry.register(new Counter('alexnet_serve_reloads_total', 'Reload checks, by result: changed (a new checkpoint swapped in), unchanged, failed (the old one kept serving).', ['result'])),
    startTime: registry.register(new Gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch in seconds.', [], (g) => g.set({}, started))),
    memory: registry.register(new Gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', [], (g) => g.set({}, process.memoryUsage.rss()))),
  };
}

export type ServeMetrics = ReturnType<typeof serveMetrics>;
