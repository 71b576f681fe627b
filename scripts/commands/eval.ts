// alexnet eval: starts EvaluateAlexNet through the Temporal client, follows it with a
// progress bar and prints the summary (top-1/top-5, the report's keys) as one JSON line.
// The same workflow runs from the official CLI:
//   temporal workflow start --type EvaluateAlexNet --task-queue alexnet --input '{...}'
import type { EvaluateAlexNetInput } from '../../common/contract';
import { START_FLAGS, START_HELP, START_USAGE, startAndFollow } from '../start-and-follow';
import { CONNECTION_HELP } from '../temporal-connection';
import { intOption, parse, required, UsageError } from './args';

const HELP = `usage: alexnet eval --store URI --dataset-name NAME (--run RUN_ID | --checkpoint KEY)
                    [--split test|val] [--crops 10] [--batch-size 128] [--parallel 4] [--device cpu|cuda] [--promote]
                    ${START_USAGE}

Starts EvaluateAlexNet (a worker must run: alexnet worker): --run evaluates the run's
newest checkpoint (runs/RUN_ID/latest.json), --checkpoint a given key. --crops 10 is the
paper's test (four corners, centre and their reflections, softmax averaged); 1 the centre.
--split defaults to test when the dataset's val split was carved out of train, else val.
The report (report.json, report.md, report.html) goes to runs/RUN_ID/reports/ in the store.
--promote: when the checkpoint's top-1 error beats the one runs/RUN_ID/serving.json names
(same split and crops), or none is named, serving.json moves to it: what inference serves.
Follows the evaluation to the end and prints its summary as one JSON line.

${START_HELP}

${CONNECTION_HELP}`;

export const EVAL_FLAGS = {
  store: { type: 'string' }, 'dataset-name': { type: 'string' }, run: { type: 'string' }, checkpoint: { type: 'string' },
  split: { type: 'string' }, crops: { type: 'string' }, 'batch-size': { type: 'string' }, parallel: { type: 'string' },
  device: { type: 'string' }, 'task-queue': { type: 'string' }, promote: { type: 'boolean' },
} as const;

// The workflow input from the flags that eval and schedule-eval share.
export function evaluateInput(o: Partial<Record<Exclude<keyof typeof EVAL_FLAGS, 'promote'>, string>> & { promote?: boolean }, help: string): EvaluateAlexNetInput {
  if (!!o.run === !!o.checkpoint) throw new UsageError(`give one of --run RUN_ID or --checkpoint KEY\n\n${help}`);
  const crops = intOption(o.crops, 'crops', 10);
  if (crops !== 1 && crops !== 10) throw new UsageError(`--crops must be 1 or 10, got '${o.crops}'`);
  return {
    store: required(o.store, 'store', help),
    datasetName: required(o['dataset-name'], 'dataset-name', help),
    checkpoint: o.run ? { run: o.run } : o.checkpoint!,
    split: o.split,
    crops,
    batchSize: intOption(o['batch-size'], 'batch-size', 128),
    maxParallel: intOption(o.parallel, 'parallel', 4),
    device: o.device as EvaluateAlexNetInput['device'],
    ...(o.promote ? { promote: true } : {}),
  };
}

export async function evaluate(argv: string[]): Promise<void> {
  const o = parse(argv, { ...START_FLAGS, ...EVAL_FLAGS }, HELP);
  await startAndFollow(o, 'EvaluateAlexNet', evaluateInput(o, HELP), { workflowId: `eval-${o.run ?? 'checkpoint'}-${Date.now()}` });
}
