// alexnet tensorboard --store URI --run ID: prints the command that shows a training
// run's curves in TensorBoard (its event files under runs/<run>/tensorboard/).
import { fileURLToPath } from 'url';

import { openStore, S3Store, type ObjectStore } from '../../activities/store';
import { runKeys } from '../../common/store-layout';
import { parse, required } from './args';

const HELP = `usage: alexnet tensorboard --store URI --run RUN_ID

Prints, on one line, the command that shows the run's TensorBoard event files
(runs/RUN_ID/tensorboard/ in the store: train/loss, train/lr, train/images_per_second,
val/top1_error, val/top5_error, checkpoint/seconds, conv1's kernels each epoch), e.g.

  tensorboard --logdir /data/store/runs/fm1/tensorboard
  S3_ENDPOINT=http://127.0.0.1:9000 tensorboard --logdir s3://alexnet/runs/fm1/tensorboard

TensorBoard polls the folder: curves grow as the run checkpoints. Run it as it is, or
add flags (--port 6006, --bind_all). It needs pip's tensorboard, and boto3 for an S3
store ('pip install tensorboard boto3'). On S3 it reads the store's endpoint from
S3_ENDPOINT (printed: the store's own, from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL)
and the credentials and region from the standard AWS chain, as the store does; keys are
never printed.`;

export async function tensorboard(argv: string[]): Promise<void> {
  const o = parse(argv, { store: { type: 'string' }, run: { type: 'string' } }, HELP);
  const store = openStore(required(o.store, 'store', HELP));
  const runId = required(o.run, 'run', HELP);
  const folder = runKeys(runId).tensorboard;
  const env = store instanceof S3Store ? await s3Endpoint(store) : undefined;
  const logdir = store instanceof S3Store ? `${store.uri}/${folder}` : `${fileURLToPath(store.uri)}/${folder}`;
  await checkRun(store, runId, folder);
  console.log([...(env ? [`S3_ENDPOINT=${shellQuote(env)}`] : []), 'tensorboard', '--logdir', shellQuote(logdir.replace(/\/$/, ''))].join(' '));
}

// The endpoint the store itself uses (its client's: AWS_ENDPOINT_URL_S3, then
// AWS_ENDPOINT_URL), for TensorBoard's S3 support (boto3), which takes it from
// S3_ENDPOINT; none for AWS itself. Never credentials: the client's endpoint keeps none.
async function s3Endpoint(store: S3Store): Promise<string | undefined> {
  if (!store.client.config.isCustomEndpoint || !store.client.config.endpoint) return undefined;
  const e = await store.client.config.endpoint();
  return `${e.protocol}//${e.hostname}${e.port ? `:${e.port}` : ''}${e.path === '/' ? '' : e.path}`;
}

// A run with no event files yet still gets its command (TensorBoard waits for them); a
// run the store does not know is most likely a mistyped id or store.
async function checkRun(store: ObjectStore, runId: string, folder: string): Promise<void> {
  for await (const object of store.list(folder)) {
    if (object.key.includes('tfevents')) return;
  }
  if (await store.head(runKeys(runId).latest)) {
    console.error(`alexnet: run ${runId} has no TensorBoard event files yet in ${store.uri}: they come with its first checkpoint (runs written before they existed have none)`);
    return;
  }
  const err = new Error(`${store.uri} has no run '${runId}' (no ${runKeys(runId).latest}): check --run and --store`);
  err.name = 'RunNotFound';
  throw err;
}

// One word for sh: as it is when it holds nothing the shell would interpret.
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
