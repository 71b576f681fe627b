// Dynamic batching: items submitted within maxDelayMs of the oldest waiting one run
// together, up to maxBatch items per run; each submitter gets back its own items' results,
// in order. Items carry a group (the model they were accepted for) and a run only mixes
// items of one group, so a request accepted before a model swap is answered by the model
// it was accepted for. At most maxInflight runs go at once (default 2: one batch decodes
// while another is in the network); under load the queue grows into full batches.

export interface BatcherOptions<G, I, O> {
  maxBatch: number;
  maxDelayMs: number;
  maxInflight?: number;
  run: (group: G, items: I[]) => Promise<O[]>;
}

interface Entry<G, I, O> {
  group: G;
  items: I[];
  arrived: number;
  resolve: (results: O[]) => void;
  reject: (error: unknown) => void;
}

export class Batcher<G, I, O> {
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;
  private readonly maxInflight: number;
  private readonly queue: Entry<G, I, O>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = 0;
  private immediate = false;

  constructor(private readonly options: BatcherOptions<G, I, O>) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new RangeError(`maxBatch must be an integer >= 1, got ${options.maxBatch}`);
    if (!(options.maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${options.maxDelayMs}`);
    this.maxBatch = options.maxBatch;
    this.maxDelayMs = options.maxDelayMs;
    this.maxInflight = options.maxInflight ?? 2;
  }

  // Items waiting for a run.
  get queued(): number {
    return this.queue.reduce((n, e) => n + e.items.length, 0);
  }

  // The results of `items`, in order. More than maxBatch items are split over several runs.
  submit(group: G, items: I[]): Promise<O[]> {
    if (items.length === 0) return Promise.resolve([]);
    const arrived = performance.now();
    const parts: Promise<O[]>[] = [];
    for (let i = 0; i < items.length; i += this.maxBatch) {
      const chunk = items.slice(i, i + this.maxBatch);
      parts.push(new Promise<O[]>((resolve, reject) => this.queue.push({ group, items: chunk, arrived, resolve, reject })));
    }
    this.schedule();
    return Promise.all(parts).then((r) => r.flat());
  }

  // From now on runs start without waiting for company (the server is closing: no more
  // requests will come).
  flushNow(): void {
    this.immediate = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.schedule();
  }

  // The leading entries of one group that fit one run, and whether that run is full (or can
  // grow no more because another group's entry waits behind it).
  private head(): { count: number; full: boolean } {
    const group = this.queue[0].group;
    let count = 0;
    for (const e of this.queue) {
      if (e.group !== group || count + e.items.length > this.maxBatch) return { count, full: true };
      count += e.items.length;
    }
    return { count, full: count >= this.maxBatch };
  }

  private schedule(): void {
    while (this.running < this.maxInflight && this.queue.length > 0) {
      const waited = performance.now() - this.queue[0].arrived;
      if (!this.immediate && !this.head().full && waited < this.maxDelayMs) {
        this.timer ??= setTimeout(() => {
          this.timer = undefined;
          this.schedule();
        }, this.maxDelayMs - waited);
        return;
      }
      this.launch();
    }
  }

  private launch(): void {
    const group = this.queue[0].group;
    const batch: Entry<G, I, O>[] = [];
    let count = 0;
    while (this.queue.length > 0 && this.queue[0].group === group && count + this.queue[0].items.length <= this.maxBatch) {
      const e = this.queue.shift()!;
      count += e.items.length;
      batch.push(e);
    }
    const items = batch.flatMap((e) => e.items);
    this.running++;
    void Promise.resolve()
      .then(() => this.options.run(group, items))
      .then((results) => {
        if (results.length !== items.length) throw new Error(`a batch of ${items.length} items returned ${results.length} results`);
        let offset = 0;
        for (const e of batch) {
          e.resolve(results.slice(offset, offset + e.items.length));
          offset += e.items.length;
        }
      })
      .catch((error: unknown) => batch.forEach((e) => e.reject(error)))
      .finally(() => {
        this.running--;
        this.schedule();
      });
  }
}
