// `alexnet bench --preprocess` end to end on a few images: every contender (ours per
// kernel, Pillow per filter, 1 and 2 processes, the worker-shaped run) ran and measured.
// The numbers themselves belong to the benchmark, not to a test.
import test from 'ava';
import { spawnSync } from 'child_process';
import * as path from 'path';

import { lastJsonLine, REPO_ROOT } from '../scripts/python';

test('bench --preprocess runs ours and Pillow, pinned to cores where taskset exists', (t) => {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'dist', 'scripts', 'alexnet.js'), 'bench', '--preprocess', '--images', '4', '--size', '64', '--rounds', '1', '--json'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const out = lastJsonLine<Record<string, number | boolean | string>>(r.stdout);
  t.is(out.images, 4);
  t.is(out.pinned, spawnSync('taskset', ['-V']).status === 0);
  const cores = out.cores as number;
  const names = [1, cores].flatMap((n) => [`ours_lanczos3_${n}`, `ours_linear_${n}`, `pillow_lanczos_${n}`, `pillow_bilinear_${n}`]).concat('ours_worker');
  for (const name of names) {
    for (const unit of ['img_s', 'img_per_cpu_s']) {
      const v = out[`${name}_${unit}`];
      t.true(typeof v === 'number' && Number.isFinite(v) && v > 0, `${name}_${unit} = ${v}`);
    }
  }
  t.regex(r.stderr, /1 process on 1 core: ours lanczos3 [\d.]+ img\/s vs pillow lanczos [\d.]+/);
});
