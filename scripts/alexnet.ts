#!/usr/bin/env node
// The `alexnet` command line: one subcommand per file under scripts/commands/.
import { bench } from './commands/bench';
import { init } from './commands/init';
import { models } from './commands/models';
import { step } from './commands/step';
import { UsageError } from './commands/args';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; summary: string }> = {
  init: { run: init, summary: 'write a freshly initialized network state (safetensors)' },
  step: { run: step, summary: 'one SGD step from safetensors weights and input; writes logits, loss, gradients, new weights' },
  bench: { run: bench, summary: 'training and inference images/s of the paper AlexNet (optionally beside PyTorch)' },
  models: { run: models, summary: 'list the built-in models, or print one config as JSON' },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return `usage: alexnet <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nalexnet <command> --help shows a command's options.`;
}

async function run(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    return;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command '${name}'\n\n${usage()}`);
  await command.run(rest);
}

run().catch((err: Error) => {
  console.error(`alexnet: ${err instanceof UsageError ? '' : `${err.name}: `}${err.message}`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
