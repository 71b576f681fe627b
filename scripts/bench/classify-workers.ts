// ClassifyImages throughput with 1 and 2 worker processes on the demo's trained run
// (npm run demo leaves it under .data/demo): node dist/scripts/bench/classify-workers.js [DEMO_DIR]
import { spawn, type ChildProcess } from 'child_process';
import * as path from 'path';

import type { ClassifyImagesResult } from '../../common/contract';
import { startMinio, startTemporal, useMinioCredentials } from '../../infra/services';
import { connectClient } from '../temporal-connection';
import { DIST_DIR } from '../paths';

async function run(): Promise<void> {
  const dir = path.resolve(process.argv[2] ?? '.data/demo');
  const temporal = await startTemporal({ dir: path.join(dir, 'temporal-bench') });
  const minio = await startMinio({ dir: path.join(dir, 'minio') });
  process.env.TEMPORAL_ADDRESS = temporal.address;
  useMinioCredentials(minio);
  const workers: ChildProcess[] = [];
  const { client, connection } = await connectClient({});
  try {
    for (const count of [1, 2]) {
      const queue = `classify-bench-${count}`;
      for (let i = 0; i < count; i++) workers.push(spawn(process.execPath, [path.join(DIST_DIR, 'scripts', 'alexnet.js'), 'worker', '--task-queue', queue], { stdio: 'ignore' }));
      const r = await client.workflow.execute('ClassifyImages', {
        taskQueue: queue, workflowId: `classify-bench-${count}-${Date.now()}`,
        args: [{ store: 's3://alexnet-demo', checkpoint: { run: 'demo-fashion-mnist' }, source: path.join(dir, 'fashion-mnist', 'test'), shardSize: 500, maxParallel: 4 }],
      }) as ClassifyImagesResult;
      console.log(`${count} worker process(es): ${r.images} images in ${r.seconds.toFixed(1)} s: ${r.imagesPerSecond.toFixed(0)} images/s`);
      for (const w of workers.splice(0)) w.kill('SIGTERM');
    }
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    await connection.close();
    await minio.stop();
    await temporal.stop();
  }
}

run().catch((e) => {
  console.error(e);
  process.exit(1);
});
