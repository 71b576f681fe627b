// Shared option parsing for the subcommands (node's util.parseArgs, strict), and
// reading and writing safetensors files with errors that name the file.
import * as fs from 'fs';
import { parseArgs, ParseArgsConfig } from 'util';

import { modelConfig, NetConfig } from '../../native/index';
import { decodeSafetensors, Safetensors } from '../../native/safetensors';

// Thrown, never exited on: scripts/alexnet.ts decides what is printed and the exit code
// (a UsageError: the message on stderr, exit 2; HelpRequested: the help on stdout, exit 0).
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export class HelpRequested extends Error {
  constructor(readonly help: string) {
    super('help requested');
    this.name = 'HelpRequested';
  }
}

// --help or -h as a command's first argument (for the commands that take positionals
// before their flags).
export function helpFirst(argv: string[], help: string): void {
  if (argv[0] === '--help' || argv[0] === '-h') throw new HelpRequested(help);
}

type Options = NonNullable<ParseArgsConfig['options']>;

type Values<O extends Options> = { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string };

export function parse<O extends Options>(argv: string[], options: O, help: string): Values<O> {
  return parseWithPositionals(argv, options, help, false).values;
}

// The same, for commands that take operands (alexnet classify FILE...).
export function parseWithPositionals<O extends Options>(argv: string[], options: O, help: string, allowPositionals = true): { values: Values<O>; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${help}`);
  }
  if ((parsed.values as Record<string, unknown>).help) throw new HelpRequested(help);
  return { values: parsed.values as Values<O>, positionals: parsed.positionals };
}

export function required(value: string | undefined, flag: string, help: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing --${flag}\n\n${help}`);
  return value;
}

export function intOption(value: string | undefined, flag: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag} must be an integer >= ${min}, got '${value}'`);
  return n;
}

export function numberOption(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${flag} must be a positive number, got '${value}'`);
  return n;
}

// A built-in model name, or a path to a JSON config file.
export function resolveModel(model: string): NetConfig {
  if (model.endsWith('.json') || fs.existsSync(model)) {
    try {
      return JSON.parse(fs.readFileSync(model, 'utf8')) as NetConfig;
    } catch (e) {
      throw new UsageError(`--model ${model}: cannot read a JSON network config (${(e as Error).message})`);
    }
  }
  return modelConfig(model);
}

export function readSafetensorsFile(file: string, flag: string): { buf: Buffer; file: Safetensors } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new UsageError(`--${flag} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return { buf, file: decodeSafetensors(buf, `--${flag} ${file}`) };
}

// Written next to the target and renamed over it, so a reader never sees half a file.
export function writeFileAtomic(file: string, data: Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}
