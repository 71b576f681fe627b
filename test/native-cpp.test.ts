// The standalone C++ tests (the same executables the GPU check runs): every layer's
// backward against finite differences, the convolutions (im2col per image and chunked,
// Winograd) against a direct loop and each other, whole-network gradients, determinism and
// exact resume, and the bf16 GEMM against a double product (on a CPU with AVX512_BF16;
// test_gemm says when it skips).
import test from 'ava';
import { spawnSync } from 'child_process';
import * as path from 'path';

import { ROOT } from './helpers';

for (const exe of ['test_layers', 'test_network', 'test_augment', 'test_gemm']) {
  test(`native ${exe}: every check passes`, (t) => {
    const r = spawnSync(path.join(ROOT, 'native', 'build', exe), { encoding: 'utf8' });
    t.is(r.status, 0, `${exe} failed:\n${r.stderr}\n${r.stdout}`);
    const summary = /(\d+) passed, (\d+) failed/.exec(r.stdout);
    t.truthy(summary, 'prints a summary line');
    const skipped = /^skipped: this CPU has no AVX512_BF16/m.test(r.stdout);
    if (skipped) t.log(r.stdout.trim());
    t.true(Number(summary![1]) > (skipped ? 0 : 20), `ran its checks (${summary![0]})`);
    t.is(summary![2], '0');
  });
}
