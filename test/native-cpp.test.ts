// The standalone C++ tests (the same executables the GPU check runs): every layer's
// backward against finite differences, the im2col convolution against a direct loop,
// whole-network gradients, determinism and exact resume.
import test from 'ava';
import { spawnSync } from 'child_process';
import * as path from 'path';

import { ROOT } from './helpers';

for (const exe of ['test_layers', 'test_network', 'test_augment']) {
  test(`native ${exe}: every check passes`, (t) => {
    const r = spawnSync(path.join(ROOT, 'native', 'build', exe), { encoding: 'utf8' });
    t.is(r.status, 0, `${exe} failed:\n${r.stderr}\n${r.stdout}`);
    const summary = /(\d+) passed, (\d+) failed/.exec(r.stdout);
    t.truthy(summary, 'prints a summary line');
    t.true(Number(summary![1]) > 20, `ran its checks (${summary![0]})`);
    t.is(summary![2], '0');
  });
}
