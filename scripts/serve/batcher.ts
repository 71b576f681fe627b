// Dynamic batching: items wait up to maxDelayMs (from the oldest waiting one) for company
// and then run together, up to maxBatch items per run; a full run starts at once. An idle
// batcher (nothing running) does not wait for company that is not coming: it starts at the
// next turn of the event loop (what arrived together runs together), unless a run ended
// just now (within RETURN_WINDOW_MS): its senders are likely coming back (closed-loop
// clients), so it waits, up to maxDelayMs, until as many items wait as did when that run
// ended plus that run's own. So a lone client is answered without delay and a loaded
// server keeps its batches full. Each submitter gets back its own items' results, in
// order. Items carry a group (the model they were accepted for) and a run only mixes items
// of one group, so a request accepted before a model swap is answered by the model it was
// accepted for. At most maxInflight runs go at once (default 1; 2 lets one batch decode
// while another is in the network, which pays where they do not share cores: a GPU).

// How recent the last run must be for its size to predict the next one's.
const RETURN_WINDOW_MS = 100;

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
  private waiting = 0;
  private timer: NodeJS.Timeout | undefined;
  private turn: NodeJS.Immediate | undefined;
  private running = 0;
  private immediate = false;
  private last = { expected: 0, ended: -Infinity };  // the last run to end: its items plus those waiting then

  constructor(private readonly options: BatcherOptions<G, I, O>) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new RangeError(`maxBatch must be an integer >= 1, got ${options.maxBatch}`);
    if (!(options.maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${options.maxDelayMs}`);
    this.maxBatch = options.maxBatch;
    this.maxDelayMs = options.maxDelayMs;
    this.maxInflight = options.maxInflight ?? 1;
    if (!Number.isInteger(this.maxInflight) || this.maxInflight < 1) throw new RangeError(`maxInflight must be an integer >= 1, got ${this.maxInflight}`);
  }

  // Items waiting for a run (not those running).
  get queued(): number {
    return this.waiting;
  }

  // Runs under way.
  get active(): number {
    return this.running;
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
    this.waiting += items.length;
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

  // Whether the leading entries of one group fill a run (or can grow no more because
  // another group's entry waits behind them).
  private headFull(): boolean {
    const group = this.queue[0].group;
    let count = 0;
    for (const e of this.queue) {
      if (e.group !== group || count + e.items.length > this.maxBatch) return true;
      count += e.items.length;
    }
    return count >= this.maxBatch;
  }

  private schedule(): void {
    while (this.running < this.maxInflight && this.queue.length > 0) {
      if (!this.immediate && !this.headFull()) {
        const now = performance.now();
        let wait: number;
        if (this.running === 0) {
          // Idle: wait only for the senders of a run that just ended, at most maxDelayMs
          // from its end (or from the head's arrival, if later).
          const expected = now - this.last.ended <= RETURN_WINDOW_MS ? Math.min(this.maxBatch, this.last.expected) : 0;
          wait = this.waiting < expected ? this.maxDelayMs - (now - Math.max(this.queue[0].arrived, this.last.ended)) : 0;
          if (wait <= 0) {
            // Start at the next turn, with whatever arrived in this one.
            this.turn ??= setImmediate(() => {
              this.turn = undefined;
              if (this.running === 0 && this.queue.length > 0) this.launch();
              this.schedule();
            });
            return;
          }
        } else {
          wait = this.maxDelayMs - (now - this.queue[0].arrived);
        }
        if (wait > 0) {
          this.timer ??= setTimeout(() => {
            this.timer = undefined;
            this.schedule();
          }, wait);
          return;
        }
      }
      this.launch();
    }
  }

  private launch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const group = this.queue[0].group;
    const batch: Entry<G, I, O>[] = [];
    let count = 0;
    while (this.queue.length > 0 && this.queue[0].group === group && count + this.queue[0].items.length <= this.maxBatch) {
      const e = this.queue.shift()!;
      count += e.items.length;
      batch.push(e);
    }
    this.waiting -= count;
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
        this.last = { expected: items.length + this.waiting, ended: performance.now() };
        this.schedule();
      });
  }
}
