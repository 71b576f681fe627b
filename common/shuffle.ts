// Seeded shuffles: the shard plan, each epoch's visiting order and the validation carve
// all depend on them, so every run with the same seed sees the same order on any machine.

// mulberry32: a small, well-mixed 32-bit generator; enough for a shuffle and portable
// across platforms (plain 32-bit integer arithmetic).
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Fisher-Yates in place, drawing from `rand` (a seededRandom); returns `items`.
export function shuffleInPlace<T>(items: T[], rand: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}
