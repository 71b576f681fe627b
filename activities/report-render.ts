// An evaluation report rendered three ways: report.json for machines, report.md and a
// self-contained report.html (inline CSS and SVG plots, nothing fetched, viewable offline)
// for people. Pure: the caller reads the metrics and writes the files.
//
// Epochs: report.json keeps the store's 0-based numbers; the Markdown and HTML count from 1,
// as the CLI does. Every string from the report (class names come from user data) is escaped
// for the format it goes into.
import type { EpochMetrics, EvaluationReport } from '../common/contract';
import { renderPlots, type HistoryEntry, type Plot } from './report-plots';

export interface RenderedReport { json: string; markdown: string; html: string }

const CONFUSION_TABLE_LIMIT = 20;

const finite = (x: number | undefined): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

// One entry per epoch in epoch order; where an epoch was recorded twice (a retried append),
// the later record wins.
export function reportHistory(metrics: EpochMetrics[]): HistoryEntry[] {
  const byEpoch = new Map<number, EpochMetrics>();
  for (const m of metrics) byEpoch.set(m.epoch, m);
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch).map((m) => ({
    epoch: m.epoch,
    lr: m.lr,
    trainLoss: finite(m.train.meanLoss),
    valLoss: finite(m.validation?.loss),
    valTop1Error: finite(m.validation?.top1Error),
    valTop5Error: finite(m.validation?.top5Error),
    imagesPerSecond: finite(m.train.imagesPerSecond),
  }));
}

// --- Formatting ------------------------------------------------------------------------

const DASH = '–';
const pct = (x: number | null, digits = 1) => (x === null || !Number.isFinite(x) ? DASH : `${(100 * x).toFixed(digits)}%`);
const fixed = (x: number | null, digits: number) => (x === null || !Number.isFinite(x) ? DASH : x.toFixed(digits));
const count = (x: number | null) => (x === null || !Number.isFinite(x) ? DASH : Math.round(x).toLocaleString('en-US'));
const lrText = (x: number) => (Number.isFinite(x) ? String(Number(x.toPrecision(3))) : DASH);

const CROPS_TEXT: Record<1 | 10, string> = {
  10: '10-crop (the paper\'s four corners + centre, and their reflections, softmax averaged)',
  1: 'centre crop',
};
const modelLabel = (r: EvaluationReport) => `${r.model} (${r.crops === 10 ? '10-crop' : 'centre crop'})`;

