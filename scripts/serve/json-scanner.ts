// A JSON text held to limits while its bytes arrive, before JSON.parse ever sees it: how
// deep it nests, how many strings and values it holds. alexnet serve refuses hostile
// inference requests with it (protocol.ts readInferRequest): millions of "" elements, or
// arrays nested thousands deep, are refused from the bytes, with nothing built per element
// and nothing recursive run on them.

// Limits a JSON text is held to while its bytes arrive (JsonScanner).
export interface JsonScanLimits {
  maxDepth: number;    // arrays and objects inside each other
  maxStrings: number;  // string values (object keys not counted)
  maxValues: number;   // scalar values: strings, numbers, true, false, null
  tooMany: (what: 'strings' | 'values', limit: number) => Error;  // the refusal of a text over a count
  tooDeep: (field: string, limit: number) => Error;                // of one nesting deeper than maxDepth at `field`
}

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d, OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d;
const KEY_CHARS = 64;  // of an object key kept for the path in a refusal

// A field's path as a refusal names it: keys and indices up to the innermost key
// (inputs[0].data), the indices below it left out.
function fieldPath(keys: (string | number | undefined)[]): string {
  let last = keys.length - 1;
  while (last >= 0 && typeof keys[last] !== 'string') last--;
  if (last < 0) return 'the request body';
  let out = '';
  for (const k of keys.slice(0, last + 1)) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (k !== undefined) out += out === '' ? k : `.${k}`;
  }
  return out;
}

// A small state machine over a JSON text's bytes as they arrive: inside a string or not
// (and after a backslash), how deep arrays and objects nest and the key or index being read
// in each, and the strings and values seen. It refuses (throws) as soon as a limit is
// passed, so that JSON.parse never runs on such a text. It does not validate: JSON.parse
// does, on the texts it lets through (for valid JSON its counts are exact).
export class JsonScanner {
  strings = 0;
  values = 0;
  private readonly keys: (string | number | undefined)[] = [];  // per open container, outermost first: an object's key (undefined before the first), an array's index
  private inString = false;
  private escaped = false;
  private inKey = false;
  private key = '';
  private expectKey = false;
  private inLiteral = false;

  constructor(private readonly limits: JsonScanLimits) {}

  scan(bytes: Buffer): void {
    const n = bytes.length;
    const keys = this.keys;
    for (let i = 0; i < n; i++) {
      if (this.inString) {
        if (!this.inKey && !this.escaped) {  // a string value (a whole image file): skip to its end or a backslash, natively
          const quote = bytes.indexOf(QUOTE, i);
          const end = quote < 0 ? n : quote;
          const backslash = bytes.subarray(i, end).indexOf(BACKSLASH);
          i = backslash < 0 ? end : i + backslash;
          if (i === n) break;
        }
        const c = bytes[i];
        if (this.escaped) {
          this.escaped = false;
        } else if (c === BACKSLASH) {
          this.escaped = true;
        } else if (c === QUOTE) {
          this.inString = false;
          if (this.inKey) {
            this.inKey = false;
            this.expectKey = false;
            keys[keys.length - 1] = this.key;
          }
          continue;
        }
        if (this.inKey && this.key.length < KEY_CHARS) this.key += String.fromCharCode(c);
        continue;
      }
      const c = bytes[i];
      switch (c) {
        case QUOTE:
          this.inLiteral = false;
          this.inString = true;
          if (this.expectKey) {
            this.inKey = true;
            this.key = '';
          } else {
            this.value(true);
          }
          break;
        case OPEN_ARRAY:
        case OPEN_OBJECT:
          this.inLiteral = false;
          if (keys.length >= this.limits.maxDepth) {
            throw this.limits.tooDeep(fieldPath(keys), this.limits.maxDepth);
          }
          keys.push(c === OPEN_ARRAY ? 0 : undefined);
          this.expectKey = c === OPEN_OBJECT;
          break;
        case CLOSE_ARRAY:
        case CLOSE_OBJECT:
          this.inLiteral = false;
          keys.pop();
          this.expectKey = false;
          break;
        case COMMA: {
          this.inLiteral = false;
          const top = keys[keys.length - 1];
          if (typeof top === 'number') keys[keys.length - 1] = top + 1;
          else if (keys.length > 0) this.expectKey = true;
          break;
        }
        case COLON: case 0x20: case 0x09: case 0x0a: case 0x0d:
          this.inLiteral = false;
          break;
        default:
          if (!this.inLiteral) {  // the first character of a number, true, false or null
            this.inLiteral = true;
            this.value(false);
          }
      }
    }
  }

  private value(isString: boolean): void {
    if (++this.values > this.limits.maxValues) throw this.limits.tooMany('values', this.limits.maxValues);
    if (isString && ++this.strings > this.limits.maxStrings) throw this.limits.tooMany('strings', this.limits.maxStrings);
  }
}
