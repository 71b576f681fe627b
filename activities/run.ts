// A training run's records in the store: its initial checkpoint (initRun), its metrics
// (appendMetrics) and where it stands (latestCheckpoint).
import type { NetConfig } from '../native/index';
import { modelConfig, Network } from '../native/index';
import type { RunRecord } from '../common/contract';
import { runKeys } from '../common/store-layout';
import { readLatest, saveCheckpoint } from './checkpoint';
import { openStore } from './store';

// Creates the run's initial state (the paper's initialization from the seed) as the
// checkpoint at epoch 0, batch 0, unless the run already has one (a retry, or a resume).
export async function initRun(input: { runId: string; store: string; model: string | NetConfig; classes: number; seed: number; threads?: number; datasetName?: string }): Promise<{ checkpointKey: string; resumed: boolean; parameters: number }> {
  const store = openStore(input.store);
  const recordKey = runKeys(input.runId).record;
  if (input.datasetName && !(await store.head(recordKey))) {
    const record: RunRecord = { runId: input.runId, datasetName: input.datasetName, model: typeof input.model === 'string' ? input.model : input.model.name ?? 'custom', classes: input.classes, seed: input.seed, createdAt: new Date().toISOString() };
    await store.put(recordKey, JSON.stringify(record, null, 1));
  }
  const latest = await readLatest(store, input.runId);
  if (latest) return { checkpointKey: latest.key, resumed: true, parameters: 0 };
  const config = typeof input.model === 'string' ? modelConfig(input.model, { classes: input.classes }) : input.model;
  const net = new Network(config, { seed: input.seed, threads: input.threads });
  const pointer = await saveCheckpoint(store, input.runId, net, { epoch: 0, batch: 0 }, { attempt: 0, lr: 0 });
  const parameters = net.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  return { checkpointKey: pointer.key, resumed: false, parameters };
}

// metrics.jsonl is rewritten whole (object stores have no append); one line per record,
// idempotent by (kind, epoch): a retried append does not duplicate a line.
export async function appendMetrics(input: { store: string; runId: string; record: Record<string, unknown> & { kind: string; epoch: number } }): Promise<void> {
  const store = openStore(input.store);
  const key = runKeys(input.runId).metrics;
  const lines = (await store.head(key)) ? (await store.get(key)).toString('utf8').split('\n').filter((l) => l.trim()) : [];
  const same = (l: string) => {
    const r = JSON.parse(l) as { kind: string; epoch: number };
    return r.kind === input.record.kind && r.epoch === input.record.epoch;
  };
  const kept = lines.filter((l) => !same(l));
  kept.push(JSON.stringify(input.record));
  await store.put(key, kept.join('\n') + '\n');
}

export async function latestCheckpoint(input: { store: string; runId: string }): Promise<{ key: string; epoch: number; batch: number } | undefined> {
  const latest = await readLatest(openStore(input.store), input.runId);
  return latest && { key: latest.key, epoch: latest.epoch, batch: latest.batch };
}
