// How the benchmarks report numbers.

// x rounded to `digits` decimals (2 by default).
export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

export const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

// Nearest-rank percentile of unsorted values.
export function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
}
