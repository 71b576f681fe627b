// The evaluation report's renderings: the paper's Table 1 row from the report's numbers,
// report.json with the per-epoch history, self-contained HTML with one SVG plot per chart,
// escaping of class names from user data, and the edge cases (no training metrics, one
// epoch, more classes than a confusion table can show).
import test from 'ava';

import { renderReport, reportHistory } from '../activities/report-render';
import type { EpochMetrics, EvaluationReport } from '../common/contract';
import { sampleMetrics, sampleReport } from '../scripts/render-sample-report';

function makeReport(classNames: string[], over: Partial<EvaluationReport> = {}): EvaluationReport {
  const n = classNames.length;
  const confusion = classNames.map((_, t) => classNames.map((__, p) => (t === p ? 90 : p === (t + 1) % n ? 10 : 0)));
  return {
    runId: 'run-a', checkpointKey: 'runs/run-a/checkpoints/e2-b781.safetensors', epoch: 2, batch: 781,
    model: 'alexnet-32', dataset: 'fashion-mnist', split: 'val', crops: 10,
    images: 100 * n, shards: 3, loss: 0.31234,
    top1Error: 0.1234, top5Error: 0.0456, top1Accuracy: 0.8766, top5Accuracy: 0.9544,
    perClass: classNames.map((name, index) => ({ index, name, images: 100, top1Accuracy: 0.9, top5Accuracy: 1 })),
    confusion: n <= 100 ? confusion : undefined,
    imagesPerSecond: 1234.4, seconds: 8.1, createdAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

function makeMetrics(epochs: number, withValidation = true): EpochMetrics[] {
  return Array.from({ length: epochs }, (_, epoch) => ({
    kind: 'epoch' as const, epoch, lr: epoch < 2 ? 0.01 : 0.001,
    train: {
      epoch, batches: 10, batchesThisAttempt: 10, resumedAt: 0, meanLoss: 2 - 0.3 * epoch, recentLoss: 1.9 - 0.3 * epoch,
      checkpointKey: `k${epoch}`, imagesPerSecond: 500 + epoch, nativeSeconds: 1, seconds: 2, stalled: false, warnings: [],
    },
    validation: withValidation
      ? { epoch, split: 'val', images: 1000, loss: 2.1 - 0.3 * epoch, top1Error: 0.5 - 0.05 * epoch, top5Error: 0.2 - 0.02 * epoch, seconds: 1 }
      : undefined,
  }));
}

const TEN = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const svgCount = (html: string) => html.match(/<svg\b/g)?.length ?? 0;

test('report: the markdown\'s Table-1 row carries the report\'s error rates as percentages with one decimal', async (t) => {
  const { markdown } = await renderReport(makeReport(TEN), makeMetrics(3));
  t.true(markdown.includes('| Model | Top-1 error (val) | Top-5 error (val) |\n|---|---:|---:|\n| alexnet-32 (10-crop) | 12.3% | 4.6% |'));
  const centre = await renderReport(makeReport(TEN, { crops: 1, split: 'test', top1Error: 0.0851, top5Error: 0.0049 }), []);
  t.true(centre.markdown.includes('| Model | Top-1 error (test) | Top-5 error (test) |'));
  t.true(centre.markdown.includes('| alexnet-32 (centre crop) | 8.5% | 0.5% |'));
  t.true(centre.markdown.includes('centre crop'));
});

test('report: the markdown says what was evaluated and lists accuracy, loss, throughput and every class', async (t) => {
  const { markdown } = await renderReport(makeReport(TEN), makeMetrics(3));
  t.true(markdown.startsWith('# AlexNet evaluation: run-a\n'));
  t.true(markdown.includes('runs/run-a/checkpoints/e2-b781.safetensors (epoch 3, after 781 of its batches)'));
  t.true(markdown.includes('10-crop (the paper\'s four corners + centre, and their reflections, softmax averaged)'));
  t.true(markdown.includes('fashion-mnist, split val: 1,000 images'));
  t.true(markdown.includes('87.66%') && markdown.includes('95.44%'));
  t.true(markdown.includes('0.3123'));
  t.true(markdown.includes('1,234 images/s'));
  t.true(markdown.includes('| 9 | Ankle boot | 100 | 90.00% | 100.00% |'));
  // The confusion table: a header row with every class, then one row per true class.
  t.true(markdown.includes('| true \\\\ predicted | T-shirt/top | Trouser |'));
  t.true(markdown.includes('| Ankle boot | 10 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 90 |'));
  // History: epochs counted from 1, the LR as a plain number.
  t.true(markdown.includes('| Epoch | LR | Train loss | Val loss | Val top-1 err | Val top-5 err | Images/s |'));
  t.true(markdown.includes('| 3 | 0.001 | 1.4000 | 1.5000 | 40.00% | 16.00% | 502 |'));
});

test('report: the json round-trips and its history matches the metrics epoch by epoch', async (t) => {
  const report = makeReport(TEN);
  const metrics = makeMetrics(4);
  const parsed = JSON.parse((await renderReport(report, metrics)).json) as EvaluationReport & { history: unknown[] };
  t.deepEqual(parsed, { ...report, history: parsed.history });
  t.deepEqual(parsed.history, metrics.map((m) => ({
    epoch: m.epoch, lr: m.lr, trainLoss: m.train.meanLoss, valLoss: m.validation?.loss,
    valTop1Error: m.validation?.top1Error, valTop5Error: m.validation?.top5Error, imagesPerSecond: m.train.imagesPerSecond,
  })));
});

test('report: the history keeps the last record of a repeated epoch, in epoch order, with null for missing or non-finite values', (t) => {
  const [e0, e1] = makeMetrics(2);
  const retried = { ...e0, lr: 0.02 };
  const noVal = { ...e1, validation: undefined, train: { ...e1.train, meanLoss: Number.NaN } };
  const history = reportHistory([noVal, e0, retried]);
  t.deepEqual(history.map((h) => [h.epoch, h.lr]), [[0, 0.02], [1, 0.01]]);
  t.deepEqual(history[1], { epoch: 1, lr: 0.01, trainLoss: null, valLoss: null, valTop1Error: null, valTop5Error: null, imagesPerSecond: 501 });
});

test('report: the html has one inline svg per plot and fetches nothing', async (t) => {
  const { html } = await renderReport(makeReport(TEN), makeMetrics(5));
  t.is(svgCount(html), 5);
  for (const id of ['loss', 'error', 'lr', 'per-class', 'confusion']) t.true(html.includes(`<figure id="${id}">`), id);
  t.true(html.startsWith('<!DOCTYPE html>'));
  // The only URLs are the SVG namespaces; no scripts, stylesheets, images or fonts from elsewhere.
  const withoutNamespaces = html.replace(/xmlns(:\w+)?="http:\/\/www\.w3\.org\/[^"]*"/g, '');
  t.notRegex(withoutNamespaces, /https?:\/\//);
  t.notRegex(html, /<script|<link|<img|<iframe|\ssrc=|@import|url\((?!#)/i);
  // The plots carry their data: the axis titles and the series names are in the SVG text.
  t.true(html.includes('validation loss') && html.includes('top-5 error') && html.includes('learning rate (log scale)'));
  t.true(html.includes('<table class="table1">'));
  t.true(html.includes('<td>alexnet-32 (10-crop)</td><td class="num">12.3%</td><td class="num">4.6%</td>'));
});

test('report: a class name like <script>alert(1)</script> is escaped in the html and the markdown', async (t) => {
  const names = ['<script>alert(1)</script>', 'a|b "quoted" & \'single\'', ...TEN.slice(2)];
  const { html, markdown, json } = await renderReport(makeReport(names, { runId: 'run<img src=x>' }), makeMetrics(2));
  t.false(html.includes('<script'));
  t.false(html.includes('<img'));
  t.true(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  t.true(html.includes('a|b &quot;quoted&quot; &amp; &#39;single&#39;'));
  t.true(markdown.includes('\\<script\\>alert(1)\\</script\\>'));
  t.false(/[^\\]<script/.test(markdown));
  // The pipe in a name does not add a column: every per-class row still has five cells.
  const row = markdown.split('\n').find((l) => l.startsWith('| 1 | a'));
  t.is(row?.replace(/\\\|/g, '').split('|').length, 7);
  t.is((JSON.parse(json) as EvaluationReport).perClass[0].name, names[0]);
});

test('report: with no training metrics the report says so and draws only the per-class and confusion plots', async (t) => {
  const { markdown, html, json } = await renderReport(makeReport(TEN), []);
  t.true(markdown.includes('No training metrics'));
  t.false(markdown.includes('| Epoch |'));
  t.true(markdown.includes('| alexnet-32 (10-crop) | 12.3% | 4.6% |'));
  t.true(html.includes('No training metrics'));
  t.is(svgCount(html), 2);
  t.false(html.includes('<figure id="loss">'));
  t.deepEqual((JSON.parse(json) as { history: unknown[] }).history, []);
});

test('report: a single epoch, even one without validation, still renders every history plot', async (t) => {
  const one = await renderReport(makeReport(TEN), makeMetrics(1));
  t.is(svgCount(one.html), 5);
  t.true(one.markdown.includes('| 1 | 0.01 | 2.0000 | 2.1000 | 50.00% | 20.00% | 500 |'));
  const unvalidated = await renderReport(makeReport(TEN), makeMetrics(1, false));
  t.is(svgCount(unvalidated.html), 5);
  t.true(unvalidated.markdown.includes('| 1 | 0.01 | 2.0000 | – | – | – | 500 |'));
  t.is((JSON.parse(unvalidated.json) as { history: { valLoss: unknown }[] }).history[0].valLoss, null);
});

test('report: more than 20 classes leave the confusion table to report.json but keep the heatmap', async (t) => {
  const names = Array.from({ length: 30 }, (_, i) => `class-${i}`);
  const { markdown, html, json } = await renderReport(makeReport(names), makeMetrics(2));
  t.true(markdown.includes('The confusion matrix (30 × 30'));
  t.true(markdown.includes('it is in report.json'));
  t.false(markdown.includes('true \\\\ predicted'));
  t.false(html.includes('true \\ predicted'));
  t.true(html.includes('<figure id="confusion">'));
  t.is(svgCount(html), 5);
  t.is((JSON.parse(json) as EvaluationReport).confusion?.length, 30);
  // Without a confusion matrix at all (over 100 classes), no heatmap either.
  const many = await renderReport(makeReport(Array.from({ length: 120 }, (_, i) => `c${i}`)), []);
  t.true(many.markdown.includes('No confusion matrix was recorded'));
  t.is(svgCount(many.html), 1);
});

test('report: the sample script\'s report (10 classes, 12 epochs) renders with all five plots', async (t) => {
  const { json, markdown, html } = await renderReport(sampleReport(), sampleMetrics());
  t.is((JSON.parse(json) as { history: unknown[] }).history.length, 12);
  t.is(svgCount(html), 5);
  t.true(markdown.includes('| 12 | 0.0001 |'));
});
