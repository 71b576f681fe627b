// Records the histories of real workflow runs for the replay tests (test/replay.test.ts):
// starts its own Temporal dev servers and in-process workers, imports a tiny Fashion-MNIST,
// runs PrepareDataset, TrainAlexNet (signals; a worker process killed mid-epoch; a chain of
// continueAsNew runs) and EvaluateAlexNet (10-crop; bad input), checks that each history
// shows what it is recorded for, and writes it as <outDir>/<name>.json (protobuf JSON, as
// `temporal workflow show --output json` writes it) with <outDir>/index.json describing all.
// usage: node dist/scripts/record-histories.js [outDir=test/histories]
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { WorkflowHandle } from '@temporalio/client';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import { DefaultLogger, Runtime } from '@temporalio/worker';

import { importFashionMnist } from './importers/fashion-mnist';
import { openStore } from '../activities/store';
import { runKeys } from '../common/store-layout';
import { startTemporal } from '../infra/services';
import type { ClassifyImagesInput, EvaluateAlexNetInput, PrepareDatasetInput, TrainAlexNetInput } from '../common/contract';
import { startInProcessWorker } from './in-process-worker';
import { DIST_DIR, REPO_ROOT } from './paths';

const ROOT = REPO_ROOT;
const CLI = path.join(DIST_DIR, 'scripts', 'alexnet.js');
const QUEUE = 'record';
const KILL_QUEUE = 'record-kill';
const SDK_VERSION = (require('@temporalio/worker/package.json') as { version: string }).version;

type History = proto.temporal.api.history.v1.IHistory;
type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

// --- History <-> protobuf JSON ---------------------------------------------------------
// The format of historyToJSON/historyFromJSON (@temporalio/common/lib/proto-utils) and of
// `temporal workflow show --output json`. Those SDK functions fail in this install ("type
// must be a Type"): @temporalio/common and @temporalio/proto each get their own copy of
// protobufjs 8 (the root's protobufjs is grpc's 7), and common's protojson rejects types
// built by proto's copy. protojson from the copy @temporalio/proto uses works in any layout.
interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): History;
}
const protojson = require(require.resolve('protobufjs/ext/protojson', { paths: [path.dirname(require.resolve('@temporalio/proto'))] })) as ProtoJson;
// patchProtobufRoot returns protobufjs's Root at run time, typed as the namespace it was given.
const protoRoot: object = patchProtobufRoot(proto);
if (!('lookupType' in protoRoot) || typeof protoRoot.lookupType !== 'function') throw new Error('@temporalio/proto: patchProtobufRoot returned no protobufjs Root (lookupType missing)');
const historyType: unknown = protoRoot.lookupType.call(protoRoot, 'temporal.api.history.v1.History');

export function historyToProtoJSON(history: History): string {
  return JSON.stringify(protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)), null, 2);
}

export function historyFromProtoJSON(json: unknown): History {
  return protojson.fromJson(historyType, json, { ignoreUnknownFields: true });
}

// --- What each recording is for ----------------------------------------------------------

export interface HistoryIndexEntry {
  file: string;
  workflowType: string;
  workflowId: string;
  runId: string;
  description: string;
  events: number;
  recordedAt: string;
  sdkVersion: string;
}

// The activity types a history schedules, in order.
export function scheduledActivities(events: HistoryEvent[]): string[] {
  return events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
}
const closedWith = (events: HistoryEvent[], key: keyof HistoryEvent) => events.length > 0 && Boolean(events[events.length - 1][key]);

export interface Recording {
  description: string;
  // What the history must show (checked when recording, and by the replay test).
  shows: Record<string, (events: HistoryEvent[]) => boolean>;
}

