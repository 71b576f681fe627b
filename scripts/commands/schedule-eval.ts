// alexnet schedule-eval: a Temporal Schedule that runs EvaluateAlexNet on a run's newest
// checkpoint every interval (or on a cron spec). The schedule's action carries
// {"checkpoint": {"run": RUN_ID}}, never a checkpoint key: each scheduled workflow reads
// latest.json when it starts, so it always evaluates the checkpoint of that moment.
// Overlap policy Skip (a slow evaluation is not stacked up behind itself) and an explicit
// catch-up window (after an outage, only recent missed runs are taken).
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';

import { TASK_QUEUE } from '../../common/contract';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectClient } from '../temporal-connection';
import { EVAL_FLAGS, evaluateInput } from './eval';
import { parse, UsageError } from './args';

const HELP = `usage: alexnet schedule-eval --run RUN_ID --store URI --dataset-name NAME (--every 1h | --cron '0 * * * *')
                             [--split test|val] [--crops 10] [--promote] [--catchup-window 10m] [--id SCHEDULE_ID] [--paused]
       alexnet schedule-eval list
       alexnet schedule-eval describe|trigger|pause|unpause|delete SCHEDULE_ID

Creates a Temporal Schedule (default id: eval-RUN_ID) that starts EvaluateAlexNet on the
run's newest checkpoint, resolved from runs/RUN_ID/latest.json when each scheduled run
starts. Overlap: skip. Catch-up window: how far back missed runs are taken after an outage.
--promote: each scheduled evaluation moves runs/RUN_ID/serving.json to its checkpoint when
that checkpoint's top-1 error beats the served one's (alexnet serve follows it).

${CONNECTION_HELP}`;

const DURATION = /^\d+(ms|s|m|h|d)$/;

export async function scheduleEval(argv: string[]): Promise<void> {
  const [verb] = argv;
  if (verb && !verb.startsWith('-')) return manage(verb, argv.slice(1));
  const o = parse(argv, {
    ...CONNECTION_FLAGS, ...EVAL_FLAGS, every: { type: 'string' }, cron: { type: 'string' },
    'catchup-window': { type: 'string' }, id: { type: 'string' }, paused: { type: 'boolean' },
  }, HELP);
  if (!o.run) throw new UsageError(`missing --run (a schedule evaluates a run's newest checkpoint)\n\n${HELP}`);
  if (o.checkpoint) throw new UsageError('--checkpoint would evaluate the same checkpoint every time: a schedule takes --run');
  if (!!o.every === !!o.cron) throw new UsageError(`give one of --every DURATION or --cron SPEC\n\n${HELP}`);
  if (o.every && !DURATION.test(o.every)) throw new UsageError(`--every must be a duration like 30m, 1h or 1d, got '${o.every}'`);
  const catchupWindow = o['catchup-window'] ?? '10m';
  if (!DURATION.test(catchupWindow)) throw new UsageError(`--catchup-window must be a duration like 10m, got '${catchupWindow}'`);
  const input = evaluateInput(o, HELP);
  const scheduleId = o.id ?? `eval-${o.run}`;
  const { client, connection, settings } = await connectClient(o);
  try {
    await client.schedule.create({
      scheduleId,
      spec: o.every ? { intervals: [{ every: o.every as `${number}m` }] } : { cronExpressions: [o.cron!] },
      action: { type: 'startWorkflow', workflowType: 'EvaluateAlexNet', workflowId: `${scheduleId}-run`, taskQueue: o['task-queue'] ?? TASK_QUEUE, args: [input] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: catchupWindow as `${number}m` },
      state: { paused: !!o.paused, note: `alexnet schedule-eval for run ${o.run}` },
    });
    console.error(`created schedule ${scheduleId} on ${settings.describe}`);
    console.log(JSON.stringify({ scheduleId, run: o.run, every: o.every, cron: o.cron, catchupWindow, overlap: 'skip' }));
  } finally {
    await connection.close();
  }
}

async function manage(verb: string, rest: string[]): Promise<void> {
  const verbs = ['list', 'describe', 'trigger', 'pause', 'unpause', 'delete'];
  if (!verbs.includes(verb)) throw new UsageError(`unknown schedule-eval action '${verb}': expected one of ${verbs.join(', ')}\n\n${HELP}`);
  const id = verb === 'list' ? undefined : rest[0];
  const flags = verb === 'list' ? rest : rest.slice(1);
  if (verb !== 'list' && (!id || id.startsWith('-'))) throw new UsageError(`alexnet schedule-eval ${verb} needs a SCHEDULE_ID\n\n${HELP}`);
  const o = parse(flags, { ...CONNECTION_FLAGS }, HELP);
  const { client, connection } = await connectClient(o);
  try {
    if (verb === 'list') {
      for await (const s of client.schedule.list()) {
        if (s.action?.type !== 'startWorkflow' || s.action.workflowType !== 'EvaluateAlexNet') continue;
        console.log(JSON.stringify({ scheduleId: s.scheduleId, paused: s.state.paused, note: s.state.note, nextRun: s.info.nextActionTimes[0]?.toISOString() }));
      }
      return;
    }
    const handle = client.schedule.getHandle(id!);
    try {
      if (verb === 'describe') {
        const d = await handle.describe();
        console.log(JSON.stringify({
          scheduleId: d.scheduleId, paused: d.state.paused, spec: d.spec, overlap: d.policies.overlap, catchupWindowMs: d.policies.catchupWindow,
          recentRuns: d.info.recentActions.map((a) => ({ scheduledAt: a.scheduledAt.toISOString(), workflowId: a.action.workflow.workflowId })),
          nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()),
        }, null, 2));
      } else if (verb === 'trigger') await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
      else if (verb === 'pause') await handle.pause('paused by alexnet schedule-eval');
      else if (verb === 'unpause') await handle.unpause('unpaused by alexnet schedule-eval');
      else await handle.delete();
      if (verb !== 'describe') console.log(JSON.stringify({ scheduleId: id, done: verb }));
    } catch (e) {
      if (e instanceof ScheduleNotFoundError) throw new UsageError(`no schedule '${id}' (alexnet schedule-eval list shows them)`);
      throw e;
    }
  } finally {
    await connection.close();
  }
}
