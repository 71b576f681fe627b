// The evaluation report's plots: vega-lite specs compiled to vega and rendered to SVG
// strings headlessly (`View.toSVG()`, renderer 'none': no canvas, no DOM, no network; the
// data is inline). vega and vega-lite are pinned to 5.x: 6.x is ESM with a top-level await
// (vega-canvas), which `require` on Node 20 refuses. vega escapes every text and attribute
// it writes, so class names from user data can go into the specs as they are.
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

import type { EvaluationReport } from '../common/contract';

// One epoch of the run's training history, as report.json carries it. null where the epoch
// had no validation (or a value was not finite: JSON has no NaN).
export interface HistoryEntry {
  epoch: number;            // 0-based, as in metrics.jsonl
  lr: number;
  trainLoss: number | null; // train.meanLoss
  valLoss: number | null;
  valTop1Error: number | null;
  valTop5Error: number | null;
  imagesPerSecond: number | null;
}

export interface Plot {
  id: string;       // unique within a report: prefixes the SVG's own ids
  title: string;
  svg: string;
}

const WIDTH = 560;
const HEIGHT = 240;
const BAR_LABEL_LIMIT = 40;      // more classes than this: bars by index, without names
const HEATMAP_TEXT_LIMIT = 20;   // more classes than this: no counts written in the cells

async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

// Several SVGs share one HTML document: keep any ids vega writes (clip paths, gradients)
// from colliding.
function namespaceIds(svg: string, prefix: string): string {
  return svg.replace(/\bid="([^"]*)"/g, `id="${prefix}-$1"`).replace(/url\(#([^)]*)\)/g, `url(#${prefix}-$1)`);
}

// Axis labels must be unique per class: a repeated name gets its index.
export function classLabels(report: EvaluationReport, count: number): string[] {
  const names = Array.from({ length: count }, (_, i) => report.perClass.find((c) => c.index === i)?.name ?? `class ${i}`);
  const seen = new Map<string, number>();
  for (const n of names) seen.set(n, (seen.get(n) ?? 0) + 1);
  return names.map((n, i) => ((seen.get(n) ?? 0) > 1 ? `${n} (#${i})` : n));
}

type Series = { name: string; value: (h: HistoryEntry) => number | null };

// One line (with points, so a single epoch still shows) per series over 1-based epochs;
// non-finite values (a diverged loss, an epoch without validation) are left out.
function epochLines(title: string, history: HistoryEntry[], series: Series[], y: { title: string; percent?: boolean; log?: boolean }): TopLevelSpec {
  const rows = history.flatMap((h) => series.map((s) => ({ epoch: h.epoch + 1, series: s.name, value: s.value(h) })))
    .filter((r) => typeof r.value === 'number' && Number.isFinite(r.value) && (!y.log || r.value > 0));
  const epochs = history.map((h) => h.epoch + 1);
  const lo = Math.min(...epochs) - (epochs.length === 1 ? 1 : 0);
  const hi = Math.max(...epochs) + (epochs.length === 1 ? 1 : 0);
  // Ticks on whole epochs: listed while there are few, else at least one epoch apart.
  const epochTicks = hi - lo <= 30 ? { values: Array.from({ length: hi - lo + 1 }, (_, i) => lo + i) } : { tickMinStep: 1 };
  const values = rows.map((r) => r.value as number);
  const decades = y.log && values.length ? logDomain(values) : undefined;
  const yScale = decades ? { type: 'log' as const, domain: [decades[0], decades[decades.length - 1]] } : { zero: !!y.percent };
  const yAxis = y.percent ? { format: '.0%' } : decades ? { format: '.0e', values: decades } : {};
  return {
    title, width: WIDTH, height: HEIGHT, background: 'white',
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', scale: { domain: [lo, hi], nice: false }, axis: { ...epochTicks, format: 'd' } },
      y: { field: 'value', type: 'quantitative', title: y.title, scale: yScale, axis: yAxis },
      color: { field: 'series', type: 'nominal', title: null, scale: { domain: series.map((s) => s.name) }, legend: { orient: 'top' } },
    },
  };
}

// A log axis over whole decades with a tick at each; when every value sits in one decade
// (a constant LR), a decade either side, so the line runs through the middle.
function logDomain(values: number[]): number[] {
  let lo = Math.floor(Math.log10(Math.min(...values)));
  let hi = Math.ceil(Math.log10(Math.max(...values)));
  if (hi - lo < 2 && lo === Math.floor(Math.log10(Math.max(...values)))) [lo, hi] = [lo - 1, lo + 1];
  return Array.from({ length: hi - lo + 1 }, (_, i) => Number((10 ** (lo + i)).toPrecision(1)));
}