export const RECORDINGS: Record<string, Recording> = {
  'prepare-dataset': {
    description: 'PrepareDataset of 200 train and 200 test Fashion-MNIST images at 36x36, 50 per shard, 2 in flight (8 shards; 9 since a val split is carved out of train)',
    shows: {
      'every shard preprocessed': (h) => scheduledActivities(h).filter((a) => a === 'preprocessShard').length >= 8,
      'completed': (h) => closedWith(h, 'workflowExecutionCompletedEventAttributes'),
    },
  },
  'train-signals': {
    description: 'TrainAlexNet, 2 epochs: pause mid-epoch 0 (the epoch activity cancelled at a batch boundary), setLearningRate 0.005, resume',
    shows: {
      'pause, setLearningRate and resume signalled': (h) => h.flatMap((e) => e.workflowExecutionSignaledEventAttributes?.signalName ?? []).join() === 'pause,setLearningRate,resume',
      'the epoch activity cancelled': (h) => h.some((e) => e.activityTaskCanceledEventAttributes),
      'completed': (h) => closedWith(h, 'workflowExecutionCompletedEventAttributes'),
    },
  },
  'train-worker-killed': {
    description: 'TrainAlexNet, 2 epochs, its worker process SIGKILLed mid-epoch 0 and replaced: the epoch activity times out (heartbeat 3 s) and a retry resumes at the checkpoint',
    shows: {
      'an epoch activity retried after a heartbeat timeout': (h) => h.some((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 0) >= 2 &&
        /heartbeat/i.test(e.activityTaskStartedEventAttributes?.lastFailure?.message ?? '')),
      'completed': (h) => closedWith(h, 'workflowExecutionCompletedEventAttributes'),
    },
  },
  'evaluate-10crop': {
    description: "EvaluateAlexNet of train-signals' newest checkpoint on the test split (4 shards, 2 in flight), 10 crops, report written",
    shows: {
      'planned, four shards evaluated, reported': (h) => scheduledActivities(h).join() === 'planEvaluation,evaluateShard,evaluateShard,evaluateShard,evaluateShard,writeEvaluationReport',
      'completed': (h) => closedWith(h, 'workflowExecutionCompletedEventAttributes'),
    },
  },
  'classify-images': {
    description: "ClassifyImages of 200 Fashion-MNIST test JPEGs (a folder) with train-signals' newest checkpoint, 50 per shard (4 shards, 2 in flight), summary written",
    shows: {
      'planned, four shards classified, summarized': (h) => scheduledActivities(h).join() === 'planClassification,classifyShard,classifyShard,classifyShard,classifyShard,writeClassificationSummary',
      'completed': (h) => closedWith(h, 'workflowExecutionCompletedEventAttributes'),
    },
  },
  'evaluate-bad-input': {
    description: 'EvaluateAlexNet with crops: 3: fails at once, non-retryably (InvalidInput), before any activity',
    shows: {
      'failed with InvalidInput': (h) => closedWith(h, 'workflowExecutionFailedEventAttributes') &&
        h[h.length - 1].workflowExecutionFailedEventAttributes?.failure?.applicationFailureInfo?.type === 'InvalidInput',
      'no activity scheduled': (h) => scheduledActivities(h).length === 0,
    },
  },
  'train-continue-as-new-1': {
    description: 'TrainAlexNet, 3 epochs, on a server that suggests continueAsNew after 20 events: run 1 of the chain',
    shows: { 'continued as new': (h) => closedWith(h, 'workflowExecutionContinuedAsNewEventAttributes') },
  },
  'train-continue-as-new-2': {
    description: 'TrainAlexNet, 3 epochs, on a server that suggests continueAsNew after 20 events: run 2 of the chain (started with the carried state)',
    shows: { 'continues run 1': (h) => Boolean(h[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId) },
  },
};

// --- Recording -----------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

class Recorder {
  readonly entries: HistoryIndexEntry[] = [];
  constructor(private readonly outDir: string) {}

  // Checks and writes one run's history (the handle's run, or `runId` of its workflow id);
  // returns the run it continued as, if any.
  async write(name: string, handle: WorkflowHandle, runId?: string, description = RECORDINGS[name].description): Promise<string | undefined> {
    const run = runId ? handle.client.getHandle(handle.workflowId, runId) : handle;
    const history = await run.fetchHistory();
    const events = history.events ?? [];
    const missing = Object.entries(RECORDINGS[name]?.shows ?? {}).filter(([, shows]) => !shows(events)).map(([what]) => what);
    if (missing.length > 0) throw new Error(`${name}: the recorded run does not show: ${missing.join('; ')} (timing? record again)`);
    const file = `${name}.json`;
    fs.writeFileSync(path.join(this.outDir, file), historyToProtoJSON(history) + '\n');
    const desc = await run.describe();
    this.entries.push({
      file, workflowType: desc.type, workflowId: handle.workflowId, runId: desc.runId,
      description, events: events.length, recordedAt: new Date().toISOString(), sdkVersion: SDK_VERSION,
    });
    console.log(`  ${file}: ${events.length} events, ${fs.statSync(path.join(this.outDir, file)).size} bytes`);
    return events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }

  writeIndex(): void {
    fs.writeFileSync(path.join(this.outDir, 'index.json'), JSON.stringify(this.entries, null, 2) + '\n');
  }
}

async function record(dir: string, rec: Recorder, cleanup: (() => Promise<unknown>)[]): Promise<void> {
  const temporal = await startTemporal({ dir: path.join(dir, 'temporal') });
  cleanup.push(() => temporal.stop());
  const worker = await startInProcessWorker(temporal.address, QUEUE);
  cleanup.push(() => worker.stop());
  const { client } = worker;

  const images = path.join(dir, 'fashion');
  await importFashionMnist(images, { limit: 200 });
  const store = path.join(dir, 'store');
  const s = openStore(store);
  const datasetName = 'fashion';
  const trainBase: TrainAlexNetInput = {
    store, datasetName, model: 'alexnet-32', epochs: 2, batchSize: 16, checkpointEvery: 2,
    lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 1,
  };
  const checkpointedPast = (runId: string, batch: number) => until(`a checkpoint of ${runId} at batch ${batch} or later`, async () => {
    if (!await s.head(runKeys(runId).latest)) return undefined;
    const latest = JSON.parse((await s.get(runKeys(runId).latest)).toString()) as { epoch: number; batch: number };
    return latest.epoch === 0 && latest.batch >= batch ? latest : undefined;
  });

  console.log('PrepareDataset');
  const prepareInput: PrepareDatasetInput = { dataset: images, store, name: datasetName, imageSize: 36, shardSize: 50, maxParallel: 2 };
  const prepare = await client.workflow.start('PrepareDataset', { taskQueue: QUEUE, workflowId: 'prepare-dataset', args: [prepareInput] });
  await prepare.result();
  await rec.write('prepare-dataset', prepare);

  console.log('TrainAlexNet with signals');
  // Batches of 2: the 100-batch epoch lasts seconds, so the pause lands mid-epoch.
  const signals = await client.workflow.start('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'train-signals', args: [{ ...trainBase, batchSize: 2 }] });
  await checkpointedPast('train-signals', 2);
  await signals.signal('pause');
  await until('phase paused', async () => (await signals.query<{ phase: string }>('progress')).phase === 'paused' || undefined);
  await signals.signal('setLearningRate', 0.005);
  await signals.signal('resume');
  await signals.result();
  await rec.write('train-signals', signals);

  console.log('TrainAlexNet with its worker process killed mid-epoch');
  const env = { ...process.env, TEMPORAL_ADDRESS: temporal.address };
  const spawnWorker = (): ChildProcess => spawn(process.execPath, [CLI, 'worker', '--task-queue', KILL_QUEUE], { env, stdio: 'ignore' });
  let child = spawnWorker();
  cleanup.push(async () => void child.kill('SIGKILL'));
  const killed = await client.workflow.start('TrainAlexNet', {
    taskQueue: KILL_QUEUE, workflowId: 'train-worker-killed', args: [{ ...trainBase, heartbeatTimeoutSeconds: 3 }],
  });
  await checkpointedPast('train-worker-killed', 2);  // so the retry resumes mid-epoch
  child.kill('SIGKILL');
  child = spawnWorker();
  await killed.result();
  child.kill('SIGKILL');
  await rec.write('train-worker-killed', killed);

  console.log('EvaluateAlexNet, 10 crops');
  const evalInput: EvaluateAlexNetInput = { store, checkpoint: { run: 'train-signals' }, datasetName, crops: 10, maxParallel: 2 };
  const evaluate = await client.workflow.start('EvaluateAlexNet', { taskQueue: QUEUE, workflowId: 'evaluate-10crop', args: [evalInput] });
  await evaluate.result();
  await rec.write('evaluate-10crop', evaluate);

  console.log('ClassifyImages');
  const classifyInput: ClassifyImagesInput = { store, checkpoint: { run: 'train-signals' }, source: path.join(images, 'test'), shardSize: 50, maxParallel: 2 };
  const classify = await client.workflow.start('ClassifyImages', { taskQueue: QUEUE, workflowId: 'classify-images', args: [classifyInput] });
  await classify.result();
  await rec.write('classify-images', classify);

  console.log('EvaluateAlexNet, bad input (fails: expected)');
  const bad = await client.workflow.start('EvaluateAlexNet', {
    taskQueue: QUEUE, workflowId: 'evaluate-bad-input', args: [{ ...evalInput, crops: 3 } as unknown as EvaluateAlexNetInput],
  });
  await bad.result().catch(() => undefined);  // the checks below require the failure
  await rec.write('evaluate-bad-input', bad);

  console.log('TrainAlexNet with continueAsNew (a server that suggests it after 20 events)');
  const low = await startTemporal({ dir: path.join(dir, 'temporal-low'), dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 20 } });
  cleanup.push(() => low.stop());
  const lowWorker = await startInProcessWorker(low.address, QUEUE);
  cleanup.push(() => lowWorker.stop());
  const chain = await lowWorker.client.workflow.start('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: 'train-continue-as-new', args: [{ ...trainBase, epochs: 3 }],
  });
  await chain.result();
  let runId: string | undefined = chain.firstExecutionRunId;
  for (let i = 1; runId; i++) {
    const name = `train-continue-as-new-${i}`;
    runId = await rec.write(name, chain, runId, RECORDINGS[name]?.description ?? `TrainAlexNet, 3 epochs, on a server that suggests continueAsNew after 20 events: run ${i} of the chain`);
  }
}

