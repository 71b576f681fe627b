// alexnet import fashion-mnist|imagenet: bring a dataset into a form the pipeline reads.
// Fashion-MNIST is converted into JPEG class folders; ImageNet (or any class-folder
// layout) is used in place, so importing it means checking its layout and, optionally,
// writing its listing into the pipeline's store.
import { FASHION_MNIST_DIR, importFashionMnist } from '../importers/fashion-mnist';
import { listDataset, summarizeListing, writeListing, type ListingSummary } from '../../activities/datasets';
import { checkStoreBucket, CREATE_BUCKET_FLAG, CREATE_BUCKET_HELP } from '../store-bucket';
import { helpFirst, intOption, parse, required, UsageError } from './args';

const HELP = `usage: alexnet import fashion-mnist --out <store URI> [--limit N] [--concurrency 16] [--source DIR] [--create-bucket]
       alexnet import imagenet --source <URI> [--store <URI> --name NAME [--create-bucket]]

fashion-mnist: writes the Fashion-MNIST IDX files (apt-get install dataset-fashion-mnist;
  --source defaults to ${FASHION_MNIST_DIR}) as 28x28 greyscale JPEGs:
  train/<class>/<index>.jpg, test/<class>/<index>.jpg and classes.txt. --limit takes the
  first N images of each split in file order (shuffled, so every class appears, but not
  balanced). Objects already there with the same size are skipped: re-running resumes.
imagenet: lists a dataset in place (s3://bucket/prefix, file:///dir or a path): ImageNet's
  train/<wnid>/ with val/<wnid>/ or a flat val/ plus LOC_val_solution.csv or val.txt, or
  any <split>/<class>/ or <class>/ folders; prints classes and images per split. With
  --store and --name, writes datasets/<NAME>/listing/<split>.jsonl, classes.json and
  names.json into that store.
${CREATE_BUCKET_HELP}`;

function printSummary(s: ListingSummary): void {
  const splits = Object.entries(s.splits).map(([k, n]) => `${k} ${n}`).join(', ');
  console.log(`layout ${s.layout}, ${s.classes} classes, images: ${splits}${s.ignored ? ` (${s.ignored} ignored)` : ''}`);
}

async function fashionMnist(argv: string[]): Promise<void> {
  const o = parse(argv, { out: { type: 'string' }, limit: { type: 'string' }, concurrency: { type: 'string' }, source: { type: 'string' }, ...CREATE_BUCKET_FLAG }, HELP);
  const out = required(o.out, 'out', HELP);
  const limit = o.limit === undefined ? undefined : intOption(o.limit, 'limit', 0);
  await checkStoreBucket(out, !!o['create-bucket']);
  let last = 0;
  const r = await importFashionMnist(out, {
    limit,
    concurrency: intOption(o.concurrency, 'concurrency', 16),
    sourceDir: o.source,
    onProgress: (done, total) => {
      if (process.stderr.isTTY && (Date.now() - last > 500 || done === total)) {
        last = Date.now();
        process.stderr.write(`\rimport: ${done}/${total}${done === total ? '\n' : ''}`);
      }
    },
  });
  const n = r.written + r.skipped;
  console.log(`fashion-mnist -> ${r.uri}: train ${r.splits.train}, test ${r.splits.test} images; ` +
    `${r.written} written, ${r.skipped} already there; ${r.seconds.toFixed(1)} s (${Math.round(n / Math.max(r.seconds, 1e-3))} images/s)`);
}

async function imagenet(argv: string[]): Promise<void> {
  const o = parse(argv, { source: { type: 'string' }, store: { type: 'string' }, name: { type: 'string' }, ...CREATE_BUCKET_FLAG }, HELP);
  const source = required(o.source, 'source', HELP);
  if (o.store !== undefined) {
    const name = required(o.name, 'name', HELP);
    await checkStoreBucket(o.store, !!o['create-bucket']);
    const s = await writeListing(source, o.store, name);
    printSummary(s);
    console.log(`listing written to ${o.store} under datasets/${name}/`);
    return;
  }
  if (o.name !== undefined) throw new UsageError(`--name needs --store\n\n${HELP}`);
  if (o['create-bucket']) throw new UsageError(`--create-bucket needs --store\n\n${HELP}`);
  const listing = await listDataset(source);
  printSummary(summarizeListing(listing));
  const shown = listing.names.slice(0, 5).map((n, i) => `${listing.classes[i]}${n !== listing.classes[i] ? ` (${n})` : ''}`);
  console.log(`classes: ${shown.join(', ')}${listing.classes.length > 5 ? ', ...' : ''}`);
  for (const note of listing.ignored.notes) console.log(`ignored: ${note}`);
}

export async function importCommand(argv: string[]): Promise<void> {
  helpFirst(argv, HELP);
  const [kind, ...rest] = argv;
  if (kind === 'fashion-mnist') return fashionMnist(rest);
  if (kind === 'imagenet') return imagenet(rest);
  if (kind === undefined) throw new UsageError(`missing the dataset: fashion-mnist or imagenet\n\n${HELP}`);
  throw new UsageError(`unknown dataset '${kind}': fashion-mnist or imagenet\n\n${HELP}`);
}
