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

// A workflow or command input must be a plain object; `fields` lists what it expects.
export function inputObject<T>(raw: T, fields: string): T {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ArgumentError('input', `Expected an object {${fields}} for input`);
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