// node dist/scripts/record-histories.js [OUT_DIR] [--only NAME,...]: records every history
// (the recordings depend on one another), then replaces OUT_DIR's histories, or with --only
// adds or replaces just those, keeping the others: older histories stay, so the replay
// test keeps checking that today's code replays what older code recorded.
async function run(): Promise<void> {
  const args = process.argv.slice(2);
  const onlyAt = args.indexOf('--only');
  const only = onlyAt >= 0 ? args.splice(onlyAt, 2)[1]?.split(',') : undefined;
  if (only?.some((n) => !RECORDINGS[n] && !/^train-continue-as-new-\d+$/.test(n))) throw new Error(`--only: unknown recording among ${only.join(', ')}; known: ${Object.keys(RECORDINGS).join(', ')}`);
  const outDir = path.resolve(args[0] ?? path.join(ROOT, 'test', 'histories'));
  Runtime.install({ logger: new DefaultLogger('WARN') });  // no bundler chatter; workflow failures still show
  const started = Date.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-record-'));
  const staging = path.join(dir, 'histories');  // outDir is replaced only when every recording succeeded
  fs.mkdirSync(staging);
  const rec = new Recorder(staging);
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    await record(dir, rec, cleanup);
    rec.writeIndex();
  } catch (e) {
    console.error(`recording failed; ${outDir} left as it was, servers' logs in ${dir}`);
    throw e;
  } finally {
    for (const stop of cleanup.reverse()) await stop().catch((e: Error) => console.error(`cleanup: ${e.message}`));
  }
  fs.mkdirSync(outDir, { recursive: true });
  if (only) {
    const index = path.join(outDir, 'index.json');
    const kept = (fs.existsSync(index) ? JSON.parse(fs.readFileSync(index, 'utf8')) as HistoryIndexEntry[] : []).filter((e) => !only.includes(e.file.replace(/\.json$/, '')));
    const added = rec.entries.filter((e) => only.includes(e.file.replace(/\.json$/, '')));
    for (const e of added) fs.copyFileSync(path.join(staging, e.file), path.join(outDir, e.file));
    rec.entries.splice(0, rec.entries.length, ...kept, ...added);
    fs.writeFileSync(index, JSON.stringify(rec.entries, null, 2) + '\n');
  } else {
    for (const f of fs.readdirSync(outDir)) if (f.endsWith('.json')) fs.rmSync(path.join(outDir, f));
    for (const f of fs.readdirSync(staging)) fs.copyFileSync(path.join(staging, f), path.join(outDir, f));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const total = rec.entries.reduce((sum, e) => sum + fs.statSync(path.join(outDir, e.file)).size, 0);
  console.log(`${rec.entries.length} histories in ${outDir} (${(total / 1024).toFixed(0)} KiB) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

if (require.main === module) {
  run().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
