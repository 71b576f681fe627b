// scripts/follow.ts: a progress query answered after the workflow's result must not start
// the progress bar, whose redraw timer would keep `alexnet prepare --wait` (and train, eval)
// from ever exiting. Seen as a hung CLI test in CI.
import test from 'ava';
import { spawnSync } from 'child_process';
import * as path from 'path';

import { REPO_ROOT } from '../scripts/python';

test('follow: a query that answers after the result leaves nothing running, the process exits', (t) => {
  const follow = path.join(REPO_ROOT, 'dist', 'scripts', 'follow.js');
  // The poll fires at 1 s; its query answers at 1.6 s; the result comes at 1.3 s, between.
  const script = `
    const { followPrepare } = require(${JSON.stringify(follow)});
    const later = (ms, v) => new Promise((r) => setTimeout(() => r(v), ms));
    const handle = {
      workflowId: 'fake',
      query: () => later(600, { shardsDone: 1, shardsTotal: 2, imagesDone: 10, skipped: 0, phase: 'preprocessing' }),
      result: () => later(1300, { done: true }),
    };
    followPrepare(handle).then((r) => console.log(JSON.stringify(r)));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  t.is(r.error, undefined, 'the process exits by itself (it was killed after 20 s otherwise)');
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), '{"done":true}');
});
