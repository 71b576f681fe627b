// alexnet status <workflowId>: a TrainAlexNet run's progress query, with the running
// epoch's current batch (from its heartbeat), as pretty-printed JSON.
import type { TrainProgress } from '../../common/contract';
import { currentBatch, settleAll } from '../follow';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectClient } from '../temporal-connection';
import { helpFirst, parse, UsageError } from './args';

const HELP = `usage: alexnet status <workflowId> [connection flags]

Prints a TrainAlexNet run's progress (phase, epoch, learning rate, the last epoch and
validation) and the running epoch's current batch, as JSON.

${CONNECTION_HELP}`;

export async function status(argv: string[]): Promise<void> {
  helpFirst(argv, HELP);
  const [workflowId, ...rest] = argv;
  if (!workflowId || workflowId.startsWith('-')) throw new UsageError(HELP);
  const o = parse(rest, { ...CONNECTION_FLAGS }, HELP);
  const { client, connection } = await connectClient(o);
  try {
    const handle = client.workflow.getHandle(workflowId);
    // Both settled before the connection closes (Promise.all would leave one running).
    const [progress, current] = await settleAll<[TrainProgress, Awaited<ReturnType<typeof currentBatch>>]>([handle.query<TrainProgress>('progress'), currentBatch(handle)]);
    console.log(JSON.stringify({ ...progress, currentBatch: current }, null, 2));
  } finally {
    await connection.close();
  }
}
