// alexnet lr | pause | resume | stop <workflowId>: commands to a running TrainAlexNet, sent
// as Temporal Updates (not signals), so each answers: what it returns is printed as one
// JSON line; a value the workflow's validator refuses (lr not in (0, 10]) prints the reason
// on stderr and exits 1, and nothing changes. The same updates from the official CLI:
//   temporal workflow update execute --workflow-id ID --name setLearningRate --input 0.001
import { WorkflowUpdateFailedError } from '@temporalio/client';

import type { ControlResult, SetLearningRateResult } from '../../common/contract';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectClient } from '../temporal-connection';
import { helpFirst, parse, UsageError } from './args';

const HELP = `usage: alexnet lr <workflowId> <lr> [connection flags]
       alexnet pause|resume|stop <workflowId> [connection flags]

Commands to a running TrainAlexNet, as Temporal Updates; each prints the answer as JSON:
  lr       set the learning rate from the next epoch on (0 < lr <= 10; the plateau and
           step policies go on from it): {"lr":...,"policy":{"type":...,"lr":...,"history":[...],...}}
  pause    stop training at the next batch boundary with a checkpoint; answers once the
           run is paused: {"phase":"paused"} (during a validation: when it is done;
           "stopping"/"done" if a stop or the end came first; while preparing the
           dataset: "preparing" at once, and the run pauses before its first epoch)
  resume   continue from the checkpoint: {"phase":"training"}
  stop     end the run: the epoch checkpoints, the checkpoint is validated, the run ends
           with stoppedBy "signal": {"phase":"stopping"}
A refused value (lr -1) prints the workflow's reason and exits 1. The signals of the same
names (temporal workflow signal --name pause ...) still work but answer nothing.

${CONNECTION_HELP}`;

type Command = 'lr' | 'pause' | 'resume' | 'stop';

async function control(command: Command, argv: string[]): Promise<void> {
  const positionals = command === 'lr' ? 2 : 1;
  helpFirst(argv, HELP);
  const given = argv.slice(0, positionals);
  // The LR may be negative (-1): positionals are taken by place, before the flags.
  if (given.length < positionals || given[0].startsWith('-')) throw new UsageError(`alexnet ${command} needs ${command === 'lr' ? '<workflowId> <lr>' : '<workflowId>'}\n\n${HELP}`);
  const o = parse(argv.slice(positionals), { ...CONNECTION_FLAGS }, HELP);
  const [workflowId, lrText] = given;
  let lr: number | undefined;
  if (command === 'lr') {
    lr = Number(lrText);
    if (lrText.trim() === '' || Number.isNaN(lr)) throw new UsageError(`alexnet lr: '${lrText}' is not a number\n\n${HELP}`);
  }
  const { client, connection } = await connectClient(o);
  try {
    const handle = client.workflow.getHandle(workflowId);
    let result: SetLearningRateResult | ControlResult;
    try {
      result = command === 'lr'
        ? await handle.executeUpdate<SetLearningRateResult, [number]>('setLearningRate', { args: [lr!] })
        : await handle.executeUpdate<ControlResult, []>(command);
    } catch (e) {
      if (e instanceof WorkflowUpdateFailedError) {
        const err = new Error(`${workflowId} refused ${command === 'lr' ? `lr ${lrText}` : command}: ${e.cause?.message ?? e.message}`);
        err.name = 'Rejected';
        throw err;
      }
      throw e;
    }
    console.log(JSON.stringify(result));
  } finally {
    await connection.close();
  }
}

export const lr = (argv: string[]) => control('lr', argv);
export const pause = (argv: string[]) => control('pause', argv);
export const resume = (argv: string[]) => control('resume', argv);
export const stop = (argv: string[]) => control('stop', argv);
