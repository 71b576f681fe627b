// One message builder for argument errors, so every message reads the same way:
// "Expected integer between 1 and 4096 for batchSize but received 0".
// Pure TypeScript with no imports: workflows use it for their inputs, and native/,
// activities/ and scripts/ for theirs, so every message reads the same.

export class ArgumentError extends TypeError {
  constructor(readonly argument: string, message: string) {
    super(message);
    this.name = 'ArgumentError';
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value)) {
    // Typed arrays by element count; a DataView (no length) by bytes.
    return `${value.constructor.name}(${'length' in value && typeof value.length === 'number' ? value.length : value.byteLength})`;
  }
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `array(${value.length})`;
  return typeof value;
}

export function invalid(name: string, expected: string, value: unknown): ArgumentError {
  return new ArgumentError(name, `Expected ${expected} for ${name} but received ${describe(value)}`);
}

export function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(name, `integer between ${min} and ${max}`, value);
  }
  return value;
}

export function numberIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalid(name, `number between ${min} and ${max}`, value);
  }
  return value;
}

export function oneOf<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw invalid(name, `one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`, value);
  }
  return value as T;
}

export function nonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw invalid(name, 'a non-empty string', value);
  return value;
}

// Edits (insertions, deletions, substitutions, swaps of neighbours) from a to b: how far
// a misspelt field is from each known one.
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

// The known name a misspelt one most likely meant: the nearest by edits (case aside),
// if near enough to be a slip rather than another word.
// Among names as near as each other, the one whose trailing number is nearest (fc9 means
// fc8 rather than fc6; conv6, conv5), else the first.
export function nearestName(name: string, known: readonly string[]): string | undefined {
  const number = (s: string) => Number(/(\d+)$/.exec(s)?.[1] ?? NaN);
  const numberGap = (k: string) => {
    const gap = Math.abs(number(k) - number(name));
    return Number.isNaN(gap) ? Infinity : gap;  // no numbers to compare: no preference
  };
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const distance = editDistance(name.toLowerCase(), k.toLowerCase());
    if (distance < bestDistance || (distance === bestDistance && best !== undefined && numberGap(k) < numberGap(best))) [best, bestDistance] = [k, distance];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

// Refuses the fields of `o` that `known` does not list, naming the first and the known
// name it most likely meant. An unknown field is never ignored: a misspelt `epoch` would
// otherwise train for the default number of epochs, an unsupported option silently do nothing.
// `where`: the object's name in messages ('input', 'lrPolicy'); `what`: how to describe it;
// `noun`: what its keys are ('field', 'layer').
export function refuseUnknownFields(where: string, o: object, known: readonly string[], what = where, noun = 'field'): void {
  for (const key of Object.keys(o)) {
    if (known.includes(key)) continue;
    const near = nearestName(key, known);
    const field = where === 'input' ? key : `${where}.${key}`;
    throw new ArgumentError(field, `Unknown ${noun} ${JSON.stringify(key)} in ${what}${near ? `; did you mean ${JSON.stringify(near)}?` : '.'} Known ${noun}s: ${known.join(', ')}`);
  }
}

// A workflow or command input must be a plain object of the fields it knows (`fields`:
// every one, see the *_FIELDS lists in contract.ts).
export function inputObject<T>(raw: T, fields: readonly string[], what = 'input'): T {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ArgumentError('input', `Expected an object {${fields.join(', ')}} for input`);
  refuseUnknownFields('input', raw, fields, what);
  return raw;
}

export function booleanValue(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalid(name, 'true or false', value);
  return value;
}

// A checkpoint named by its key, or by a run ({"run": "<runId>"}: `meaning` says which of
// the run's checkpoints).
export function checkpointRef(name: string, value: unknown, meaning: string): string | { run: string } {
  if (typeof value === 'string' && value.trim() !== '') return value;
  const run = typeof value === 'object' && value !== null ? (value as { run?: unknown }).run : undefined;
  if (typeof run === 'string' && run.trim() !== '') return { run };
  throw new ArgumentError(name, `Expected a checkpoint key or {"run": "<runId>"} (${meaning}) for ${name} but received ${JSON.stringify(value)}`);
}
