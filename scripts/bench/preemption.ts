// alexnet bench --preemption: what a preempted worker costs a training run. One run on a
// worker process never touched (keeping every checkpoint), then the same run while its
// worker process is SIGKILLed each time a new checkpoint lands (a fresh worker started at
// once, as a preemptible machine's replacement would be), with the default retention.
// Reports the seconds lost per kill, the attempts each epoch took, whether the two runs
// ended bitwise identical (weights, momentum, RNG), and the checkpoint bytes each run's
// store holds at the end (keepAll against the default policy).
import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import type { PrepareDatasetResult, TrainAlexNetInput } from '../../common/contract';
import { runKeys } from '../../common/store-layout';
import { openStore, type ObjectStore } from '../../activities/store';
import { startTemporal } from '../../infra/services';
import { tensorBytes } from '../../native/safetensors';
import { importFashionMnist } from '../importers/fashion-mnist';
import { startInProcessWorker } from '../in-process-worker';
import { DIST_DIR } from '../paths';

export interface PreemptionBenchOptions {
  images: number;       // Fashion-MNIST images imported per split (train's 1/12 becomes val)
  epochs: number;
  batch: number;
  checkpointEvery: number;
  kills: number;
  heartbeatTimeoutSeconds: number;
  json: boolean;
}

async function checkpointBytes(store: ObjectStore, runId: string): Promise<{ count: number; bytes: number }> {
  let count = 0, bytes = 0;
  for await (const o of store.list(runKeys(runId).checkpoints)) {
    count++;
    bytes += o.size;
  }
  return { count, bytes };
}

export async function benchPreemption(o: PreemptionBenchOptions): Promise<void> {
  const log = (s: string) => (o.json ? process.stderr : process.stdout).write(s + '\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-bench-preemption-'));
  const temporal = await startTemporal({ dir: path.join(dir, 'temporal') });
  const workers: ChildProcess[] = [];
  try {
    const storeUri = path.join(dir, 'store');
    const store = openStore(storeUri);
    const imported = await importFashionMnist(path.join(dir, 'fashion-mnist'), { limit: o.images });
    const prep = await startInProcessWorker(temporal.address, 'bench-prepare');
    let prepared: PrepareDatasetResult;
    try {
      prepared = await prep.client.workflow.execute('PrepareDataset', {
        taskQueue: 'bench-prepare', workflowId: 'bench-prepare',
        args: [{ dataset: imported.uri, store: storeUri, name: 'fashion', imageSize: 36, shardSize: 500 }],
      }) as PrepareDatasetResult;
    } finally {
      await prep.stop();
    }
    const connection = await Connection.connect({ address: temporal.address });
    const temporalClient = new Client({ connection });
    const env = { ...process.env, TEMPORAL_ADDRESS: temporal.address };
    const spawnWorker = (queue: string) => {
      const w = spawn(process.execPath, [path.join(DIST_DIR, 'scripts', 'alexnet.js'), 'worker', '--task-queue', queue], { env, stdio: 'ignore' });
      workers.push(w);
      return w;
    };
    const input: TrainAlexNetInput = {
      store: storeUri, datasetName: 'fashion', model: 'alexnet-32', epochs: o.epochs, batchSize: o.batch, checkpointEvery: o.checkpointEvery,
      lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 5, heartbeatTimeoutSeconds: o.heartbeatTimeoutSeconds,
    };
    const trainImages = prepared.manifest.splits.train.images;
    log(`alexnet-32, ${o.epochs} epochs of ${trainImages} images (val: ${prepared.manifest.splits.val.images} carved from train), batch ${o.batch}, a checkpoint every ${o.checkpointEvery} batches, heartbeat timeout ${o.heartbeatTimeoutSeconds} s`);

    // The reference: never killed, every checkpoint kept.
    const refWorker = spawnWorker('bench-ref');
    let t0 = Date.now();
    const reference = await temporalClient.workflow.execute('TrainAlexNet', { taskQueue: 'bench-ref', workflowId: 'reference', args: [{ ...input, retention: { keepAll: true } }] }) as { latestCheckpoint: string };
    const referenceSeconds = (Date.now() - t0) / 1000;
    refWorker.kill('SIGKILL');
    log(`uninterrupted: ${referenceSeconds.toFixed(1)} s`);

    // The killed run: a kill as soon as the worker has written a checkpoint past the last
    // one seen (mid-epoch: batch > 0), until `kills` kills or the run ends.
    t0 = Date.now();
    const handle = await temporalClient.workflow.start('TrainAlexNet', { taskQueue: 'bench-kill', workflowId: 'killed', args: [input] });
    let done = false;
    const finished = handle.result().finally(() => void (done = true));
    let worker = spawnWorker('bench-kill');
    let kills = 0, lastSeen = '';
    const latestKey = runKeys('killed').latest;
    while (!done && kills < o.kills) {
      await new Promise((r) => setTimeout(r, 25));
      const latest = await store.head(latestKey) ? (await store.get(latestKey)).toString() : '';
      if (latest && latest !== lastSeen && /"batch":[1-9]/.test(latest)) {
        lastSeen = latest;
        worker.kill('SIGKILL');
        kills++;
        worker = spawnWorker('bench-kill');
      }
    }
    const killed = await finished as { latestCheckpoint: string };
    const killedSeconds = (Date.now() - t0) / 1000;
    worker.kill('SIGKILL');
    const lostPerKill = (killedSeconds - referenceSeconds) / Math.max(1, kills);
    const identical = tensorBytes(await store.get(killed.latestCheckpoint)).equals(tensorBytes(await store.get(reference.latestCheckpoint)));
    const attempts: number[] = [];
    for (let e = 0; e < o.epochs; e++) {
      const key = runKeys('killed').attempts(e);
      attempts.push(await store.head(key) ? (JSON.parse((await store.get(key)).toString()) as { attempt: number }).attempt : 0);
    }
    const [keptAll, keptDefault] = [await checkpointBytes(store, 'reference'), await checkpointBytes(store, 'killed')];
    log(`killed ${kills} times: ${killedSeconds.toFixed(1)} s, ${lostPerKill.toFixed(1)} s lost per kill; attempts per epoch ${attempts.join(', ')}; ` +
      `${identical ? 'bitwise identical to' : 'DIFFERENT from'} the uninterrupted run`);
    log(`checkpoints at the end: ${keptAll.count} (${(keptAll.bytes / 1e6).toFixed(1)} MB) kept by keepAll, ${keptDefault.count} (${(keptDefault.bytes / 1e6).toFixed(1)} MB) by the default retention`);
    if (o.json) {
      console.log(JSON.stringify({
        model: 'alexnet-32', epochs: o.epochs, trainImages, batch: o.batch, checkpointEvery: o.checkpointEvery, heartbeatTimeoutSeconds: o.heartbeatTimeoutSeconds,
        referenceSeconds, killedSeconds, kills, lostPerKill, attempts, identical, keepAll: keptAll, defaultRetention: keptDefault,
      }));
    }
    await connection.close();
    if (!identical) process.exitCode = 1;
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    await temporal.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