// Markdown: a backslash before every character a table cell or inline markup could take
// (CommonMark renders `\<` as `<`), and no line breaks.
export function escapeMarkdown(s: string): string {
  return s.replace(/[\\`*_[\]<>|~&]/g, (c) => `\\${c}`).replace(/\s*[\r\n]+\s*/g, ' ');
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&#39;' })[c] as string);
}

// --- Content shared by Markdown and HTML -----------------------------------------------
// Cells are plain text (escaped by the writer); the sections differ only in markup.

interface Table { head: string[]; rows: string[][]; align?: ('l' | 'r')[] }

function evaluatedItems(r: EvaluationReport): [string, string][] {
  return [
    ['Run', r.runId],
    ['Checkpoint', `${r.checkpointKey} (epoch ${r.epoch + 1}, after ${count(r.batch)} of its batches)`],
    ['Model', r.model],
    ['Dataset', `${r.dataset}, split ${r.split}: ${count(r.images)} images, each evaluated once, in ${r.shards} shards`],
    ['Crops', CROPS_TEXT[r.crops] ?? `${r.crops} crops`],
    ['Evaluated', r.createdAt],
  ];
}

function table1(r: EvaluationReport): Table {
  return { head: ['Model', `Top-1 error (${r.split})`, `Top-5 error (${r.split})`], rows: [[modelLabel(r), pct(r.top1Error), pct(r.top5Error)]], align: ['l', 'r', 'r'] };
}

function resultItems(r: EvaluationReport): [string, string][] {
  return [
    ['Top-1 accuracy', `${pct(r.top1Accuracy, 2)} (error ${pct(r.top1Error, 2)})`],
    ['Top-5 accuracy', `${pct(r.top5Accuracy, 2)} (error ${pct(r.top5Error, 2)})`],
    ['Mean loss', `${fixed(r.loss, 4)} (cross-entropy of the ${r.crops === 10 ? 'crop-averaged ' : ''}softmax)`],
    ['Throughput', `${count(r.imagesPerSecond)} images/s (${count(r.images)} images in ${fixed(r.seconds, 1)} s)`],
  ];
}

function perClassTable(r: EvaluationReport): Table {
  const rows = [...r.perClass].sort((a, b) => a.index - b.index)
    .map((c) => [String(c.index), c.name, count(c.images), pct(c.top1Accuracy, 2), pct(c.top5Accuracy, 2)]);
  return { head: ['#', 'Class', 'Images', 'Top-1 acc', 'Top-5 acc'], rows, align: ['r', 'l', 'r', 'r', 'r'] };
}

function confusionTable(r: EvaluationReport, confusion: number[][]): Table {
  const names = confusion.map((_, i) => r.perClass.find((c) => c.index === i)?.name ?? `class ${i}`);
  return {
    head: ['true \\ predicted', ...names],
    rows: confusion.map((row, t) => [names[t], ...row.map((n) => count(n))]),
    align: ['l', ...names.map(() => 'r' as const)],
  };
}

function historyTable(history: HistoryEntry[]): Table {
  return {
    head: ['Epoch', 'LR', 'Train loss', 'Val loss', 'Val top-1 err', 'Val top-5 err', 'Images/s'],
    rows: history.map((h) => [String(h.epoch + 1), lrText(h.lr), fixed(h.trainLoss, 4), fixed(h.valLoss, 4), pct(h.valTop1Error, 2), pct(h.valTop5Error, 2), count(h.imagesPerSecond)]),
    align: ['r', 'r', 'r', 'r', 'r', 'r', 'r'],
  };
}

const TITLE = (r: EvaluationReport) => `AlexNet evaluation: ${r.runId}`;
const TABLE1_NOTE = (r: EvaluationReport) => `Error rates on the ${r.split} split, in the form of Table 1 of Krizhevsky et al. (2012).`;
const NO_HISTORY = 'No training metrics: this checkpoint has no training history in the run\'s metrics, so there is no per-epoch table or plot.';
const confusionElsewhere = (n: number) => `The confusion matrix (${n} × ${n}, rows true class, columns predicted) is too large for a table; it is in report.json (\`confusion\`).`;
const EPOCHS_NOTE = 'Epochs counted from 1 (report.json keeps the store\'s 0-based numbers).';
const NO_CONFUSION = 'No confusion matrix was recorded (it is kept for up to 100 classes).';

// --- Markdown ----------------------------------------------------------------------------

function mdTable(t: Table): string {
  const line = (cells: string[]) => `| ${cells.map(escapeMarkdown).join(' | ')} |`;
  const rule = `|${t.head.map((_, i) => (t.align?.[i] === 'r' ? '---:' : '---')).join('|')}|`;
  return [line(t.head), rule, ...t.rows.map(line)].join('\n');
}

const mdItems = (items: [string, string][]) => items.map(([k, v]) => `- **${k}:** ${escapeMarkdown(v)}`).join('\n');

function markdown(r: EvaluationReport, history: HistoryEntry[]): string {
  const parts = [
    `# ${escapeMarkdown(TITLE(r))}`,
    '## What was evaluated', mdItems(evaluatedItems(r)),
    '## Results', mdTable(table1(r)), escapeMarkdown(TABLE1_NOTE(r)), mdItems(resultItems(r)),
    '## Per-class accuracy', r.perClass.length ? mdTable(perClassTable(r)) : 'No per-class results.',
    '## Confusion matrix',
  ];
  if (!r.confusion) parts.push(NO_CONFUSION);
  else if (r.confusion.length > CONFUSION_TABLE_LIMIT) parts.push(confusionElsewhere(r.confusion.length));
  else parts.push('Rows: true class; columns: predicted class.', mdTable(confusionTable(r, r.confusion)));
  parts.push('## Training history');
  if (history.length) parts.push(escapeMarkdown(EPOCHS_NOTE), mdTable(historyTable(history)));
  else parts.push(NO_HISTORY);
  return `${parts.join('\n\n')}\n`;
}

// --- HTML ----------------------------------------------------------------------------------

function htmlTable(t: Table, cls = ''): string {
  const cell = (tag: 'th' | 'td', s: string, i: number) => `<${tag}${t.align?.[i] === 'r' ? ' class="num"' : ''}>${escapeHtml(s)}</${tag}>`;
  const head = `<tr>${t.head.map((h, i) => cell('th', h, i)).join('')}</tr>`;
  const rows = t.rows.map((r) => `<tr>${r.map((c, i) => cell('td', c, i)).join('')}</tr>`).join('\n');
  return `<table${cls ? ` class="${cls}"` : ''}>\n<thead>${head}</thead>\n<tbody>\n${rows}\n</tbody>\n</table>`;
}

const htmlItems = (items: [string, string][]) =>
  `<dl>\n${items.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('\n')}\n</dl>`;

// The SVG comes from vega, which escapes its text; the caption is ours.
const figure = (p: Plot) => `<figure id="${escapeHtml(p.id)}">\n${p.svg}\n<figcaption>${escapeHtml(p.title)}</figcaption>\n</figure>`;

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 960px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; }
th { background: #f3f3f3; } .num { text-align: right; font-variant-numeric: tabular-nums; }
table.table1 td, table.table1 th { font-size: 1.05rem; padding: .4rem .9rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; } dt { font-weight: 600; } dd { margin: 0; }
figure { margin: 1rem 0; overflow-x: auto; } figcaption { color: #555; font-size: .85rem; }
.scroll { overflow-x: auto; }`;

function html(r: EvaluationReport, history: HistoryEntry[], plots: Plot[]): string {
  const plot = (id: string) => plots.filter((p) => p.id === id).map(figure).join('\n');
  const p = (s: string) => `<p>${escapeHtml(s)}</p>`;
  const body = [
    `<h1>${escapeHtml(TITLE(r))}</h1>`,
    '<h2>What was evaluated</h2>', htmlItems(evaluatedItems(r)),
    '<h2>Results</h2>', htmlTable(table1(r), 'table1'), p(TABLE1_NOTE(r)), htmlItems(resultItems(r)),
    '<h2>Per-class accuracy</h2>',
  ];
  body.push(r.perClass.length ? `${plot('per-class')}\n${htmlTable(perClassTable(r))}` : p('No per-class results.'));
  body.push('<h2>Confusion matrix</h2>');
  if (!r.confusion) body.push(p(NO_CONFUSION));
  else {
    body.push(plot('confusion'));
    if (r.confusion.length > CONFUSION_TABLE_LIMIT) body.push(p(confusionElsewhere(r.confusion.length)));
    else body.push(p('Rows: true class; columns: predicted class.'), `<div class="scroll">${htmlTable(confusionTable(r, r.confusion))}</div>`);
  }
  body.push('<h2>Training history</h2>');
  if (history.length) {
    body.push(plot('loss'), plot('error'), plot('lr'), p(EPOCHS_NOTE), htmlTable(historyTable(history)));
  } else {
    body.push(p(NO_HISTORY));
  }
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(TITLE(r))}</title>`,
    `<style>${STYLE}\n</style>`,
    '</head>',
    '<body>',
    ...body,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

// --- Entry point -------------------------------------------------------------------------

export async function renderReport(report: EvaluationReport, metrics: EpochMetrics[]): Promise<RenderedReport> {
  const history = reportHistory(metrics);
  const plots = await renderPlots(report, history);
  return {
    json: `${JSON.stringify({ ...report, history }, null, 2)}\n`,
    markdown: markdown(report, history),
    html: html(report, history, plots),
  };
}
