// The metrics of one `alexnet serve` server (prom-client, a registry of its own, so servers
// in one process do not share series): requests by route and status code, a latency
// histogram, batch sizes and durations, images by outcome, the queue, the checkpoint being
// served, reloads; and, unless turned off, Node's default process metrics
// (process_resident_memory_bytes, process_start_time_seconds, nodejs_eventloop_lag_seconds...).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface ServeMetricsOptions {
  defaultMetrics?: boolean;    // Node's process metrics (default true)
  queued?: () => number;       // images waiting for a batch, read at each scrape
}

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function serveMetrics(options: ServeMetricsOptions = {}) {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const queued = options.queued;
  return {
    registry,
    requests: new Counter({ name: 'alexnet_serve_requests_total', help: 'HTTP requests answered, by route and status code (408 also: a request that never arrived whole, by its timeout or its client going; 499: its client went before the answer).', labelNames: ['route', 'code'] as const, registers }),
    latency: new Histogram({ name: 'alexnet_serve_request_duration_seconds', help: 'Time from a request\'s arrival to its answer, by route.', labelNames: ['route'] as const, buckets: SECONDS, registers }),
    inflight: new Gauge({ name: 'alexnet_serve_inflight_requests', help: 'Requests being answered now.', registers }),
    queue: new Gauge({
      name: 'alexnet_serve_queued_images', help: 'Images waiting for a batch (requests beyond --max-queue are refused with 503).', registers,
      collect() { if (queued) this.set(queued()); },
    }),
    batchSize: new Histogram({ name: 'alexnet_serve_batch_size', help: 'Images per batch (one decode, crop and forward pass).', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers }),
    batchDuration: new Histogram({ name: 'alexnet_serve_batch_duration_seconds', help: 'Time one batch takes: decode, preprocess, forward.', buckets: SECONDS, registers }),
    images: new Counter({ name: 'alexnet_serve_images_total', help: 'Images received for classification, by outcome (classified, or refused as unreadable).', labelNames: ['outcome'] as const, registers }),
    modelInfo: new Gauge({
      name: 'alexnet_serve_model_info', help: 'The checkpoint being served (value 1): its key (the model version), run, and where it came from (serving, latest, checkpoint).',
      labelNames: ['model', 'version', 'run', 'from', 'dataset'] as const, registers,
    }),
    ready: new Gauge({ name: 'alexnet_serve_ready', help: '1 when a model is loaded and requests are accepted, else 0.', registers }),
    reloads: new Counter({ name: 'alexnet_serve_reloads_total', help: 'Reload checks, by result: changed (a new checkpoint swapped in), unchanged, failed (the old one kept serving).', labelNames: ['result'] as const, registers }),
  };
}

export type ServeMetrics = ReturnType<typeof serveMetrics>;

// One series' value now (tests, logs): a counter's or gauge's value, a histogram's count and sum.
export async function metricValue<T extends string>(metric: Counter<T> | Gauge<T>, labels: Partial<Record<T, string>> = {}): Promise<number | undefined> {
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k as T]) === x))?.value;
}

export async function histogramStats<T extends string>(metric: Histogram<T>, labels: Partial<Record<T, string>> = {}): Promise<{ count: number; sum: number }> {
  const { name, values } = await metric.get();
  const match = (v: { labels: Partial<Record<string, string | number>> }) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x);
  const of = (suffix: string) => values.find((v) => v.metricName === `${name}${suffix}` && match(v))?.value ?? 0;
  return { count: of('_count'), sum: of('_sum') };
}
