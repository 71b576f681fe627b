#!/usr/bin/env node
// The `alexnet` command line: one subcommand per file under scripts/commands/.
import { bench } from './commands/bench';
import { classify } from './commands/classify';
import { classifyBatch } from './commands/classify-batch';
import { lr, pause, resume, stop } from './commands/control';
import { importCommand } from './commands/import';
import { down } from './commands/down';
import { embed } from './commands/embed';
import { evaluate } from './commands/eval';
import { init } from './commands/init';
import { models } from './commands/models';
import { neighbours } from './commands/neighbours';
import { prepare } from './commands/prepare';
import { scheduleEval } from './commands/schedule-eval';
import { status } from './commands/status';
import { train } from './commands/train';
import { step } from './commands/step';
import { tensorboard } from './commands/tensorboard';
import { up } from './commands/up';
import { worker } from './commands/worker';
import { HelpRequested, UsageError } from './commands/args';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; summary: string }> = {
  worker: { run: worker, summary: 'run a Temporal worker (task queue alexnet: workflows and CPU activities)' },
  train: { run: train, summary: 'start TrainAlexNet and follow it with a progress bar' },
  status: { run: status, summary: 'print the progress of a TrainAlexNet run' },
  tensorboard: { run: tensorboard, summary: 'print the command that shows a run\'s curves in TensorBoard (its event files in the store)' },
  lr: { run: lr, summary: 'set a running TrainAlexNet\'s learning rate (an update: prints the LR and policy state)' },
  pause: { run: pause, summary: 'pause a TrainAlexNet run at a checkpoint (an update: prints the phase)' },
  resume: { run: resume, summary: 'resume a paused TrainAlexNet run (an update: prints the phase)' },
  stop: { run: stop, summary: 'stop a TrainAlexNet run: checkpoint, validate, end (an update: prints the phase)' },
  prepare: { run: prepare, summary: 'start PrepareDataset: shard, preprocess into batch files, statistics' },
  eval: { run: evaluate, summary: 'start EvaluateAlexNet (1 or 10 crops) on a checkpoint; writes the report' },
  'schedule-eval': { run: scheduleEval, summary: 'a Temporal Schedule evaluating a run\'s newest checkpoint; list, trigger, pause, delete' },
  classify: { run: classify, summary: 'classify images with a trained run\'s model, in this process (one JSON line per image)' },
  'classify-batch': { run: classifyBatch, summary: 'start ClassifyImages: classify a folder or prefix of images on the workers; writes part files and summary.json' },
  embed: { run: embed, summary: 'image features (fc7 or fc6, post-ReLU) with a trained run\'s model, in this process (one JSON line per image, or --out safetensors)' },
  neighbours: { run: neighbours, summary: 'rank the images of a features index (classify-batch --features) by Euclidean distance to each query' },
  serve: { run: async (argv) => (await import('./commands/serve')).serve(argv), summary: 'serve a trained run\'s model over HTTP (KServe v2 and TorchServe routes, dynamic batching, hot reload, /metrics)' },
  export: { run: async (argv) => (await import('./commands/export')).exportCommand(argv), summary: 'write a trained model\'s inference forward as an ONNX file (--onnx OUT.onnx)' },
  init: { run: init, summary: 'write a freshly initialized network state (safetensors)' },
  step: { run: step, summary: 'one SGD step from safetensors weights and input; writes logits, loss, gradients, new weights' },
  bench: { run: bench, summary: 'training and inference speed per layer against this machine\'s roof, beside PyTorch and onnxruntime' },
  import: { run: importCommand, summary: 'import fashion-mnist as JPEG class folders, or check and list imagenet (or any class folders) in place' },
  'import-weights': { run: async (argv) => (await import('./commands/import-weights')).importWeights(argv), summary: 'make torchvision\'s AlexNet weights (.pth or .safetensors) a run in the store (model torchvision-alexnet)' },
  models: { run: models, summary: 'list the built-in models, or print one config as JSON' },
  up: { run: up, summary: 'start the local Temporal dev server and MinIO in the background' },
  down: { run: down, summary: 'stop the services that `alexnet up` started' },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length)) + 1;
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)} ${c.summary}`);
  return `usage: alexnet <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nalexnet <command> --help shows a command's options.`;
}

async function run(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  if (!name || name === '--help' || name === '-h') throw new HelpRequested(usage());
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command '${name}'\n\n${usage()}`);
  await command.run(rest);
}

// The one place that prints an outcome other than a command's own output and picks the
// exit code: help on stdout, exit 0; a usage error on stderr, exit 2 (the message carries
// the command's usage); any other error on stderr with its name, exit 1.
run().catch((err: Error) => {
  if (err instanceof HelpRequested) {
    console.log(err.help);
    return;
  }
  console.error(`alexnet: ${err instanceof UsageError ? '' : `${err.name}: `}${err.message}`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
