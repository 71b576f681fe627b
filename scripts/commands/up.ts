// alexnet up: starts the local Temporal dev server and MinIO in the background (they keep
// running after this exits), records them in <dir>/services.json for `alexnet down`,
// makes sure MinIO has a bucket for the pipeline's store, and prints how to point the
// pipeline at them. Running it again starts only what is not running.
import * as fs from 'fs';
import * as path from 'path';

import { S3Client } from '@aws-sdk/client-s3';

import { ensureBucket } from '../../activities/store/bucket';
import { parseS3Uri } from '../../activities/store/s3';
import { isServiceProcess, readMinioCredentials, startMinio, startTemporal } from '../../infra/services';
import { intOption, parse, UsageError, writeFileAtomic } from './args';

export const DEFAULT_DIR = '.data/services';
export const DEFAULT_BUCKET = 'alexnet';
const HELP = `usage: alexnet up [--dir ${DEFAULT_DIR}] [--temporal-port 7233] [--ui-port 8233] [--minio-port 9000] [--console-port 9001]
                  [--bucket ${DEFAULT_BUCKET}]

Starts the Temporal dev server (state in <dir>/temporal.sqlite, kept across restarts) and
MinIO (objects under <dir>/data, root keys in <dir>/minio.env, mode 0600) in the
background, and creates the bucket --bucket on MinIO unless it is there: the pipeline's
store is then s3://${DEFAULT_BUCKET}/<prefix>. Logs: <dir>/temporal.log, <dir>/minio.log.
Stop them with \`alexnet down\`. Needs the binaries from \`bash infra/install-services.sh\`.`;

export interface ServicesState {
  temporal?: { pid: number; address: string; uiUrl: string; namespace: string; dbFile: string; logFile: string };
  minio?: { pid: number; endpoint: string; consoleUrl: string; region: string; credentialsFile: string; logFile: string };
}

export function stateFile(dir: string): string {
  return path.join(dir, 'services.json');
}

export function readState(dir: string): ServicesState {
  try {
    return JSON.parse(fs.readFileSync(stateFile(dir), 'utf8')) as ServicesState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`${stateFile(dir)}: ${(e as Error).message}`);
  }
}

export async function up(argv: string[]): Promise<void> {
  const o = parse(argv, { dir: { type: 'string' }, 'temporal-port': { type: 'string' }, 'ui-port': { type: 'string' },
    'minio-port': { type: 'string' }, 'console-port': { type: 'string' }, bucket: { type: 'string' } }, HELP);
  const bucket = o.bucket ?? DEFAULT_BUCKET;
  const store = `s3://${bucket}/pipeline`;
  try {
    parseS3Uri(store);
  } catch (e) {
    throw new UsageError(`--bucket ${bucket}: ${(e as Error).message}`);
  }
  const dir = path.resolve(o.dir ?? DEFAULT_DIR);
  const state = readState(dir);
  // Saved after each start, so a failure of the second still leaves the first stoppable.
  const save = () => writeFileAtomic(stateFile(dir), Buffer.from(`${JSON.stringify(state, null, 2)}\n`));

  if (state.temporal && isServiceProcess(state.temporal.pid, 'temporal')) {
    console.log(`temporal already running (pid ${state.temporal.pid})`);
  } else {
    const t = await startTemporal({ dir, detached: true, port: intOption(o['temporal-port'], 'temporal-port', 7233),
      uiPort: intOption(o['ui-port'], 'ui-port', 8233) });
    state.temporal = { pid: t.pid, address: t.address, uiUrl: t.uiUrl, namespace: t.namespace, dbFile: t.dbFile, logFile: t.logFile };
    save();
    console.log(`started temporal (pid ${t.pid})`);
  }
  if (state.minio && isServiceProcess(state.minio.pid, 'minio')) {
    console.log(`minio already running (pid ${state.minio.pid})`);
  } else {
    const m = await startMinio({ dir, detached: true, port: intOption(o['minio-port'], 'minio-port', 9000),
      consolePort: intOption(o['console-port'], 'console-port', 9001) });
    state.minio = { pid: m.pid, endpoint: m.endpoint, consoleUrl: m.consoleUrl, region: m.region, credentialsFile: m.credentialsFile, logFile: m.logFile };
    save();
    console.log(`started minio (pid ${m.pid})`);
  }

  const { temporal: t, minio: m } = state as Required<ServicesState>;
  // With MinIO's own root keys, whatever AWS_* this shell has.
  const client = new S3Client({ endpoint: m.endpoint, region: m.region, forcePathStyle: true, credentials: readMinioCredentials(m.credentialsFile) });
  let made;
  try {
    made = await ensureBucket(store, { client });
  } finally {
    client.destroy();
  }
  // Short paths inside the current folder, absolute ones elsewhere (never '../../tmp/...').
  const rel = (p: string) => {
    const r = path.relative(process.cwd(), p);
    return r && !r.startsWith('..') ? r : p;
  };
  console.log(`
temporal  ${t.address}, namespace ${t.namespace}, UI ${t.uiUrl}, log ${rel(t.logFile)}
minio     ${m.endpoint}, console ${m.consoleUrl}, log ${rel(m.logFile)}
bucket    ${bucket} on minio (${made.state === 'created' ? 'created' : 'already there'})

To use them (the AWS keys are in ${rel(m.credentialsFile)}, not printed):
  export TEMPORAL_ADDRESS=${t.address} AWS_ENDPOINT_URL=${m.endpoint} AWS_REGION=${m.region}
  set -a; . ${rel(m.credentialsFile)}; set +a
and give the commands a store in that bucket (any prefix), e.g.:
  --store ${store}

Stop them with: alexnet down${o.dir ? ` --dir ${o.dir}` : ''}`);
}
