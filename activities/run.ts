// A training run's records in the store: its initial checkpoint (initRun), its metrics
// (appendMetrics) and where it stands (latestCheckpoint).
import { ApplicationFailure } from '@temporalio/common';

import type { NetConfig } from '../native/index';
import { lrScale, modelConfig, Network } from '../native/index';
import type { EpochResult, InitFrom, RunRecord, ValidationResult } from '../common/contract';
import { ArgumentError } from '../common/validate';
import { runKeys } from '../common/store-layout';
import { readLatest, saveCheckpoint } from './checkpoint';
import { copyInitWeights, readInitSource, reinitLayers } from './init-from';
import { openStore } from './store';
import { putValidationEvents } from './tensorboard';

export interface InitRunInput {
  runId: string;
  store: string;
  model: string | NetConfig;
  classes: number;
  seed: number;
  threads?: number;
  datasetName?: string;
  initFrom?: InitFrom;                     // fine-tuning: the first weights (init-from.ts)
  reinit?: string[];                       // layers drawn afresh; default see reinitLayers
  lrMultipliers?: Record<string, number>;  // checked against the layers and recorded
}

// Creates the run's initial state as the checkpoint at epoch 0, batch 0 (the paper's
// initialisation from the seed; with initFrom, the source's weights but for the layers
// drawn afresh), unless the run already has one (a retry, or a resume). Every check comes
// before the first write: a bad layer name or source leaves nothing behind.
export async function initRun(input: InitRunInput): Promise<{ checkpointKey: string; resumed: boolean; parameters: number }> {
  const store = openStore(input.store);
  // run.json, once (a run from before it existed gets one when it resumes).
  const writeRecord = async (extra: Pick<RunRecord, 'initFrom' | 'lrMultipliers'>) => {
    const recordKey = runKeys(input.runId).record;
    if (!input.datasetName || await store.head(recordKey)) return;
    const record: RunRecord = {
      runId: input.runId, datasetName: input.datasetName, model: typeof input.model === 'string' ? input.model : input.model.name ?? 'custom',
      classes: input.classes, seed: input.seed, createdAt: new Date().toISOString(), ...extra,
    };
    await store.put(recordKey, JSON.stringify(record, null, 1));
  };
  const latest = await readLatest(store, input.runId);
  if (latest) {
    await writeRecord({});
    return { checkpointKey: latest.key, resumed: true, parameters: 0 };
  }
  const config = typeof input.model === 'string' ? modelConfig(input.model, { classes: input.classes }) : input.model;
  const net = new Network(config, { seed: input.seed, threads: input.threads });
  let initFrom: RunRecord['initFrom'];
  try {
    if (input.lrMultipliers) lrScale(config, net.params, input.lrMultipliers);  // names a layer the network lacks
    if (input.initFrom) {
      const source = await readInitSource(input.store, input.initFrom);
      const reinit = reinitLayers(config, source, input.reinit);
      copyInitWeights(net, source, reinit);
      initFrom = { source: input.initFrom, from: source.from, ...(source.sourceRun ? { sourceRun: source.sourceRun } : {}), reinit };
    } else if (input.reinit?.length) {
      throw new ArgumentError('reinit', 'reinit names the layers to draw afresh when fine-tuning: give initFrom too');
    }
  } catch (e) {
    if (e instanceof ArgumentError) throw ApplicationFailure.nonRetryable(e.message, 'InvalidInput');
    throw e;
  }
  await writeRecord({ ...(initFrom ? { initFrom } : {}), ...(input.lrMultipliers ? { lrMultipliers: input.lrMultipliers } : {}) });
  const pointer = await saveCheckpoint(store, input.runId, net, { epoch: 0, batch: 0 }, { attempt: 0, lr: 0 });
  const parameters = net.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  return { checkpointKey: pointer.key, resumed: false, parameters };
}

// metrics.jsonl is rewritten whole (object stores have no append); one line per record,
// idempotent by (kind, epoch): a retried append does not duplicate a line. An epoch's
// validation also goes to TensorBoard from here, as its val/ points at the epoch's last
// step (train.batches is the epoch's batch count); a failed write of those is a warning
// in the line.
export async function appendMetrics(input: { store: string; runId: string; record: Record<string, unknown> & { kind: string; epoch: number } }): Promise<void> {
  const store = openStore(input.store);
  const record = { ...input.record };
  const validation = record.validation as ValidationResult | undefined;
  const batchesPerEpoch = (record.train as EpochResult | undefined)?.batches;
  if (record.kind === 'epoch' && validation && batchesPerEpoch) {
    const warnings = Array.isArray(record.warnings) ? [...record.warnings as string[]] : [];
    await putValidationEvents(store, input.runId, record.epoch, batchesPerEpoch, validation, warnings);
    record.warnings = warnings;
  }
  const key = runKeys(input.runId).metrics;
  const lines = (await store.head(key)) ? (await store.get(key)).toString('utf8').split('\n').filter((l) => l.trim()) : [];
  const same = (l: string) => {
    const r = JSON.parse(l) as { kind: string; epoch: number };
    return r.kind === record.kind && r.epoch === record.epoch;
  };
  const kept = lines.filter((l) => !same(l));
  kept.push(JSON.stringify(record));
  await store.put(key, kept.join('\n') + '\n');
}

export async function latestCheckpoint(input: { store: string; runId: string }): Promise<{ key: string; epoch: number; batch: number } | undefined> {
  const latest = await readLatest(openStore(input.store), input.runId);
  return latest && { key: latest.key, epoch: latest.epoch, batch: latest.batch };
}