function perClassBars(report: EvaluationReport): TopLevelSpec {
  const labels = classLabels(report, Math.max(0, ...report.perClass.map((c) => c.index + 1)));
  const rows = report.perClass.map((c) => ({ index: c.index, label: labels[c.index], top1: c.top1Accuracy, images: c.images }));
  const accuracy = { field: 'top1', type: 'quantitative' as const, title: 'top-1 accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } };
  if (rows.length <= BAR_LABEL_LIMIT) {
    return {
      title: 'Per-class top-1 accuracy', width: WIDTH, height: { step: 18 }, background: 'white',
      data: { values: rows }, mark: 'bar',
      encoding: { y: { field: 'label', type: 'nominal', title: 'class', sort: { field: 'index', op: 'min' }, axis: { labelLimit: 200 } }, x: accuracy },
    };
  }
  return {
    title: 'Per-class top-1 accuracy', width: 800, height: HEIGHT, background: 'white',
    data: { values: rows }, mark: 'bar',
    encoding: { x: { field: 'index', type: 'ordinal', title: `class index (0 to ${rows.length - 1})`, axis: { labels: false, ticks: false } }, y: accuracy },
  };
}

// Rows are true classes, columns predictions; the colour is the share of the true class's
// images, so classes of different sizes compare.
function confusionHeatmap(report: EvaluationReport, confusion: number[][]): TopLevelSpec {
  const n = confusion.length;
  const named = n <= HEATMAP_TEXT_LIMIT;
  const labels = named ? classLabels(report, n) : confusion.map((_, i) => String(i));
  const rows = confusion.flatMap((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((count, p) => ({ t, p, trueClass: labels[t], predicted: labels[p], count, share: total ? count / total : 0 }));
  });
  const size = named ? { step: 30 } : Math.min(800, Math.max(300, n * 8));
  const axis = { labelLimit: 160, labelOverlap: !named };
  const encoding = {
    x: { field: 'predicted', type: 'ordinal' as const, title: 'predicted class', sort: { field: 'p', op: 'min' as const }, axis: { ...axis, labelAngle: -45 } },
    y: { field: 'trueClass', type: 'ordinal' as const, title: 'true class', sort: { field: 't', op: 'min' as const }, axis },
  };
  const cells = { mark: { type: 'rect' as const }, encoding: { color: { field: 'share', type: 'quantitative' as const, title: 'share of true class', scale: { domain: [0, 1], range: ['#f7fbff', '#08306b'] } } } };
  const counts = {
    mark: { type: 'text' as const, fontSize: 10 },
    encoding: {
      text: { field: 'count', type: 'quantitative' as const },
      color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: 'black' },
    },
  };
  return {
    title: 'Confusion matrix', width: size, height: size, background: 'white',
    data: { values: rows }, encoding,
    layer: named ? [cells, counts] : [cells],
  } as TopLevelSpec;
}

// The report's plots in the order they appear; the history plots only with history.
export async function renderPlots(report: EvaluationReport, history: HistoryEntry[]): Promise<Plot[]> {
  const specs: { id: string; title: string; spec: TopLevelSpec }[] = [];
  if (history.length > 0) {
    specs.push(
      { id: 'loss', title: 'Training and validation loss per epoch', spec: epochLines('Loss per epoch', history, [
        { name: 'training loss', value: (h) => h.trainLoss },
        { name: 'validation loss', value: (h) => h.valLoss },
      ], { title: 'mean cross-entropy' }) },
      { id: 'error', title: 'Validation top-1 and top-5 error per epoch', spec: epochLines('Validation error per epoch', history, [
        { name: 'top-1 error', value: (h) => h.valTop1Error },
        { name: 'top-5 error', value: (h) => h.valTop5Error },
      ], { title: 'error rate', percent: true }) },
      { id: 'lr', title: 'Learning rate per epoch (log scale)', spec: epochLines('Learning rate per epoch', history, [
        { name: 'learning rate', value: (h) => h.lr },
      ], { title: 'learning rate (log scale)', log: true }) },
    );
  }
  if (report.perClass.length > 0) specs.push({ id: 'per-class', title: 'Per-class top-1 accuracy', spec: perClassBars(report) });
  if (report.confusion && report.confusion.length > 0) {
    specs.push({ id: 'confusion', title: 'Confusion matrix', spec: confusionHeatmap(report, report.confusion) });
  }
  const plots: Plot[] = [];
  for (const s of specs) plots.push({ id: s.id, title: s.title, svg: namespaceIds(await toSvg(s.spec), `plot-${s.id}`) });
  return plots;
}
