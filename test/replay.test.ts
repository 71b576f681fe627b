// Replay: the histories of real runs in test/histories (recorded by
// scripts/record-histories.ts: PrepareDataset, TrainAlexNet with signals, with its worker
// killed, continued as new, EvaluateAlexNet, a failed evaluation) must replay against the
// current workflow code without nondeterminism; and a workflow whose command sequence
// changed without patched() is caught by the same replay.
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import type { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';

import { HistoryIndexEntry, historyFromProtoJSON, RECORDINGS, scheduledActivities } from '../scripts/record-histories';
import { ROOT } from './helpers';

const HISTORIES = path.join(ROOT, 'test', 'histories');
const RERECORD = 'node dist/scripts/record-histories.js';

// Ava runs each test file in its own process: this file's replay workers log warnings only.
test.before(() => Runtime.install({ logger: new DefaultLogger('WARN') }));

interface Recorded { file: string; entry: HistoryIndexEntry; workflowId: string; history: temporal.api.history.v1.IHistory }

function loadHistories(): Recorded[] {
  const index = JSON.parse(fs.readFileSync(path.join(HISTORIES, 'index.json'), 'utf8')) as HistoryIndexEntry[];
  const files = fs.readdirSync(HISTORIES).filter((f) => f.endsWith('.json') && f !== 'index.json').sort();
  return files.map((file) => {
    const entry = index.find((e) => e.file === file);
    if (!entry) throw new Error(`${file} is not listed in test/histories/index.json: record again (${RERECORD})`);
    const history = historyFromProtoJSON(JSON.parse(fs.readFileSync(path.join(HISTORIES, file), 'utf8')));
    return { file, entry, workflowId: entry.workflowId, history };
  });
}

// Replays the histories against the workflows bundled from `workflowsPath`; one line per
// history that failed: "<file>: <error name>: <message>".
async function replayFailures(workflowsPath: string, histories: Recorded[]): Promise<{ replayed: number; failures: string[]; errors: unknown[] }> {
  const failures: string[] = [];
  const errors: unknown[] = [];
  let replayed = 0;
  // One result per history, in order.
  for await (const result of Worker.runReplayHistories({ workflowsPath, replayName: 'recorded-histories' }, histories)) {
    const { file } = histories[replayed++];
    if (result.error) {
      failures.push(`${file}: ${result.error.name}: ${result.error.message}`);
      errors.push(result.error);
    }
  }
  return { replayed, failures, errors };
}

test('replay: the recorded histories are all there and show what they were recorded for', (t) => {
  const histories = loadHistories();
  const names = histories.map((h) => path.basename(h.file, '.json'));
  for (const [name, recording] of Object.entries(RECORDINGS)) {
    const h = histories.find((r) => r.file === `${name}.json`);
    if (!h) {
      t.fail(`test/histories/${name}.json is missing (${recording.description}): record again (${RERECORD})`);
      continue;
    }
    for (const [what, shows] of Object.entries(recording.shows)) t.true(shows(h.history.events ?? []), `${name} shows: ${what}`);
  }
  // The continueAsNew chain: every run but the last continued as new, and all are recorded.
  const chain = names.filter((n) => n.startsWith('train-continue-as-new-')).sort((a, b) => Number(a.split('-').pop()) - Number(b.split('-').pop()));
  t.true(chain.length >= 2, `the continueAsNew chain has ${chain.length} runs recorded`);
  chain.forEach((name, i) => {
    const events = histories.find((h) => h.file === `${name}.json`)!.history.events ?? [];
    const last = events[events.length - 1];
    t.is(Boolean(last?.workflowExecutionContinuedAsNewEventAttributes), i < chain.length - 1, `${name}: ${i < chain.length - 1 ? 'continued as new' : 'the chain ends here'}`);
  });
  const types = new Set(histories.map((h) => h.entry.workflowType));
  t.deepEqual([...types].sort(), ['ClassifyImages', 'EvaluateAlexNet', 'PrepareDataset', 'TrainAlexNet']);
});

test('replay: every recorded history replays without nondeterminism against the current workflows', async (t) => {
  const histories = loadHistories();
  t.true(histories.length >= Object.keys(RECORDINGS).length, `${histories.length} histories`);
  const { replayed, failures } = await replayFailures(require.resolve('../workflows'), histories);
  t.is(replayed, histories.length, 'every history replayed');
  t.deepEqual(failures, [], `workflow code no longer matches recorded histories: guard the change with patched() (or record again only if no such executions can still be running: ${RERECORD})`);
  t.log(`${replayed} histories replayed: ${histories.map((h) => h.file).join(', ')}`);
});

test('replay: a workflow whose command sequence changed without patched() is caught', async (t) => {
  const histories = loadHistories().filter((h) => h.file === 'evaluate-10crop.json');
  t.is(histories.length, 1);
  t.is(scheduledActivities(histories[0].history.events ?? [])[0], 'planEvaluation', 'the recorded run starts with planEvaluation');
  const { replayed, failures, errors } = await replayFailures(require.resolve('./fixtures/incompatible-workflows'), histories);
  t.is(replayed, 1);
  t.is(failures.length, 1, 'the incompatible variant fails replay');
  t.true(errors[0] instanceof DeterminismViolationError, `a DeterminismViolationError, not: ${failures[0]}`);
  t.regex(failures[0], /nondeterminism/i);
  t.log(failures[0]);
});

test('replay: the same change guarded by patched() replays every recorded EvaluateAlexNet history', async (t) => {
  const histories = loadHistories().filter((h) => h.entry.workflowType === 'EvaluateAlexNet');
  t.true(histories.length >= 2);
  const { replayed, failures } = await replayFailures(require.resolve('./fixtures/incompatible-workflows/patched'), histories);
  t.is(replayed, histories.length);
  t.deepEqual(failures, []);
});
